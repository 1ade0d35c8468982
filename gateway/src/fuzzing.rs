//! Entry points for fuzzers and property tests. Each takes arbitrary bytes, drives one parser
//! or checker of the gateway with them and panics when an invariant breaks (a panic is what a
//! fuzzer reports). The cargo-fuzz targets in `fuzz/` call these on nightly; the proptest
//! suite `gateway/tests/security_props.rs` calls the same functions on stable in CI, so both
//! check the same invariants.
//!
//! Compiled only with the non-default `fuzzing` feature (the fuzz crate and this crate's tests
//! enable it), so the product never contains it.

use std::sync::OnceLock;

use crate::auth::jwks::{Jwks, KeySet};
use crate::auth::jwt::JwtVerifier;
use crate::authz::{Authorizer, AuthzContext, McpAttributes};
use crate::config::{AuthzPolicy, JwksConfig, JwtConfig};
use crate::json_body::{BodyKind, BoundedJson, InputError, JsonLimits, scan};

/// The configuration loader: never panics, and every issue it reports is located inside the
/// text (or unlocated) and has a message.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "SET").then(|| "value".to_string());
    if let Err(errors) = crate::config::load_str(text, "fuzz.yaml", &env) {
        // YAML ends a line at `\r\n`, `\n` or a lone `\r` (and so do editors).
        let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count() + 1;
        assert!(!errors.issues.is_empty(), "an error without issues");
        for i in &errors.issues {
            assert!(!i.message.is_empty(), "an issue without a message: {i:?}");
            if let Some(l) = i.line {
                assert!(
                    l >= 1 && l <= lines,
                    "line {l} outside the text ({lines}): {i:?}"
                );
            }
        }
    }
}

/// Nesting depth of a parsed JSON value (scalars are depth 0).
fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The JSON-RPC body reader of MCP and A2A routes ([`BoundedJson`], what
/// the backend stage's body reader in [`crate::backend`] drives), with limits small enough for a fuzzer to cross:
/// the body arrives in chunks whose size follows from its length, and [`json_body`] checks
/// the invariants.
pub fn jsonrpc(data: &[u8]) {
    let limits = JsonLimits {
        max_depth: 16,
        max_batch: 8,
        max_message_bytes: 4 * 1024,
    };
    json_body(data, &limits, data.len() % 61 + 1, BodyKind::JsonRpc);
}

/// Reads `data` through a [`BoundedJson`] in chunks of `chunk` bytes and checks: never a panic;
/// never a body over the limit, nor one other than what was sent; a body over the limit or
/// nesting deeper than `max_depth` is refused; every valid JSON text within the limits is
/// accepted whole; on valid JSON the scanner's depth and batch length agree with serde's parse.
pub fn json_body(data: &[u8], limits: &JsonLimits, chunk: usize, kind: BodyKind) {
    let limit = limits.max_message_bytes;
    let result = BoundedJson::new(limits, usize::MAX, kind, None).and_then(|mut r| {
        for c in data.chunks(chunk.max(1)) {
            r.push(bytes::Bytes::copy_from_slice(c))?;
        }
        r.finish()
    });
    let unlimited = scan(data, usize::MAX).expect("no depth limit");
    match &result {
        Ok(body) => {
            assert!(body.len() <= limit, "a body over the limit was returned");
            assert_eq!(&body[..], data, "the body returned is not the body sent");
            assert!(
                unlimited.depth <= limits.max_depth,
                "too deep, yet accepted"
            );
        }
        Err(InputError::TooLarge { .. }) => assert!(data.len() > limit),
        Err(InputError::TooDeep { .. }) => assert!(unlimited.depth > limits.max_depth),
        Err(InputError::BatchTooLarge { .. }) => {
            assert!(kind == BodyKind::JsonRpc && unlimited.top_array);
            assert!(unlimited.top_len > limits.max_batch);
        }
    }
    if data.len() > limit || unlimited.depth > limits.max_depth {
        assert!(result.is_err(), "over a limit, yet accepted");
    }
    // serde_json's own recursion limit is 128; beyond it there is nothing to compare with.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    assert_eq!(
        unlimited.depth,
        depth(&value),
        "scanner depth disagrees with serde"
    );
    assert_eq!(unlimited.top_array, value.is_array());
    if let serde_json::Value::Array(a) = &value {
        assert_eq!(unlimited.top_len, a.len(), "scanner batch length disagrees");
    }
    let batch_ok =
        kind == BodyKind::Json || value.as_array().is_none_or(|a| a.len() <= limits.max_batch);
    if data.len() <= limit && unlimited.depth <= limits.max_depth && batch_ok {
        assert!(
            result.is_ok(),
            "valid JSON within the limits refused: {result:?}"
        );
    }
}

