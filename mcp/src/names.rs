//! Exposed names: `{target}__{name}` prefixing, the 64-character tool name limit, reversible
//! resource URI namespacing (MCP Apps `ui://` URIs keep their scheme) and the composite
//! pagination cursor.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Separates the target from the upstream name.
pub const SEP: &str = "__";
/// Longest tool name clients accept (several SDKs and LLM APIs enforce it).
pub const MAX_TOOL_NAME: usize = 64;
/// Scheme and authority of namespaced resource URIs.
const URI_BASE: &str = "switchboard://mcp/";
/// The scheme of MCP Apps UI resources (SEP-1865), which hosts recognise by it.
const UI_SCHEME: &str = "ui://";

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

/// The rest of a `ui://` URI (after the scheme, matched case-insensitively), with its scheme.
fn ui_parts(uri: &str) -> Option<(&str, &str)> {
    let scheme = uri.get(..UI_SCHEME.len())?;
    scheme
        .eq_ignore_ascii_case(UI_SCHEME)
        .then(|| (scheme, uri.get(UI_SCHEME.len()..).unwrap_or_default()))
}

/// A target's resource URI as exposed by a federated route. MCP Apps UI resources
/// (`ui://rest`) become `ui://{target}__rest`: hosts render only `ui://` resources, so the
/// scheme stays and the target goes in front of the rest, like a prefixed name. Every other
/// URI becomes `switchboard://mcp/{target}/{percent-encoded uri}`; template braces stay
/// literal so resource templates remain templates and a client's expansion decodes back.
/// [`split_uri`] reverses both.
pub fn namespace_uri(target: &str, uri: &str) -> String {
    if let Some((scheme, rest)) = ui_parts(uri) {
        return format!("{scheme}{target}{SEP}{rest}");
    }
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
    if let Some((scheme, rest)) = ui_parts(uri) {
        let (target, rest) = rest.split_once(SEP)?;
        return Some((target, format!("{scheme}{rest}")));
    }
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

/// MCP Apps metadata keys whose values are resource URIs: `_meta.ui.resourceUri` and the
/// older `_meta["ui/resourceUri"]` that hosts still read.
const UI_META_URI: [&[&str]; 2] = [&["ui", "resourceUri"], &["ui/resourceUri"]];

/// Applies `f` to every MCP Apps resource URI in `meta` (an item's or a result's `_meta`).
pub fn map_ui_meta(meta: &mut serde_json::Value, f: &dyn Fn(&str) -> String) {
    for path in UI_META_URI {
        let mut at = Some(&mut *meta);
        for key in path {
            at = at.and_then(|v| v.get_mut(*key));
        }
        if let Some(v) = at
            && let Some(s) = v.as_str()
        {
            *v = serde_json::Value::String(f(s));
        }
    }
}

/// The MCP Apps resource URIs in `meta` (see [`map_ui_meta`]).
pub fn ui_meta_uris(meta: &serde_json::Value) -> Vec<&str> {
    UI_META_URI
        .iter()
        .filter_map(|path| {
            path.iter()
                .try_fold(meta, |v, k| v.get(*k))
                .and_then(serde_json::Value::as_str)
        })
        .collect()
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
    fn ui_uris_keep_their_scheme_and_round_trip() {
        for (uri, exposed) in [
            (
                "ui://weather/forecast.html",
                "ui://t-1__weather/forecast.html",
            ),
            ("ui://widget", "ui://t-1__widget"),
            ("UI://x__y/z?q=1", "UI://t-1__x__y/z?q=1"),
            ("ui://", "ui://t-1__"),
        ] {
            assert_eq!(namespace_uri("t-1", uri), exposed);
            assert_eq!(split_uri(exposed), Some(("t-1", uri.to_string())));
        }
        assert_eq!(split_uri("ui://no-target/x"), None);
        let tpl = namespace_uri("a", "ui://charts/{id}");
        assert_eq!(
            split_uri(&tpl.replace("{id}", "7")).unwrap().1,
            "ui://charts/7"
        );
    }

    #[test]
    fn ui_meta_uris_are_mapped_in_both_keys() {
        let mut meta = serde_json::json!({
            "ui": {"resourceUri": "ui://a/b", "visibility": ["app"]},
            "ui/resourceUri": "ui://a/b",
            "other": "ui://untouched",
        });
        assert_eq!(ui_meta_uris(&meta), ["ui://a/b", "ui://a/b"]);
        map_ui_meta(&mut meta, &|u| namespace_uri("t", u));
        assert_eq!(meta["ui"]["resourceUri"], "ui://t__a/b");
        assert_eq!(meta["ui/resourceUri"], "ui://t__a/b");
        assert_eq!(meta["ui"]["visibility"][0], "app");
        assert_eq!(meta["other"], "ui://untouched");
        let mut none = serde_json::json!({"ui": {"resourceUri": 7}});
        map_ui_meta(&mut none, &|_| unreachable!());
        assert_eq!(none["ui"]["resourceUri"], 7);
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
