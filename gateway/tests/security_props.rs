//! Property tests (proptest, on stable, in CI) for the parsers and checkers that face hostile
//! input. They call the same entry points as the cargo-fuzz targets in `fuzz/`
//! (`switchboard_gateway::fuzzing`), with structured inputs that reach deeper than random
//! bytes: valid configs with mutations, generated JSON values, CEL built from the rule
//! grammar's pieces, and mutated real tokens.

use proptest::prelude::*;
use serde_json::Value;
use switchboard_gateway::fuzzing;

const VALID_CONFIG: &str = r#"
admin: {bind: "127.0.0.1:0"}
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {max_body_bytes: 1000, json: {max_depth: 8}}
    policies:
      authz: {rules: ['jwt.sub == "alice"', 'mcp.tool.name.startsWith("a")']}
    routes:
      - name: r
        match: {path_prefix: /mcp}
        policies:
          authn:
            mode: optional
            jwt: {issuer: "https://idp", audiences: [gw], jwks: {url: "http://127.0.0.1:1/jwks"}, clock_skew: 30s}
            api_keys: [{name: k, sha256: "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", rate_limit: {requests: 5, per: 1m}}]
            resource_metadata: {authorization_servers: ["https://idp"]}
          upstream_auth: {env: SET}
        http: {url: "http://127.0.0.1:2"}
"#;

/// 256 cases per property, unless `PROPTEST_CASES` asks for another number (longer runs).
fn cases() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z\\[\\]{}\"\\\\,: ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(24, 200, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\\[{\"]{0,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn config_loader_with_mutations(pos in 0usize..2000, insert in "[ -~\n\t]{0,6}", cut in 0usize..4) {
        let mut text = VALID_CONFIG.to_string();
        let pos = pos % text.len();
        let pos = (0..=pos).rev().find(|p| text.is_char_boundary(*p)).unwrap_or(0);
        let end = (pos + cut).min(text.len());
        let end = (end..=text.len()).find(|p| text.is_char_boundary(*p)).unwrap_or(text.len());
        text.replace_range(pos..end, &insert);
        fuzzing::config(text.as_bytes());
    }

    #[test]
    fn config_loader_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::config(&data);
    }

    #[test]
    fn jsonrpc_generated_values(v in json_value(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
        fuzzing::jsonrpc(text.as_bytes());
    }

    /// The request body reader (`json_body::BoundedJson`) with any limits and any chunking:
    /// never a body over the limit, depth over `max_depth` refused, valid JSON within the
    /// limits accepted whole.
    #[test]
    fn json_body_reader_generated_values(
        v in json_value(),
        chunk in 1usize..80,
        max_depth in 1usize..10,
        max_message_bytes in 1usize..600,
        max_batch in 1usize..6,
        rpc in any::<bool>(),
    ) {
        let limits = switchboard_gateway::json_body::JsonLimits { max_depth, max_batch, max_message_bytes };
        let kind = if rpc {
            switchboard_gateway::json_body::BodyKind::JsonRpc
        } else {
            switchboard_gateway::json_body::BodyKind::Json
        };
        fuzzing::json_body(v.to_string().as_bytes(), &limits, chunk, kind);
    }

    #[test]
    fn json_body_reader_deep_nesting(depth in 0usize..300, max_depth in 1usize..80, chunk in 1usize..40, obj in any::<bool>()) {
        let (open, close) = if obj { (r#"{"a":"#, "}") } else { ("[", "]") };
        let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let limits = switchboard_gateway::json_body::JsonLimits { max_depth, max_batch: 4, max_message_bytes: 1 << 20 };
        fuzzing::json_body(text.as_bytes(), &limits, chunk, switchboard_gateway::json_body::BodyKind::Json);
    }

    #[test]
    fn jsonrpc_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::jsonrpc(&data);
    }

    #[test]
    fn llm_translation_of_generated_json(v in json_value()) {
        fuzzing::llm_translation(v.to_string().as_bytes());
    }

    #[test]
    fn llm_translation_of_stream_like_text(data in "(data: |event: |:)?[ -~\n{}\"\\[\\]]{0,300}") {
        fuzzing::llm_translation(data.as_bytes());
    }

    #[test]
    fn llm_translation_of_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..400)) {
        fuzzing::llm_translation(&data);
    }

    #[test]
    fn mcp_names_round_trip(data in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::mcp_names(&data);
    }

    #[test]
    fn jsonrpc_bracket_soup(data in "[\\[\\]{}\",:\\\\ a1]{0,200}") {
        fuzzing::jsonrpc(data.as_bytes());
    }

    #[test]
    fn authz_rules_from_grammar_pieces(parts in prop::collection::vec(prop_oneof![
        Just("jwt.sub"), Just("request.headers[\"x-team\"]"), Just("mcp.tool.name"), Just("llm.model"),
        Just("api_key.name"), Just("=="), Just("!="), Just("&&"), Just("||"), Just("!"), Just("("), Just(")"),
        Just("\"alice\""), Just(".startsWith(\"s\")"), Just(" in "), Just("[\"a\", \"b\"]"), Just("has("),
        Just("size("), Just("1"), Just("+"), Just("'"), Just("."), Just("unknown_var"), Just("\\"),
    ], 0..12)) {
        fuzzing::authz_rule(parts.concat().as_bytes());
    }

    #[test]
    fn authz_rules_arbitrary_text(rule in "\\PC{0,64}") {
        fuzzing::authz_rule(rule.as_bytes());
    }

    #[test]
    fn jwt_arbitrary_tokens(t in "[A-Za-z0-9_\\-]{0,40}\\.[A-Za-z0-9_\\-]{0,80}\\.[A-Za-z0-9_\\-]{0,90}") {
        fuzzing::jwt(t.as_bytes());
    }

    #[test]
    fn jwt_structured_headers(alg in prop_oneof![Just("none"), Just("HS256"), Just("EdDSA"), Just("ES256"), Just("RS256"), Just("nOnE")],
                              kid in prop_oneof![Just("k1"), Just("k2"), Just("k9")],
                              sig in "[A-Za-z0-9_\\-]{0,90}") {
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let h = b64(&serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"}));
        let c = b64(&serde_json::json!({"iss": "https://idp.fuzz", "aud": "fuzz", "sub": "x", "exp": 4_000_000_000u64}));
        fuzzing::jwt(format!("{h}.{c}.{sig}").as_bytes());
    }
}