/// CEL authorization rules: compiling and evaluating any text never panics, and a rule that
/// validation accepts also compiles into the authorizer.
pub fn authz_rule(data: &[u8]) {
    let Ok(rule) = std::str::from_utf8(data) else {
        return;
    };
    let policy = AuthzPolicy {
        rules: vec![rule.to_string()],
    };
    let valid = policy.validate("rules").is_empty();
    let a = Authorizer::new(&policy);
    assert_eq!(
        a.has_rules(),
        valid,
        "validate and compile disagree on {rule:?}"
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-team", http::HeaderValue::from_static("ml"));
    let cx = AuthzContext {
        method: "POST",
        path: "/mcp",
        headers: Some(&headers),
        mcp: Some(McpAttributes {
            method: "tools/call",
            tool: Some("search__web"),
            ..Default::default()
        }),
        llm_model: Some("small"),
        ..Default::default()
    };
    let _ = a.allows(&cx);
    let _ = a.allows_route(&cx, true);
    let _ = a.allows_route(&cx, false);
}

fn verifier() -> &'static (tokio::runtime::Runtime, JwtVerifier) {
    static V: OnceLock<(tokio::runtime::Runtime, JwtVerifier)> = OnceLock::new();
    V.get_or_init(|| {
        let cfg = JwtConfig {
            issuer: "https://idp.fuzz".into(),
            audiences: vec!["fuzz".into()],
            jwks: JwksConfig {
                file: Some("/nonexistent".into()),
                url: None,
            },
            clock_skew: std::time::Duration::from_secs(60),
            refresh_interval: std::time::Duration::from_secs(3600),
            min_refresh_interval: std::time::Duration::from_secs(3600),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        // Built outside the runtime: no background refresh.
        let jwks = Jwks::new(&cfg);
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "k1",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "EC", "crv": "P-256", "kid": "k2", "alg": "ES256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]});
        jwks.set(KeySet::parse(doc.to_string().as_bytes()).expect("a valid JWKS"));
        let v = JwtVerifier::with_jwks(&cfg, jwks);
        (rt, v)
    })
}

/// JWT verification: arbitrary tokens never panic and are never accepted (no private key for
/// the key set exists).
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let (rt, v) = verifier();
    let accepted = rt.block_on(v.verify(token));
    assert!(accepted.is_err(), "a forged token was accepted: {token:?}");
}

/// LLM translation: any bytes as an OpenAI or Anthropic request translate both ways without
/// panicking, and any bytes as a provider stream translate to every caller format without
/// panicking and with the same output whether they arrive whole or split in two.
pub fn llm_translation(data: &[u8]) {
    use switchboard_llm::format::{ApiFormat, anthropic as a, openai as o};
    use switchboard_llm::translate::anthropic::{chat_to_messages, messages_to_chat};
    use switchboard_llm::translate::stream::{StreamTranslator, UpstreamFormat};
    use switchboard_llm::translate::{bedrock, gemini};

    if let Ok(req) = serde_json::from_slice::<o::ChatRequest>(data) {
        let m = chat_to_messages(&req, "m");
        let _ = messages_to_chat(&m, "m");
        let _ = gemini::chat_to_generate(&req);
        let _ = bedrock::chat_to_converse(&req);
    }
    if let Ok(req) = serde_json::from_slice::<a::MessagesRequest>(data) {
        let c = messages_to_chat(&req, "m");
        let _ = chat_to_messages(&c, "m");
    }
    let cut = data.len() / 2;
    for upstream in [
        UpstreamFormat::OpenAi,
        UpstreamFormat::Anthropic,
        UpstreamFormat::Gemini,
        UpstreamFormat::Bedrock,
    ] {
        for client in [ApiFormat::OpenAi, ApiFormat::Anthropic] {
            let run = |pieces: &[&[u8]]| {
                let mut t = StreamTranslator::new(client, upstream, true, "m", 0);
                let mut out = bytes::BytesMut::new();
                for p in pieces {
                    t.feed(p, &mut out);
                }
                t.finish(&mut out);
                out
            };
            let whole = run(&[data]);
            let split = run(&[&data[..cut], &data[cut..]]);
            assert_eq!(
                whole, split,
                "stream translation depends on chunk boundaries"
            );
        }
    }
}

