//! Validation rules of `routes[].a2a` (one test per rule), and the `sessions:` block.

use switchboard_gateway::config;

fn errors(route_a2a: &str) -> String {
    let yaml = format!(
        "listeners:\n  - name: l\n    bind: 127.0.0.1:0\n    routes:\n      - name: r\n        match: {{path_prefix: /a}}\n        a2a: {route_a2a}\n"
    );
    match config::load_str(&yaml, "t.yaml", &|_: &str| None) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_route_is_valid() {
    assert_eq!(errors("{url: http://127.0.0.1:9999}"), "");
    assert_eq!(
        errors(
            "{upstreams: [http://a:1, http://b:1], public_url: https://gw.example/a, task_ttl: 1h, push_notifications: {allowed_urls: [https://hooks.example/a2a/]}}"
        ),
        ""
    );
}

#[test]
fn needs_url_or_upstreams() {
    let e = errors("{}");
    assert!(e.contains("listeners[0].routes[0].a2a: set `url`"), "{e}");
}

#[test]
fn url_and_upstreams_exclude_each_other() {
    let e = errors("{url: http://a:1, upstreams: [http://b:1]}");
    assert!(
        e.contains("a2a.upstreams: set `url` or `upstreams`, not both"),
        "{e}"
    );
}

#[test]
fn urls_are_checked() {
    let e = errors("{url: ftp://a}");
    assert!(e.contains("a2a.url: scheme `ftp`"), "{e}");
    let e = errors("{upstreams: [http://a:1, 'not a url']}");
    assert!(e.contains("a2a.upstreams[1]"), "{e}");
    let e = errors("{url: http://a:1, public_url: 'gw/a'}");
    assert!(e.contains("a2a.public_url"), "{e}");
}

#[test]
fn duplicate_upstreams_are_errors() {
    let e = errors("{upstreams: [http://a:1, http://a:1]}");
    assert!(
        e.contains("a2a.upstreams[1]: `http://a:1` is listed twice"),
        "{e}"
    );
}

#[test]
fn push_allow_list_entries_are_urls_without_credentials() {
    let e = errors("{url: http://a:1, push_notifications: {allowed_urls: ['*']}}");
    assert!(e.contains("a2a.push_notifications.allowed_urls[0]"), "{e}");
    let e = errors("{url: http://a:1, push_notifications: {allowed_urls: ['http://u:p@hooks/']}}");
    assert!(
        e.contains("allowed_urls[0]: must not carry credentials"),
        "{e}"
    );
}

#[test]
fn task_ttl_must_be_positive() {
    let e = errors("{url: http://a:1, task_ttl: 0s}");
    assert!(e.contains("a2a.task_ttl: must be more than 0s"), "{e}");
}

#[test]
fn reply_caps_must_be_positive() {
    let e = errors("{url: http://a:1, max_response_bytes: 0, max_card_bytes: 0}");
    assert!(
        e.contains("a2a.max_response_bytes: must be at least 1"),
        "{e}"
    );
    assert!(e.contains("a2a.max_card_bytes: must be at least 1"), "{e}");
    assert_eq!(
        errors("{url: http://a:1, max_response_bytes: 1024, max_card_bytes: 1024}"),
        ""
    );
}

#[test]
fn unknown_keys_are_errors() {
    let e = errors("{url: http://a:1, upstream: http://b:1}");
    assert!(e.contains("upstream"), "{e}");
}

#[test]
fn a2a_and_http_on_one_route_is_an_error() {
    let yaml = "listeners:\n  - name: l\n    bind: 127.0.0.1:0\n    routes:\n      - name: r\n        http: {url: http://a:1}\n        a2a: {url: http://a:1}\n";
    let e = config::load_str(yaml, "t.yaml", &|_: &str| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sets http and a2a"), "{e}");
}

#[test]
fn sessions_block_is_validated() {
    let yaml = "sessions: {store: redis}\nlisteners: []\n";
    let e = config::load_str(yaml, "t.yaml", &|_: &str| None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sessions.redis: required when store is redis"),
        "{e}"
    );
}

#[test]
fn example_config_is_valid() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/a2a/gateway.yaml");
    let cfg = config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let a2a = cfg.listeners[0].routes[0].a2a.as_ref().unwrap();
    assert_eq!(a2a.upstreams.len(), 2);
}
