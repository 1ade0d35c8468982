//! Memory held per client stream is bounded: a chatty target and a client that does not read
//! its SSE stream get the stream closed once `max_queued_messages` pile up, rather than the
//! gateway buffering without end; the shared stdio child keeps flowing for everyone, the
//! session stays usable, and a reconnect with `Last-Event-ID` gets the events the session's
//! log kept (`tests/py/flood_target.py`: a target that floods notifications).

use crate::harness;

use std::time::Duration;

use harness::*;
use serde_json::{Value, json};
use switchboard_mcp::Metrics;

/// Notifications the target floods: about 8 MB, twice what loopback socket buffers held here.
const FLOOD: u64 = 8000;
/// Events a session's log keeps per stream (`sessions.event_log_size`, default).
const LOG_SIZE: u64 = 1024;

/// One SSE event: its id and JSON payload (`None` for a priming event).
fn events(text: &str) -> Vec<(String, Option<Value>)> {
    text.split("\n\n")
        .filter_map(|ev| {
            let id = ev.lines().find_map(|l| l.strip_prefix("id: "))?.to_string();
            let data = ev
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| serde_json::from_str(d).ok());
            Some((id, data))
        })
        .collect()
}

/// The flood index of a notification.
fn index(v: &Value) -> u64 {
    v.pointer("/params/data/i").and_then(Value::as_u64).unwrap()
}

fn get(url: &str, sid: &str, last: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid);
    if let Some(l) = last {
        req = req.header("last-event-id", l);
    }
    req
}

