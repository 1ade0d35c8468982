//! server-everything (npm) federated three times — stdio, streamable HTTP, legacy SSE — behind
//! one route, driven by the official Python and TypeScript SDKs.

use crate::harness;

use harness::*;
use serde_json::json;

async fn three_targets() -> Option<(Gateway, Everything, Everything)> {
    if !have_peers() {
        return None;
    }
    let http = start_everything("streamableHttp").await;
    let sse = start_everything("sse").await;
    let gw = gateway(json!({
        "targets": [
            {"name": "stdio", "stdio": {"command": node(), "args": [everything(), "stdio"]}},
            {"name": "http", "http": {"url": http.url}},
            {"name": "sse", "sse": {"url": sse.url}},
        ]
    }))
    .await;
    Some((gw, http, sse))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_streamable_http_sees_all_three_targets() {
    let Some((gw, _h, _s)) = three_targets().await else {
        return;
    };
    let (ok, out, err) = run_python(
        "federation_client.py",
        &[&gw.url, "streamable", "stdio,http,sse"],
    )
    .await;
    assert!(ok, "python client failed:\n{out}\n{err}");
    assert!(out.contains("\"ok\": true"), "{out}");
    println!("python (streamable HTTP): {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_legacy_sse_sees_all_three_targets() {
    let Some((gw, _h, _s)) = three_targets().await else {
        return;
    };
    let url = format!("{}/sse", gw.url);
    let (ok, out, err) = run_python("federation_client.py", &[&url, "sse", "stdio,http,sse"]).await;
    assert!(ok, "python client failed:\n{out}\n{err}");
    println!("python (legacy SSE): {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_sees_all_three_targets() {
    let Some((gw, _h, _s)) = three_targets().await else {
        return;
    };
    let (ok, out, err) = run_node("ts/federation_client.mjs", &[&gw.url, "stdio,http,sse"]).await;
    assert!(ok, "typescript client failed:\n{out}\n{err}");
    println!("typescript: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_target_is_unprefixed() {
    if !have_peers() {
        return;
    }
    let http = start_everything("streamableHttp").await;
    let gw = gateway(json!({"targets": [{"name": "only", "http": {"url": http.url}}]})).await;
    let (ok, out, err) = run_python("federation_client.py", &[&gw.url, "streamable", ""]).await;
    assert!(ok, "python client failed:\n{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_updates_reach_the_subscriber_with_namespaced_uris() {
    let Some((gw, _h, _s)) = three_targets().await else {
        return;
    };
    let (ok, out, err) = run_python("subscriptions_client.py", &[&gw.url, "stdio,http,sse"]).await;
    assert!(ok, "python client failed:\n{out}\n{err}");
    assert!(
        out.contains("switchboard://mcp/http/")
            && out.contains("switchboard://mcp/stdio/")
            && out.contains("switchboard://mcp/sse/"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_over_legacy_sse_sees_all_three_targets() {
    let Some((gw, _h, _s)) = three_targets().await else {
        return;
    };
    let url = format!("{}/sse", gw.url);
    let (ok, out, err) =
        run_node("ts/federation_client.mjs", &[&url, "stdio,http,sse", "sse"]).await;
    assert!(ok, "typescript client failed:\n{out}\n{err}");
}
