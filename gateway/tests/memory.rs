//! Memory under hostile input: concurrent maximum-size request bodies (LLM, MCP, A2A; near and
//! over `limits.json.max_message_bytes`) against the real `switchboard` binary, with peak RSS
//! (`VmHWM` from `/proc/PID/status`) held to a stated bound. BENCHMARKS.md ("Memory under
//! hostile input") records the bound and a measured figure.

use crate::common;

use std::time::Duration;

use common::*;

/// `limits.json.max_message_bytes` in this test.
const LIMIT: usize = 4 << 20;
/// Requests in flight at once.
const CONCURRENT: usize = 24;
/// The bound on peak RSS growth over the idle process: bodies in flight (at most the limit
/// each) times a small factor for reading, parsing and translating them, plus slack for the
/// allocator and the runtime.
const BOUND: u64 = (CONCURRENT * LIMIT * 3 + (64 << 20)) as u64;

fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}

/// A chat request of about `size` bytes: one long message, or many short ones (the shape that
/// costs a parser the most per byte).
fn chat(size: usize, many: bool) -> Vec<u8> {
    let messages = if many {
        let one = r#"{"role":"user","content":"hi"},"#;
        let mut m = one.repeat(size / one.len());
        m.pop();
        m
    } else {
        format!(r#"{{"role":"user","content":"{}"}}"#, "x".repeat(size))
    };
    let head = r#"{"model":"fast","messages":["#;
    format!("{head}{messages}]}}").into_bytes()
}

fn jsonrpc(size: usize, method: &str) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"message":{{"role":"user","parts":[{{"kind":"text","text":"{}"}}],"messageId":"m"}}}}}}"#,
        "x".repeat(size)
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_rss_stays_within_a_small_multiple_of_the_limits() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("SKIPPED: no /proc");
        return;
    }
    let (mock, _state) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let (fixture, _task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
admin: {{bind: 127.0.0.1:0}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {{max_body_bytes: 67108864, json: {{max_message_bytes: {LIMIT}}}}}
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        llm:
          models:
            - name: fast
              providers:
                - {{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: fixture
              http: {{url: "http://{fixture}/mcp"}}
      - name: agent
        match: {{path_prefix: /agent}}
        a2a: {{url: "http://{up}/echo"}}
"#
        ),
    )
    .unwrap();
    let proc = spawn_switchboard(&config).await;
    let pid = proc.child.id().unwrap();
    let base = format!("http://{}", proc.listeners["main"]);
    let client = client();
    // Warm up every route once (connection pools, lazily built state).
    for (path, body) in [
        ("/v1/chat/completions", chat(100, false)),
        ("/mcp", jsonrpc(100, "ping")),
        ("/agent", jsonrpc(100, "message/send")),
    ] {
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .unwrap();
    }
    let idle = vm_hwm(pid);

    let near = LIMIT - 1024;
    let mut cases: Vec<(&str, Vec<u8>, bool, u16)> = Vec::new();
    for i in 0..CONCURRENT / 6 {
        // Near the limit: served (the LLM and A2A ones reach their upstreams).
        cases.push((
            "/v1/chat/completions",
            chat(near - 64, i % 2 == 0),
            false,
            200,
        ));
        cases.push(("/mcp", jsonrpc(near - 256, "tools/call"), false, 0));
        cases.push(("/agent", jsonrpc(near - 256, "message/send"), false, 200));
        // Over it, declared or streamed without a length: 413 without reading it all.
        cases.push(("/v1/chat/completions", chat(LIMIT * 3, false), true, 413));
        cases.push(("/mcp", jsonrpc(LIMIT * 3, "tools/call"), false, 413));
        cases.push(("/agent", jsonrpc(LIMIT * 3, "message/send"), true, 413));
    }
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|(path, body, chunked, want)| {
            let client = client.clone();
            let url = format!("{base}{path}");
            tokio::spawn(async move {
                let req = client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream");
                let req = if chunked {
                    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                        body.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
                    req.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
                } else {
                    req.body(body)
                };
                match req.send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        if want != 0 {
                            assert_eq!(status, want, "{path}");
                        }
                        let _ = r.bytes().await;
                    }
                    // The gateway may answer 413 and close before a streamed body is sent.
                    Err(e) => assert!(want == 413, "{path}: {e}"),
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks))
        .await
        .expect("all requests answered")
        .into_iter()
        .for_each(|r| r.unwrap());

    let peak = vm_hwm(pid);
    let grew = peak.saturating_sub(idle);
    eprintln!(
        "memory: idle VmHWM {} MiB, peak {} MiB, growth {} MiB for {CONCURRENT} concurrent requests at a {} MiB limit (bound {} MiB)",
        idle >> 20,
        peak >> 20,
        grew >> 20,
        LIMIT >> 20,
        BOUND >> 20
    );
    assert!(
        grew <= BOUND,
        "peak RSS grew by {} MiB, over the bound of {} MiB",
        grew >> 20,
        BOUND >> 20
    );
    // Still serving.
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(chat(100, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The `DT_*` tags of the `switchboard` binary's dynamic section, with their values (ELF64,
/// little-endian).
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    target_endian = "little",
    target_pointer_width = "64"
))]
fn dynamic_tags(path: &str) -> Vec<(u64, u64)> {
    let elf = std::fs::read(path).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(&elf[..5], b"\x7fELF\x02", "an ELF64 file");
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    // PT_DYNAMIC: its entries are (tag, value) pairs up to DT_NULL.
    let dynamic = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()) == 2)
        .expect("a dynamically linked binary has PT_DYNAMIC");
    let (offset, size) = (u64_at(dynamic + 8) as usize, u64_at(dynamic + 32) as usize);
    (offset..offset + size)
        .step_by(16)
        .map(|o| (u64_at(o), u64_at(o + 8)))
        .take_while(|&(tag, _)| tag != 0)
        .collect()
}

