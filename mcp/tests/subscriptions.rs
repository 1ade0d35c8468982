//! Change notifications across protocol eras through the gateway: a 2026-07-28 client's
//! `subscriptions/listen` federated over a session-era target (the rmcp fixture) and a
//! 2026-07-28 one (`mcp_modern`), with exposed URIs and only what the caller may see; a
//! session-era client's `resources/subscribe` to a 2026-07-28 target; the bounds of a listen
//! stream. The fixtures change their resources and tools on demand (their hubs).

use crate::harness;

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use harness::*;
use serde_json::{Value, json};
use switchboard_examples::{mcp_fixture, mcp_modern};
use switchboard_mcp::Metrics;
use switchboard_mcp::names::namespace_uri;
use tokio::io::{AsyncBufReadExt, BufReader};

const MODERN: &str = "2026-07-28";

/// The JSON messages of an SSE response, read as they come.
struct Sse {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    fn new(resp: reqwest::Response) -> Self {
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next message (`None`: the stream ended); panics after 10 s of nothing.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let ev: String = self.buf.drain(..end + 2).collect();
                if let Some(d) = ev.lines().find_map(|l| l.strip_prefix("data:"))
                    && let Ok(v) = serde_json::from_str(d.trim())
                {
                    return Some(v);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s");
            match chunk {
                Some(Ok(b)) => self.buf.push_str(&String::from_utf8_lossy(&b)),
                _ => return None,
            }
        }
    }
}

/// A 2026-07-28 request.
fn request(id: &str, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}});
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POST a 2026-07-28 `subscriptions/listen` (with an authz prefix, if any).
async fn listen(url: &str, notifications: Value, allow: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(
            request(
                "l-1",
                "subscriptions/listen",
                json!({"notifications": notifications}),
            )
            .to_string(),
        );
    if let Some(p) = allow {
        req = req.header("x-test-allow-prefix", p);
    }
    req.send().await.unwrap()
}

/// Waits (bounded) until the modern fixture has no listen stream open, touching `uri` so a
/// stream whose reader went away notices on its next write.
async fn until_released(hub: &mcp_modern::Hub, gw: &Gateway, uri: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hub.listening() > 0 || gw.backend.listen_streams() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream listen streams not released: {} upstream, {} in the gateway",
            hub.listening(),
            gw.backend.listen_streams()
        );
        hub.touch(uri);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gateway over the rmcp fixture (session-era) and the modern fixture, names prefixed.
