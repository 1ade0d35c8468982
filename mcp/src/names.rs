//! Exposed names: `{target}__{name}` prefixing, the 64-character tool name limit, reversible
//! resource URI namespacing and the composite pagination cursor.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Separates the target from the upstream name.
pub const SEP: &str = "__";
/// Longest tool name clients accept (several SDKs and LLM APIs enforce it).
pub const MAX_TOOL_NAME: usize = 64;
/// Scheme and authority of namespaced resource URIs.
const URI_BASE: &str = "switchboard://mcp/";

/// `{target}__{name}`.
pub fn prefixed(target: &str, name: &str) -> String {
    format!("{target}{SEP}{name}")
}

/// A tool name within [`MAX_TOOL_NAME`]: names that fit are kept; longer ones keep their
/// start and get `_` + 8 hex chars of a SHA-256 of the full name, so the result is
/// deterministic and collisions are negligible. Returns `(exposed, shortened?)`.
pub fn fit_tool_name(full: &str) -> (String, bool) {
    if full.len() <= MAX_TOOL_NAME {
        return (full.to_string(), false);
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash = hex::encode(digest.get(..4).unwrap_or_default());
    let mut keep = MAX_TOOL_NAME - hash.len() - 1;
    while !full.is_char_boundary(keep) {
        keep -= 1;
    }
    (format!("{}_{hash}", &full[..keep]), true)
}

/// Split `{target}__{name}` at the first separator (target names never contain it).
pub fn split(exposed: &str) -> Option<(&str, &str)> {
    exposed.split_once(SEP)
}

fn keep_raw(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'{' | b'}')
}

/// `switchboard://mcp/{target}/{percent-encoded uri}`. Template braces stay literal so
/// resource templates remain templates and a client's expansion decodes back.
pub fn namespace_uri(target: &str, uri: &str) -> String {
    let mut out = String::with_capacity(URI_BASE.len() + target.len() + 1 + uri.len() * 3 / 2);
    out.push_str(URI_BASE);
    out.push_str(target);
    out.push('/');
    for b in uri.bytes() {
        if keep_raw(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverse of [`namespace_uri`]: `(target, original uri)`.
pub fn split_uri(uri: &str) -> Option<(&str, String)> {
    let rest = uri.strip_prefix(URI_BASE)?;
    let (target, enc) = rest.split_once('/')?;
    let mut bytes = enc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    while let Some((&b, rest)) = bytes.split_first() {
        match (b, rest) {
            (b'%', [h, l, more @ ..]) => {
                let h = std::str::from_utf8(&[*h, *l]).ok()?.to_owned();
                out.push(u8::from_str_radix(&h, 16).ok()?);
                bytes = more;
            }
            _ => {
                out.push(b);
                bytes = rest;
            }
        }
    }
    Some((target, String::from_utf8(out).ok()?))
}

/// A composite cursor: the next upstream cursor of every target that has more pages.
pub fn encode_cursor(cursors: &BTreeMap<String, String>) -> String {
    hex::encode(serde_json::to_vec(cursors).unwrap_or_default())
}

/// Decode a composite cursor; `None` when it is not one of ours.
pub fn decode_cursor(s: &str) -> Option<BTreeMap<String, String>> {
    serde_json::from_slice(&hex::decode(s).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_fit_deterministically() {
        assert_eq!(fit_tool_name("a__echo"), ("a__echo".to_string(), false));
        let long = prefixed("target", &"x".repeat(70));
        let (a, s) = fit_tool_name(&long);
        assert!(s);
        assert_eq!(a.len(), MAX_TOOL_NAME);
        assert_eq!(fit_tool_name(&long).0, a);
        let other = prefixed("target", &format!("{}y", "x".repeat(69)));
        assert_ne!(fit_tool_name(&other).0, a);
        assert!(a.starts_with("target__xxx"));
    }

    #[test]
    fn multibyte_names_are_cut_on_char_boundaries() {
        let long = "é".repeat(40);
        let (a, _) = fit_tool_name(&long);
        assert!(a.len() <= MAX_TOOL_NAME);
    }

    #[test]
    fn split_at_first_separator() {
        assert_eq!(split("a__b__c"), Some(("a", "b__c")));
        assert_eq!(split("abc"), None);
    }

    #[test]
    fn uris_round_trip() {
        for uri in [
            "test://static-text",
            "file:///a b/c?x=1#f",
            "demo://resource/static/document/architecture.md",
            "x:%41",
        ] {
            let n = namespace_uri("t-1", uri);
            assert!(url::Url::parse(&n).is_ok(), "{n}");
            assert_eq!(split_uri(&n), Some(("t-1", uri.to_string())));
        }
        assert_eq!(split_uri("test://x"), None);
    }

    #[test]
    fn templates_stay_templates() {
        let n = namespace_uri("a", "test://template/{id}/data");
        assert!(n.contains("{id}"));
        let expanded = n.replace("{id}", "123");
        assert_eq!(split_uri(&expanded).unwrap().1, "test://template/123/data");
    }

    #[test]
    fn cursors_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), "c1".to_string());
        assert_eq!(decode_cursor(&encode_cursor(&m)), Some(m));
        assert_eq!(decode_cursor("zz"), None);
    }
}