/// README "Building": on a glibc of 2.36 or later the binary is linked with packed relative
/// relocations (`DT_RELR`), so the loader does not read a 2 MB relocation table at start (and
/// those pages do not stay in the idle process's RSS); `SWITCHBOARD_PORTABLE_LINK=1` (at build
/// time) links it the portable way. Fails if gateway/build.rs stops asking for it.
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    target_endian = "little",
    target_pointer_width = "64"
))]
#[test]
fn the_binary_packs_its_relative_relocations_where_glibc_can_read_them() {
    const DT_RELASZ: u64 = 8;
    const DT_RELR: u64 = 36;
    let glibc = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .unwrap();
    let glibc = String::from_utf8(glibc.stdout).unwrap();
    let version: Vec<u32> = glibc
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .take(2)
        .map(|p| p.parse().unwrap())
        .collect();
    let portable = std::env::var_os("SWITCHBOARD_PORTABLE_LINK").is_some_and(|v| v != "0");
    let expect_relr = version >= vec![2, 36] && !portable;
    let tags = dynamic_tags(env!("CARGO_BIN_EXE_switchboard"));
    let relr = tags.iter().any(|&(t, _)| t == DT_RELR);
    let rela = tags
        .iter()
        .find(|&&(t, _)| t == DT_RELASZ)
        .map_or(0, |&(_, v)| v);
    assert_eq!(
        relr, expect_relr,
        "glibc {version:?}, portable {portable}: DT_RELR present {relr}"
    );
    if expect_relr {
        // What is left as RELA: the few relocations that are not relative (a few KB), not the
        // ~80,000 relative ones (2 MB).
        assert!(
            rela < 256 << 10,
            "RELA table of {rela} bytes beside DT_RELR"
        );
    } else {
        assert!(
            rela > 256 << 10,
            "a portable link keeps its relative relocations as RELA ({rela} bytes)"
        );
    }
}

/// One ELF section header: its name, address, file offset, size, type and link.
#[cfg(all(
    target_os = "linux",
    target_endian = "little",
    target_pointer_width = "64"
))]
struct Section {
    name: String,
    addr: u64,
    offset: usize,
    size: usize,
    kind: u32,
    link: usize,
}

