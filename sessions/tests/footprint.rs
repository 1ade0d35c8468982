//! Memory held per idle session by the session layer (memory store), measured as resident set
//! growth over 10,000 sessions. The whole gateway's budget is 10 KB per idle MCP session; the
//! session layer must use a small part of it.

use std::sync::Arc;

use base64::Engine as _;
use prometheus_client::registry::Registry;
use switchboard_sessions::{
    MemoryStore, Metrics, SessionManager, SessionStore, SessionsConfig, StoreLimits, TargetEntry,
};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "current_thread")]
async fn idle_sessions_cost_little_memory() {
    const N: usize = 10_000;
    let cfg = SessionsConfig {
        keys: vec![base64::engine::general_purpose::STANDARD.encode([1u8; 32])],
        max_per_principal: N as u32 + 200,
        ..Default::default()
    };
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreLimits::from_config(&cfg)));
    let m = SessionManager::new(&cfg, store, Metrics::new(&mut Registry::default())).unwrap();
    let targets = || {
        vec![
            TargetEntry {
                name: "search".into(),
                upstream_session: Some("3f2a6c1e-0d4b-4c4e-9a51-2b7f0e8d1c33".into()),
                endpoint: Some("http://10.0.3.4:3001/mcp".into()),
            },
            TargetEntry::new("everything"),
        ]
    };
    // Warm up allocator arenas and lazily built statics before measuring.
    let mut keep = Vec::with_capacity(N);
    for _ in 0..200 {
        keep.push(
            m.create(Some("alice"), targets(), false)
                .await
                .unwrap()
                .token,
        );
    }
    let before = rss_bytes();
    for _ in 0..N {
        // The gateway keeps no Session for an idle session; the client holds the token.
        let s = m.create(Some("alice"), targets(), false).await.unwrap();
        drop(s);
    }
    let after = rss_bytes();
    let per_session = after.saturating_sub(before) / N as u64;
    eprintln!("session layer: ~{per_session} bytes per idle session ({N} sessions)");
    assert_eq!(m.local_sessions(), N + 200);
    assert!(
        per_session < 2048,
        "{per_session} bytes per idle session; budget for the session layer is 2 KB"
    );
}