/// MCP message handling helpers: names, URIs and pagination cursors built by the federation
/// layer parse back to what was put in, and parsing any text never panics.
pub fn mcp_names(data: &[u8]) {
    use switchboard_mcp::names;
    let text = String::from_utf8_lossy(data);
    let _ = names::split(&text);
    let _ = names::split_uri(&text);
    let _ = names::decode_cursor(&text);
    let mid = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    let (target, rest) = text.split_at(mid);
    let target: String = target
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if !target.is_empty() {
        let uri = names::namespace_uri(&target, rest);
        let (t, back) = names::split_uri(&uri).expect("a namespaced URI splits");
        assert_eq!((t, back.as_str()), (target.as_str(), rest));
        // MCP Apps UI resources keep their scheme and still split back.
        let ui = format!("ui://{rest}");
        let exposed = names::namespace_uri(&target, &ui);
        assert!(exposed.starts_with("ui://"));
        let (t, back) = names::split_uri(&exposed).expect("a namespaced UI URI splits");
        assert_eq!((t, back.as_str()), (target.as_str(), ui.as_str()));
        let full = names::prefixed(&target, rest);
        let (fitted, _) = names::fit_tool_name(&full);
        assert!(fitted.chars().count() <= 64 || full.chars().count() <= 64);
    }
    let mut cursors = std::collections::BTreeMap::new();
    cursors.insert(target.clone(), rest.to_string());
    let enc = names::encode_cursor(&cursors);
    assert_eq!(names::decode_cursor(&enc), Some(cursors));
}

/// Path options chosen by one input byte, so one target covers all four combinations.
fn paths_config(selector: u8) -> crate::config::PathsConfig {
    crate::config::PathsConfig {
        merge_slashes: selector & 1 == 0,
        escaped_slashes: if selector & 2 == 0 {
            crate::config::EscapedSlashes::Reject
        } else {
            crate::config::EscapedSlashes::Keep
        },
    }
}