/// The section headers of an ELF64 little-endian file.
#[cfg(all(
    target_os = "linux",
    target_endian = "little",
    target_pointer_width = "64"
))]
fn section_headers(elf: &[u8]) -> Vec<Section> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(&elf[..5], b"\x7fELF\x02", "an ELF64 file");
    let (shoff, shentsize) = (u64_at(0x28) as usize, u16_at(0x3a));
    let (shnum, shstrndx) = (u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let names = u64_at(header(shstrndx) + 24) as usize;
    (0..shnum)
        .map(|i| {
            let h = header(i);
            Section {
                name: String::from_utf8_lossy(c_str(elf, names + u32_at(h) as usize)).into_owned(),
                addr: u64_at(h + 16),
                offset: u64_at(h + 24) as usize,
                size: u64_at(h + 32) as usize,
                kind: u32_at(h + 4),
                link: u32_at(h + 40) as usize,
            }
        })
        .collect()
}

/// The NUL-terminated string at `at`.
#[cfg(all(
    target_os = "linux",
    target_endian = "little",
    target_pointer_width = "64"
))]
fn c_str(elf: &[u8], at: usize) -> &[u8] {
    let end = elf[at..].iter().position(|&b| b == 0).unwrap();
    &elf[at..at + end]
}

/// README "Building": the functions the gateway runs while it starts are gathered into one
/// section ahead of the rest of the code (`gateway/startup.ld`, written by
/// scripts/startup-layout.py, given to the linker by gateway/build.rs), so an idle gateway maps
/// a few MB of code rather than most of its 25 MB; `SWITCHBOARD_STARTUP_LAYOUT=0` (at build
/// time) leaves it out. Fails if the build stops passing the script, if the script stops
/// gathering the gateway's start-up functions, or if it gathers so much that it no longer keeps
/// the rest out.
#[cfg(all(
    target_os = "linux",
    target_endian = "little",
    target_pointer_width = "64"
))]
#[test]
fn the_start_up_code_is_laid_out_together() {
    const SHT_SYMTAB: u32 = 2;
    let elf = std::fs::read(env!("CARGO_BIN_EXE_switchboard")).unwrap();
    let sections = section_headers(&elf);
    let startup = sections.iter().find(|s| s.name == ".text.sb_startup");
    if std::env::var_os("SWITCHBOARD_STARTUP_LAYOUT").is_some_and(|v| v == "0") {
        assert!(startup.is_none(), "the layout was turned off");
        return;
    }
    let startup = startup.expect("a .text.sb_startup section");
    let text = sections.iter().find(|s| s.name == ".text").unwrap();
    assert!(
        startup.size > 1 << 20 && startup.size < text.size / 2,
        "start-up code of {} bytes beside {} bytes of the rest",
        startup.size,
        text.size
    );
    // Symbols: (name, address), 24 bytes each.
    let symtab = sections.iter().find(|s| s.kind == SHT_SYMTAB).unwrap();
    let strtab = sections[symtab.link].offset;
    let symbols: Vec<(&[u8], u64)> = elf[symtab.offset..symtab.offset + symtab.size]
        .chunks_exact(24)
        .map(|e| {
            let name = u32::from_le_bytes(e[..4].try_into().unwrap()) as usize;
            let value = u64::from_le_bytes(e[8..16].try_into().unwrap());
            (c_str(&elf, strtab + name), value)
        })
        .collect();
    let inside = |prefix: &[u8]| {
        let at: Vec<u64> = symbols
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|&(_, at)| at)
            .collect();
        assert!(
            !at.is_empty(),
            "no symbol {}",
            String::from_utf8_lossy(prefix)
        );
        at.iter()
            .any(|a| (startup.addr..startup.addr + startup.size as u64).contains(a))
    };
    // The serving threads' set-up runs at every start; the plain-HTTP upstream call never does.
    assert!(
        inside(b"_ZN19switchboard_gateway7gateway7Gateway18start_with_workers28_$u7b$$u7b$closure"),
        "the serving threads' set-up is not among the start-up code"
    );
    assert!(
        !inside(b"_ZN19switchboard_gateway8upstream10HttpClient7send_h1"),
        "a request-path function is among the start-up code"
    );
}