#[test]
fn the_valid_config_is_valid() {
    // The mutation test starts from a config that loads, so its mutations probe real paths.
    let env = |n: &str| (n == "SET").then(|| "value".to_string());
    switchboard_gateway::config::load_str(VALID_CONFIG, "t.yaml", &env).unwrap();
}

/// Parses an SSE byte stream with eventsource-stream (the parser the MCP and LLM clients use).
fn parse_sse(bytes: bytes::Bytes) -> Vec<eventsource_stream::Event> {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(bytes)]).eventsource();
    futures::executor::block_on(stream.collect::<Vec<_>>())
        .into_iter()
        .map(|e| e.expect("the event frame parses"))
        .collect()
}

proptest! {
    #![proptest_config(cases())]

    /// The session SSE writer's frames parse back to exactly the event written: one event,
    /// same id, type and data (no field injection), line ends normalized to LF.
    #[test]
    fn sse_event_frames_round_trip(id in "[ -~]{1,12}", ev in "[a-z]{1,8}", data in "[ -~\r\n]{0,64}") {
        let frame = switchboard_sessions::sse::event(Some(&id), Some(&ev), &data);
        let events = parse_sse(frame);
        prop_assert_eq!(events.len(), 1);
        // CRLF and lone CR line ends are normalized to LF, as an SSE parser sees them.
        let expected = data.replace("\r\n", "\n").replace('\r', "\n");
        prop_assert_eq!(&events[0].data, &expected);
        prop_assert_eq!(&events[0].event, &ev);
        prop_assert_eq!(&events[0].id, &id);
    }
}

/// Found by the property above with CRs in the payload: the SSE writer once split data on
/// `\n` only, but SSE parsers also end a line at a lone `\r`, so payload text after a CR
/// became a field of its own (here a forged `id`, which a reconnecting client sends back as
/// `Last-Event-ID`).
#[test]
fn sse_lone_cr_in_data_cannot_inject_fields() {
    let frame = switchboard_sessions::sse::event(Some("1"), Some("message"), "hello\rid: forged");
    let events = parse_sse(frame);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, "1", "the payload forged the event id");
    assert_eq!(events[0].data, "hello\nid: forged");
}

/// Inputs the fuzzers found, kept as regression cases.
#[test]
fn fuzz_regressions() {
    // Lone CRs are YAML line breaks: an error on the last of them is still inside the text.
    fuzzing::config(b"adein:\n  &- name&\r' name&\r name: 00\n    \x02\0\0\0");
}