async fn call(url: &str, sid: &str, tool: &str, args: Value) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    let (status, _, reply) = post(url, Some(sid), &body.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

#[tokio::test]
async fn a_client_that_does_not_read_its_stream_is_cut_and_resumes_from_the_log() {
    init();
    if !have("python", &python()) {
        return;
    }
    let script = root().join("mcp/tests/py/flood_target.py");
    let metrics = Metrics::unregistered();
    let gw = gateway_with_metrics(
        json!({"max_queued_messages": 256, "targets": [{"name": "chatty",
            "stdio": {"command": python(), "args": [script]}}]}),
        metrics.clone(),
    )
    .await;
    let sid = raw_initialize(&gw.url).await;

    // Open the standalone stream and do not read it while the target floods it.
    let mut resp = get(&gw.url, &sid, None).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let reply = call(&gw.url, &sid, "flood", json!({"n": FLOOD})).await;
    assert!(reply.contains("flooded"), "{reply}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.cuts("standalone") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unread stream was never cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Reading now: what was on its way, then the end of the stream.
    let mut text = String::new();
    let read_all = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the cut stream ends");
    let live = events(&text);
    let got: Vec<u64> = live
        .iter()
        .filter_map(|(_, d)| d.as_ref())
        .map(index)
        .collect();
    assert!(!got.is_empty(), "some events went out before the cut");
    assert!(
        (got.len() as u64) < FLOOD,
        "the stream was cut before the flood ended: {}",
        got.len()
    );
    assert_eq!(
        got,
        (0..got.len() as u64).collect::<Vec<_>>(),
        "in order, none skipped"
    );
    let (last_id, last) = live
        .iter()
        .rev()
        .find_map(|(id, d)| Some((id.clone(), index(d.as_ref()?))))
        .unwrap();

    // The session is still usable, and so is another one on the same child: its reply came
    // after the whole flood on the child's stdout, so the shared reader was never held up.
    assert!(
        call(&gw.url, &sid, "echo", json!({}))
            .await
            .contains(r#""text":"echo""#)
    );
    let other = raw_initialize(&gw.url).await;
    assert!(
        call(&gw.url, &other, "echo", json!({}))
            .await
            .contains(r#""text":"echo""#)
    );

    // Everything after the cut went to the session's log: a reconnect with `Last-Event-ID`
    // gets the events after it that the log still keeps (its last `event_log_size`), then the
    // rest live, up to the flood's end.
    let mut resp = get(&gw.url, &sid, Some(&last_id)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    let replay = async {
        loop {
            let chunk = resp
                .chunk()
                .await
                .unwrap()
                .expect("the resumed stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains(&format!(r#""i":{},"#, FLOOD - 1)) && text.ends_with("\n\n") {
                return events(&text)
                    .iter()
                    .filter_map(|(_, d)| d.as_ref())
                    .map(index)
                    .collect::<Vec<_>>();
            }
        }
    };
    let replayed = tokio::time::timeout(Duration::from_secs(30), replay)
        .await
        .expect("the replay reaches the end of the flood");
    let first = replayed[0];
    assert!(
        first > last,
        "only what the client did not get: {first} after {last}"
    );
    assert_eq!(
        replayed,
        (first..FLOOD).collect::<Vec<_>>(),
        "in order, none skipped"
    );
    assert!(
        first == last + 1 || replayed.len() as u64 >= LOG_SIZE,
        "events are missing only beyond the log's bound: {} replayed from {first}, last read {last}",
        replayed.len()
    );
    assert_eq!(metrics.cuts("standalone"), 1, "the resumed stream was read");
}

#[tokio::test]
async fn a_call_whose_stream_is_not_read_is_cut_and_its_reply_is_kept_for_resumption() {
    init();
    if !have("python", &python()) {
        return;
    }
    let script = root().join("mcp/tests/py/flood_target.py");
    let metrics = Metrics::unregistered();
    let gw = gateway_with_metrics(
        json!({"max_queued_messages": 256, "targets": [{"name": "chatty",
            "stdio": {"command": python(), "args": [script]}}]}),
        metrics.clone(),
    )
    .await;
    let sid = raw_initialize(&gw.url).await;

    // The target floods while the call is in flight (its messages go with the call, at a pace
    // the gateway's logging keeps up with), then answers; the client does not read the call's
    // stream.
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "flood", "arguments": {"n": FLOOD, "before": true, "pace": true}}});
    let mut resp = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.cuts("request") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unread stream was never cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut text = String::new();
    let read_all = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the cut stream ends");
    let live = events(&text);
    assert!(
        live.iter()
            .all(|(_, d)| d.as_ref().is_none_or(|d| d.get("id").is_none())),
        "the reply came after the cut"
    );
    let (last_id, _) = live.last().expect("events before the cut").clone();

    // The reply was logged with the call's stream: a GET with `Last-Event-ID` of that stream
    // gets it.
    let mut resp = get(&gw.url, &sid, Some(&last_id)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    let replay = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), replay)
        .await
        .expect("the answered call's stream ends after its replay");
    let reply = events(&text)
        .into_iter()
        .filter_map(|(_, d)| d)
        .find(|d| d.get("id").is_some())
        .expect("the reply is replayed");
    assert_eq!(reply["id"], 9);
    assert_eq!(reply["result"]["content"][0]["text"], "flooded", "{reply}");
    assert_eq!(metrics.cuts("request"), 1);
}

#[tokio::test]
async fn an_unread_legacy_stream_is_cut_and_its_session_ends() {
    init();
    if !have("python", &python()) {
        return;
    }
    let script = root().join("mcp/tests/py/flood_target.py");
    let metrics = Metrics::unregistered();
    let gw = gateway_with_metrics(
        json!({"max_queued_messages": 256, "targets": [{"name": "chatty",
            "stdio": {"command": python(), "args": [script]}}]}),
        metrics.clone(),
    )
    .await;
    let base = gw.url.trim_end_matches("/mcp").to_string();
    let mut resp = reqwest::Client::new()
        .get(format!("{}/sse", gw.url))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    while !buf.contains("\n\n") {
        buf.push_str(&String::from_utf8_lossy(
            &resp.chunk().await.unwrap().unwrap(),
        ));
    }
    let endpoint = buf
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .trim()
        .to_string();
    let message = |body: Value| {
        reqwest::Client::new()
            .post(format!("{base}{endpoint}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}});
    assert_eq!(message(init).await.unwrap().status(), 202);
    while !buf.contains("\"id\":0") {
        buf.push_str(&String::from_utf8_lossy(
            &resp.chunk().await.unwrap().unwrap(),
        ));
    }
    assert_eq!(gw.backend.session_count(), 1);

    // Everything of a legacy session travels on its one stream; the client stops reading it.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "flood", "arguments": {"n": FLOOD}}});
    assert_eq!(message(call).await.unwrap().status(), 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.cuts("legacy") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unread stream was never cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read_all = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the cut stream ends");
    let got = buf.matches("notifications/message").count() as u64;
    assert!(got > 0 && got < FLOOD, "cut in the flood: {got}");
    // Without a log to resume from, the session ends with its stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gw.backend.session_count() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the session ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    assert_eq!(message(ping).await.unwrap().status(), 404);
}

/// Waits (bounded) until `stream`'s cut has been counted.
async fn until_cut(metrics: &Metrics, stream: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.cuts(stream) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unread {stream} stream was never cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stateless (2026-07-28) request of a client that offers roots.
fn stateless(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"roots": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}});
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

async fn post_json(url: &str, body: &Value) -> Value {
    let (status, _, text) = post(url, None, &body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    messages(&text)
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no response in {text}"))
}

#[tokio::test]
async fn a_parked_calls_unread_stream_is_cut_and_its_requests_to_the_client_are_refused_to_the_target()
 {
    init();
    if !have("python", &python()) {
        return;
    }
    let script = root().join("mcp/tests/py/flood_target.py");
    let metrics = Metrics::unregistered();
    let gw = gateway_with_metrics(
        json!({"max_queued_messages": 64, "targets": [{"name": "chatty",
            "stdio": {"command": python(), "args": [script]}}]}),
        metrics.clone(),
    )
    .await;

    // The target asks for roots (`ask-1`): the stateless client gets `input_required` and the
    // call is parked; nobody reads it while the target floods, so its stream is cut.
    let call = stateless(
        1,
        "tools/call",
        json!({"name": "ask", "arguments": {"n": 1000}}),
    );
    let r = post_json(&gw.url, &call).await;
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let requests = r["result"]["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{r}");
    let (key, req) = requests.iter().next().unwrap();
    assert_eq!(req["method"], "roots/list");
    let state = r["result"]["requestState"].clone();
    until_cut(&metrics, "input").await;

    // Its second request (`ask-2`, after the flood) reaches no client: the gateway answers it
    // to the target with an error. The client's retry answers `ask-1`; the target, having both
    // replies, ends the call with them.
    let mut retry = call.clone();
    retry["id"] = json!(2);
    retry["params"]["inputResponses"] = json!({key.clone(): {"roots": []}});
    retry["params"]["requestState"] = state;
    let r = tokio::time::timeout(Duration::from_secs(30), post_json(&gw.url, &retry))
        .await
        .expect("the target was not left waiting");
    assert_eq!(r["id"], 2, "{r}");
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    let replies: Value = serde_json::from_str(text).unwrap();
    assert_eq!(replies["ask-1"]["result"]["roots"], json!([]), "{replies}");
    let refused = &replies["ask-2"]["error"];
    assert_eq!(refused["code"], -32603, "{replies}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{replies}"
    );
    assert_eq!(metrics.cuts("input"), 1);
    assert_eq!(gw.backend.parked_inputs(), 0);
}

#[tokio::test]
async fn what_does_not_fit_a_calls_stream_goes_to_the_sessions_get_stream() {
    init();
    if !have("python", &python()) {
        return;
    }
    let script = root().join("mcp/tests/py/flood_target.py");
    let metrics = Metrics::unregistered();
    // A queue of one: the task that logs the call's messages cannot keep up with a burst.
    let gw = gateway_with_metrics(
        json!({"max_queued_messages": 1, "targets": [{"name": "chatty",
            "stdio": {"command": python(), "args": [script]}}]}),
        metrics.clone(),
    )
    .await;
    let sid = raw_initialize(&gw.url).await;
    let mut stream = get(&gw.url, &sid, None).send().await.unwrap();
    assert_eq!(stream.status(), 200);

    // The target floods while the call is in flight: its messages belong to the call's stream.
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "flood", "arguments": {"n": 2000, "before": true}}});
    let call = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);

    // Those that did not fit arrive on the GET stream, logged there (an id of its log).
    let mut text = String::new();
    let spilled = async {
        loop {
            let chunk = stream
                .chunk()
                .await
                .unwrap()
                .expect("the GET stream delivers before it ends");
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(ev) = events(&text).into_iter().find(|(_, d)| {
                d.as_ref()
                    .is_some_and(|d| d["method"] == "notifications/message")
            }) {
                return ev;
            }
        }
    };
    let (id, data) = tokio::time::timeout(Duration::from_secs(30), spilled)
        .await
        .expect("flood notifications reach the GET stream");
    let data = data.unwrap();
    assert!(index(&data) < 2000, "{data}");
    let parts: Vec<&str> = id.split('/').collect();
    assert_eq!(parts.len(), 3, "{id}");
    assert_eq!(
        parts[1], "get",
        "logged with the session's GET stream: {id}"
    );
    drop(call);
}