/// `path` with every unreserved character outside a percent-triplet percent-encoded (in
/// alternating hex case): RFC 3986 says it is the same path.
fn encode_unreserved(path: &str) -> String {
    let mut out = String::with_capacity(path.len() * 3);
    let mut chars = path.chars();
    let mut n = 0usize;
    while let Some(c) = chars.next() {
        if c == '%' {
            out.push(c);
            out.extend(chars.by_ref().take(2));
        } else if c.is_ascii_alphanumeric() || "-._~".contains(c) {
            n += 1;
            let enc = format!("%{:02X}", c as u32);
            out.push_str(&if n.is_multiple_of(2) {
                enc.to_ascii_lowercase()
            } else {
                enc
            });
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `path` has a `.` or `..` segment.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

/// The request-path normalizer ([`crate::head::path::normalize`], run on every request by
/// the edge stage) and the backend base-path join. The first byte picks the options, the rest
/// is the path. Invariants: no panic; a normalized path starts with `/`, has no `.`/`..`
/// segments, no `\`, no `//` when merging, no `%2F`/`%5C` unless kept, only uppercase
/// percent-encodings of reserved bytes, and normalizing it again changes nothing; encoding
/// unreserved characters gives the same answer; joining any path under a base never leaves
/// the base.
pub fn path_normalize(data: &[u8]) {
    use crate::head::path::{join_base, normalize};
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let cfg = paths_config(selector);
    let result = normalize(raw, &cfg);
    if let Ok(out) = &result {
        let out: &str = out;
        assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
        assert!(
            !has_dot_segment(out),
            "{raw:?} -> {out:?} has a dot segment"
        );
        assert!(!out.contains('\\'), "{raw:?} -> {out:?}");
        if cfg.merge_slashes {
            assert!(!out.contains("//"), "{raw:?} -> {out:?}");
        }
        let bytes = out.as_bytes();
        for (i, _) in out.match_indices('%') {
            let triplet = bytes.get(i + 1..i + 3).unwrap_or_default();
            assert!(
                triplet.len() == 2
                    && triplet
                        .iter()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
                "{raw:?} -> {out:?}: bad percent-encoding"
            );
            let v =
                u8::from_str_radix(std::str::from_utf8(triplet).unwrap_or("00"), 16).unwrap_or(0);
            assert!(
                !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)) && v != 0,
                "{raw:?} -> {out:?}: %{v:02X} should have been decoded or refused"
            );
            if cfg.escaped_slashes == crate::config::EscapedSlashes::Reject {
                assert!(v != b'/' && v != b'\\', "{raw:?} -> {out:?}");
            }
        }
        let again = normalize(out, &cfg).map(|c| c.into_owned());
        assert_eq!(again.as_deref(), Ok(out), "not idempotent on {raw:?}");
    }
    let encoded = encode_unreserved(raw);
    assert_eq!(
        normalize(&encoded, &cfg).map(|c| c.into_owned()),
        result.clone().map(|c| c.into_owned()),
        "{raw:?} and {encoded:?} differ"
    );
    // The base-path join: with a normalized path, and with the raw one.
    for base in ["", "/public", "/a/b"] {
        for prefix in [None, Some("/api"), Some("/")] {
            for input in [result.as_deref().ok(), Some(raw)].into_iter().flatten() {
                let joined = join_base(base, prefix, input);
                let path = joined.split('?').next().unwrap_or("");
                assert!(
                    path == base || path.starts_with(&format!("{base}/")),
                    "{input:?} under {base:?}/{prefix:?} left the base: {joined:?}"
                );
                assert!(
                    !has_dot_segment(path.get(base.len()..).unwrap_or("")),
                    "{input:?} under {base:?}: {joined:?} keeps a dot segment"
                );
            }
        }
    }
}

/// The authority check ([`crate::head::authority`], run on every request): `HostPort::parse`
/// and `resolve` over a target authority and up to two `Host` values taken from the input
/// (split on `\n`; the first byte picks the HTTP version and which sources are present).
/// Invariants: no panic; a parsed authority is canonical (lowercase, no trailing dot, valid
/// header value) and parses to itself; `resolve` accepts only when every present source
/// agrees with its answer, refuses two `Host`s, and refuses HTTP/1.1 without `Host`.
pub fn authority(data: &[u8]) {
    use crate::head::authority::{HostPort, resolve};
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = text.split('\n');
    let target = parts.next().unwrap_or("");
    let hosts: Vec<&str> = parts.take(2).collect();

    for raw in std::iter::once(target).chain(hosts.iter().copied()) {
        if let Ok(h) = HostPort::parse(raw) {
            let s = h.to_string();
            assert!(http::HeaderValue::from_str(&s).is_ok(), "{raw:?} -> {s:?}");
            assert!(!h.host().ends_with('.'), "{raw:?} -> {s:?}");
            assert_eq!(h.host(), h.host().to_ascii_lowercase(), "{raw:?}");
            assert_eq!(HostPort::parse(&s).as_ref(), Ok(&h), "{raw:?} -> {s:?}");
        }
    }

    let version = match selector % 3 {
        0 => http::Version::HTTP_10,
        1 => http::Version::HTTP_11,
        _ => http::Version::HTTP_2,
    };
    let with_target = selector & 4 != 0;
    let scheme = if selector & 8 != 0 { "https" } else { "http" };
    let uri: http::Uri = if with_target {
        match format!("{scheme}://{target}/").parse() {
            Ok(u) => u,
            Err(_) => return,
        }
    } else {
        http::Uri::from_static("/")
    };
    let mut headers = http::HeaderMap::new();
    for h in &hosts {
        if let Ok(v) = http::HeaderValue::from_str(h) {
            headers.append(http::header::HOST, v);
        }
    }
    let n_hosts = headers.get_all(http::header::HOST).iter().count();
    if let Ok(found) = resolve(version, &uri, &headers) {
        {
            assert!(n_hosts <= 1, "two Hosts accepted");
            if version == http::Version::HTTP_11 {
                assert_eq!(n_hosts, 1, "HTTP/1.1 without Host accepted");
            }
            let default_port = if scheme == "https" { 443 } else { 80 };
            let same = |a: &HostPort, b: &HostPort| {
                a.host() == b.host()
                    && a.port().unwrap_or(default_port) == b.port().unwrap_or(default_port)
            };
            let sources = uri
                .authority()
                .map(|a| a.as_str().to_string())
                .into_iter()
                .chain(
                    headers
                        .get(http::header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                );
            for s in sources {
                let parsed = HostPort::parse(&s).expect("an accepted source parses");
                let found = found.as_ref().expect("a present source gives an authority");
                assert!(same(&parsed, found), "{s:?} disagrees with {found}");
            }
        }
    }
}