async fn two_eras() -> (
    Gateway,
    mcp_fixture::FixtureHub,
    mcp_modern::Hub,
    mcp_modern::Seen,
) {
    init();
    let (fixture, _, fixture_hub) = mcp_fixture::serve_hub(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (modern, _, seen, hub) = mcp_modern::serve_hub(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let gw = gateway(json!({"targets": [
        {"name": "fixture", "http": {"url": format!("http://{fixture}/mcp")}},
        {"name": "modern", "http": {"url": format!("http://{modern}/mcp")}},
    ]}))
    .await;
    (gw, fixture_hub, hub, seen)
}

/// The Python SDK in its default mode (2026-07-28) listens through the gateway to a resource
/// of a session-era and of a 2026-07-28 target and hears both change, under their exposed URIs;
/// the upstream listen stream and session are released when it stops listening.
#[tokio::test]
async fn a_modern_client_listens_to_targets_of_both_eras() {
    if !have("python with the mcp SDK", &python()) {
        return;
    }
    let (gw, fixture_hub, hub, seen) = two_eras().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/listen_client.py");
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .args([&gw.url, "watched-resource,modern%3A%2F%2Fstatus"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("acknowledged in time")
        .unwrap()
        .expect("the client printed what was honored");
    let acked: Value = serde_json::from_str(&line).unwrap();
    let watched = namespace_uri("fixture", "test://watched-resource");
    let status = namespace_uri("modern", "modern://status");
    let both = json!([watched, status]);
    assert_eq!(acked["version"], MODERN, "{acked}");
    assert_eq!(acked["asked"], both, "{acked}");
    assert_eq!(acked["honored"], both, "{acked}");
    // Upstream: the modern target got a listen for its own URI, the fixture a subscribe.
    let listens: Vec<_> = seen
        .all()
        .into_iter()
        .filter(|r| r.method == "subscriptions/listen")
        .collect();
    assert_eq!(listens.len(), 1);
    assert_eq!(
        listens[0].params["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["modern://status"]})
    );
    assert_eq!(hub.listening(), 1);
    assert_eq!(
        fixture_hub.touch("test://watched-resource").await,
        1,
        "the gateway's session of the fixture subscribed"
    );
    hub.touch("modern://status");
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("both updates in time")
        .unwrap()
        .expect("the client's result");
    let done: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(done, json!({"ok": true, "updated": both}));
    assert!(child.wait().await.unwrap().success());
    until_released(&hub, &gw, "modern://status").await;
    // The stream's session of the fixture was ended too: nobody is left to tell.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while fixture_hub.touch("test://watched-resource").await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fixture session not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A session-era client subscribes to a resource of a 2026-07-28 target: the gateway holds a
/// `subscriptions/listen` upstream and the update arrives on the session's GET stream under
/// the exposed URI; unsubscribing releases the upstream stream.
#[tokio::test]
async fn a_session_client_subscribes_to_a_modern_targets_resource() {
    let (gw, _fixture_hub, hub, seen) = two_eras().await;
    let sid = raw_session(&gw.url, "2025-11-25", json!({})).await;
    let get = reqwest::Client::new()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let mut stream = Sse::new(get);
    let uri = namespace_uri("modern", "modern://status");
    let sub =
        json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": uri}});
    let (status, _, body) = post(&gw.url, Some(&sid), &sub.to_string()).await;
    assert_eq!(status, 200);
    let reply = messages(&body).pop().unwrap();
    assert_eq!(reply["result"], json!({}), "{reply}");
    assert_eq!(hub.listening(), 1, "held upstream");
    let held = seen
        .all()
        .into_iter()
        .rfind(|r| r.method == "subscriptions/listen")
        .unwrap();
    assert_eq!(
        held.params["notifications"],
        json!({"resourceSubscriptions": ["modern://status"]})
    );
    hub.touch("modern://status");
    let update = loop {
        let m = stream.next().await.expect("the GET stream stays open");
        if m["method"] == "notifications/resources/updated" {
            break m;
        }
    };
    assert_eq!(update["params"]["uri"], uri, "{update}");
    let unsub = json!({"jsonrpc": "2.0", "id": 2, "method": "resources/unsubscribe", "params": {"uri": uri}});
    let (_, _, body) = post(&gw.url, Some(&sid), &unsub.to_string()).await;
    assert_eq!(messages(&body).pop().unwrap()["result"], json!({}));
    until_released(&hub, &gw, "modern://status").await;
    // Held again, then the session ends: released too.
    let (_, _, body) = post(&gw.url, Some(&sid), &sub.to_string()).await;
    assert_eq!(messages(&body).pop().unwrap()["result"], json!({}));
    assert_eq!(hub.listening(), 1);
    let deleted = reqwest::Client::new()
        .delete(&gw.url)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    until_released(&hub, &gw, "modern://status").await;
    let sid = raw_session(&gw.url, "2025-11-25", json!({})).await;
    // At most 256 URIs per session on a 2026-07-28 target.
    for i in 0..257 {
        let sub = json!({"jsonrpc": "2.0", "id": 10 + i, "method": "resources/subscribe",
            "params": {"uri": namespace_uri("modern", &format!("modern://r{i}"))}});
        let (_, _, body) = post(&gw.url, Some(&sid), &sub.to_string()).await;
        let reply = messages(&body).pop().unwrap();
        if i < 256 {
            assert_eq!(reply["result"], json!({}), "{reply}");
        } else {
            assert_eq!(reply["error"]["code"], -32602, "{reply}");
        }
    }
    // `subscriptions/listen` is for 2026-07-28 requests, not sessions.
    let listen = json!({"jsonrpc": "2.0", "id": 3, "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true}}});
    let (_, _, body) = post(&gw.url, Some(&sid), &listen.to_string()).await;
    assert_eq!(
        messages(&body).pop().unwrap()["error"]["code"],
        -32600,
        "{body}"
    );
}

/// A shared stdio target (server-everything) under a listen stream: the update its tool sends
/// reaches the listening client under the exposed URI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modern_client_listens_to_a_shared_stdio_target() {
    if !have_peers() {
        return;
    }
    init();
    let (fixture, _, _hub) = mcp_fixture::serve_hub(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let gw = gateway(json!({"targets": [
        {"name": "stdio", "stdio": {"command": node(), "args": [everything(), "stdio"]}},
        {"name": "fixture", "http": {"url": format!("http://{fixture}/mcp")}},
    ]}))
    .await;
    let (ok, out, err) = run_python(
        "listen_client.py",
        &[&gw.url, "/stdio/", "stdio__toggle-subscriber-updates"],
    )
    .await;
    assert!(ok, "python client failed:\n{out}\n{err}");
    assert!(
        out.contains(r#""ok": true"#) && out.contains("switchboard://mcp/stdio/"),
        "{out}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while gw.backend.listen_streams() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listen stream not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the caller may not see does not leak through a listen stream: a resource authz refuses
/// is not honored (nor subscribed upstream), and a tools `list_changed` caused by a tool that
/// `tools.deny` hides is not passed on, while one that changes the visible list is.
#[tokio::test]
async fn hidden_tools_and_resources_do_not_leak_through_a_listen_stream() {
    init();
    let (modern, _, seen, hub) = mcp_modern::serve_hub(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let gw = gateway(json!({
        "targets": [{"name": "modern", "http": {"url": format!("http://{modern}/mcp")}}],
        "tools": {"deny": ["*secret*"]},
    }))
    .await;
    let (_, _, body) = post(
        &gw.url,
        None,
        &request("d", "server/discover", json!({})).to_string(),
    )
    .await;
    let discovered = messages(&body).pop().unwrap();
    assert_eq!(
        discovered["result"]["capabilities"]["resources"]["subscribe"], true,
        "{discovered}"
    );
    // authz (the harness's stand-in) allows items whose name starts with `mo`.
    let resp = listen(
        &gw.url,
        json!({"toolsListChanged": true, "resourceSubscriptions": ["modern://status", "hidden://secret"]}),
        Some("mo"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = Sse::new(resp);
    let ack = stream.next().await.unwrap();
    assert_eq!(
        ack,
        json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": {
            "notifications": {"toolsListChanged": true, "resourceSubscriptions": ["modern://status"]},
            "_meta": {"io.modelcontextprotocol/subscriptionId": "l-1"}}})
    );
    let upstream = seen
        .all()
        .into_iter()
        .find(|r| r.method == "subscriptions/listen")
        .unwrap();
    assert_eq!(
        upstream.params["notifications"]["resourceSubscriptions"],
        json!(["modern://status"]),
        "the hidden resource is not subscribed upstream"
    );
    // Hidden by tools.deny (authz alone would allow `mo…`): no notification.
    hub.add_tool("mo_secret");
    hub.touch("modern://status");
    let next = stream.next().await.unwrap();
    assert_eq!(
        next,
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {
            "uri": "modern://status", "_meta": {"io.modelcontextprotocol/subscriptionId": "l-1"}}}),
        "the hidden tool's list_changed was dropped"
    );
    hub.add_tool("more_tool");
    let next = stream.next().await.unwrap();
    assert_eq!(next["method"], "notifications/tools/list_changed", "{next}");
    assert_eq!(
        next["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "l-1"
    );
    drop(stream);
    until_released(&hub, &gw, "modern://status").await;
}

/// A listen stream's bounds: more than 256 resource subscriptions are refused; a client that
/// stops reading gets its stream cut once `max_queued_messages` pile up, and the upstream
/// listen is released.
#[tokio::test]
async fn a_listen_stream_is_bounded() {
    init();
    let (modern, _, _seen, hub) = mcp_modern::serve_hub(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let metrics = Metrics::unregistered();
    let gw = gateway_with_metrics(
        json!({
            "targets": [{"name": "modern", "http": {"url": format!("http://{modern}/mcp")}}],
            "max_queued_messages": 4,
        }),
        metrics.clone(),
    )
    .await;
    let many: Vec<String> = (0..257).map(|i| format!("modern://r{i}")).collect();
    let resp = listen(&gw.url, json!({"resourceSubscriptions": many}), None).await;
    let body = resp.text().await.unwrap();
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert_eq!(hub.listening(), 0);
    // The reply is a stream: a client that accepts only JSON is refused.
    let refused = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(request("l-2", "subscriptions/listen", json!({"notifications": {}})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);

    // Big updates (a long URI) fill the socket buffers of a client that does not read.
    let uri = format!("modern://{}", "x".repeat(32 * 1024));
    let resp = listen(&gw.url, json!({"resourceSubscriptions": [uri]}), None).await;
    let mut stream = Sse::new(resp);
    assert_eq!(
        stream.next().await.unwrap()["method"],
        "notifications/subscriptions/acknowledged"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.cuts("listen") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unread listen stream was never cut"
        );
        for _ in 0..32 {
            hub.touch(&uri);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // What was queued, then the end of the stream (no result: the client re-listens).
    let mut n = 0;
    while let Some(m) = stream.next().await {
        assert_eq!(m["method"], "notifications/resources/updated");
        n += 1;
    }
    assert!(n > 0);
    until_released(&hub, &gw, &uri).await;
}
