//! MCP Apps (SEP-1865) through the gateway: a tool's UI is a `ui://` resource named in the
//! tool's `_meta.ui.resourceUri` (and the older `_meta["ui/resourceUri"]`). On a federated
//! route it becomes `ui://{target}__{rest}` everywhere the client sees it (tool definitions,
//! tool results, resource lists, read contents) and reads back from the owning target.

use crate::harness;

use harness::*;
use serde_json::{Value, json};
use switchboard_examples::mcp_fixture::{APP_HTML, APP_MIME, APP_URI};

fn response(body: &str) -> Value {
    messages(body)
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no response in {body}"))
}

/// A fixture serving `test_app_ui` and its `ui://` resource (`apps`), or the plain one.
async fn fixture(apps: bool) -> String {
    init();
    let addr = ([127, 0, 0, 1], 0).into();
    let (addr, task) = if apps {
        switchboard_examples::mcp_fixture::serve_apps(addr).await
    } else {
        switchboard_examples::mcp_fixture::serve(addr).await
    }
    .unwrap();
    // Lives as long as the test process; tests are separate processes under nextest.
    std::mem::forget(task);
    format!("http://{addr}/mcp")
}

async fn rpc(url: &str, sid: &str, id: u64, method: &str, params: Value) -> Value {
    let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let (status, _, body) = post(url, Some(sid), &msg.to_string()).await;
    assert_eq!(status, 200, "{body}");
    response(&body)
}

async fn tool(url: &str, sid: &str, name: &str) -> Value {
    let list = rpc(url, sid, 1, "tools/list", json!({})).await;
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_targets_keep_the_ui_scheme_and_read_the_ui_back() {
    let (plain, apps) = (fixture(false).await, fixture(true).await);
    let gw = gateway(json!({"targets": [
        {"name": "plain", "http": {"url": plain}},
        {"name": "apps", "http": {"url": apps}},
    ]}))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let exposed = "ui://apps__fixture/app.html";

    let t = tool(&gw.url, &sid, "apps__test_app_ui").await;
    assert_eq!(t["_meta"]["ui"]["resourceUri"], exposed, "{t}");
    assert_eq!(t["_meta"]["ui/resourceUri"], exposed, "{t}");
    assert_eq!(
        t["_meta"]["ui"]["visibility"],
        json!(["model", "app"]),
        "{t}"
    );

    let list = rpc(&gw.url, &sid, 2, "resources/list", json!({})).await;
    let uris: Vec<&str> = list["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert!(uris.contains(&exposed), "{uris:?}");
    assert!(
        uris.contains(&"switchboard://mcp/plain/test%3A%2F%2Fstatic-text"),
        "{uris:?}"
    );

    let read = rpc(&gw.url, &sid, 3, "resources/read", json!({"uri": exposed})).await;
    let c = &read["result"]["contents"][0];
    assert_eq!(c["uri"], exposed, "{read}");
    assert_eq!(c["text"], APP_HTML, "{read}");
    assert_eq!(c["mimeType"], APP_MIME, "{read}");

    let call = rpc(
        &gw.url,
        &sid,
        4,
        "tools/call",
        json!({"name": "apps__test_app_ui", "arguments": {}}),
    )
    .await;
    assert_eq!(
        call["result"]["_meta"]["ui"]["resourceUri"], exposed,
        "{call}"
    );
    assert_eq!(
        call["result"]["content"][1]["type"], "resource_link",
        "{call}"
    );
    assert_eq!(call["result"]["content"][1]["uri"], exposed, "{call}");

    // A UI URI of a target that is not there is unknown, not sent to some target.
    let read = rpc(
        &gw.url,
        &sid,
        5,
        "resources/read",
        json!({"uri": "ui://nope__fixture/app.html"}),
    )
    .await;
    assert_eq!(read["error"]["code"], -32602, "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_target_leaves_ui_uris_alone() {
    let gw =
        gateway(json!({"targets": [{"name": "apps", "http": {"url": fixture(true).await}}]})).await;
    let sid = raw_initialize(&gw.url).await;
    let t = tool(&gw.url, &sid, "test_app_ui").await;
    assert_eq!(t["_meta"]["ui"]["resourceUri"], APP_URI, "{t}");
    let read = rpc(&gw.url, &sid, 2, "resources/read", json!({"uri": APP_URI})).await;
    assert_eq!(read["result"]["contents"][0]["uri"], APP_URI, "{read}");
    assert_eq!(read["result"]["contents"][0]["text"], APP_HTML, "{read}");
    let call = rpc(
        &gw.url,
        &sid,
        3,
        "tools/call",
        json!({"name": "test_app_ui", "arguments": {}}),
    )
    .await;
    assert_eq!(
        call["result"]["_meta"]["ui"]["resourceUri"], APP_URI,
        "{call}"
    );
    assert_eq!(call["result"]["content"][1]["uri"], APP_URI, "{call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprefixed_routes_send_a_tools_ui_read_to_the_tools_target() {
    // `prefix: never`: URIs are not namespaced, so a read goes to the target known to own the
    // URI. A UI named only in a tool's `_meta` (no resources/list first) is owned by the tool's
    // target, not the first target.
    let (plain, apps) = (fixture(false).await, fixture(true).await);
    let gw = gateway(json!({"prefix": "never", "targets": [
        {"name": "plain", "http": {"url": plain}},
        {"name": "apps", "http": {"url": apps}},
    ]}))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let t = tool(&gw.url, &sid, "test_app_ui").await;
    assert_eq!(t["_meta"]["ui"]["resourceUri"], APP_URI, "{t}");
    let read = rpc(&gw.url, &sid, 2, "resources/read", json!({"uri": APP_URI})).await;
    assert_eq!(read["result"]["contents"][0]["text"], APP_HTML, "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_host_reads_the_tools_ui_through_two_targets() {
    if !have("python with the mcp SDK", &python()) {
        return;
    }
    let (plain, apps) = (fixture(false).await, fixture(true).await);
    let gw = gateway(json!({"targets": [
        {"name": "plain", "http": {"url": plain}},
        {"name": "apps", "http": {"url": apps}},
    ]}))
    .await;
    let (ok, out, err) = run_python("apps_client.py", &[&gw.url, "apps__test_app_ui"]).await;
    assert!(ok, "{out}\n{err}");
    let v: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["uri"], "ui://apps__fixture/app.html", "{v}");
    assert_eq!(v["html"], APP_HTML, "{v}");
    assert_eq!(v["mime"], APP_MIME, "{v}");
}
