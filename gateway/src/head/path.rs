//! Path normalization (RFC 3986 §6.2.2, §5.2.4) and the base-path join of backends.

use std::borrow::Cow;

/// How paths are normalized: the runtime form of `listeners[].paths`
/// ([`crate::config::PathsConfig`] converts into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Merge repeated slashes.
    pub merge_slashes: bool,
    /// Keep `%2F`/`%5C` encoded within their segment instead of refusing the path.
    pub keep_escaped_slashes: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            merge_slashes: true,
            keep_escaped_slashes: false,
        }
    }
}

impl From<&Rules> for Rules {
    fn from(r: &Rules) -> Self {
        *r
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits, or bytes that are not UTF-8 once decoded.
    #[error("request path has an invalid percent-encoding")]
    InvalidEncoding,
    /// `%2F` or `%5C` with `escaped_slashes: reject`.
    #[error("request path contains an encoded slash or backslash")]
    EscapedSlash,
    /// `%00`.
    #[error("request path contains an encoded NUL")]
    Nul,
    /// A raw `\`.
    #[error("request path contains a backslash")]
    Backslash,
    /// A `..` segment with nothing left to remove.
    #[error("request path climbs above the root")]
    AboveRoot,
    /// Not an absolute path.
    #[error("request path must start with `/`")]
    NotAbsolute,
}

impl PathError {
    /// The fixed message for the client.
    pub fn message(&self) -> &'static str {
        match self {
            PathError::InvalidEncoding => "request path has an invalid percent-encoding",
            PathError::EscapedSlash => "request path contains an encoded slash or backslash",
            PathError::Nul => "request path contains an encoded NUL",
            PathError::Backslash => "request path contains a backslash",
            PathError::AboveRoot => "request path climbs above the root",
            PathError::NotAbsolute => "request path must start with `/`",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `path` is certainly already normal, so the common request costs one scan and no
/// allocation: no `%`, `\`, `//`, `/.` (dot segments start with it).
fn plainly_normal(path: &str, cfg: &Rules) -> bool {
    let b = path.as_bytes();
    let mut prev = 0u8;
    for &c in b {
        match c {
            b'%' | b'\\' => return false,
            b'/' if prev == b'/' && cfg.merge_slashes => return false,
            b'.' if prev == b'/' => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

/// Normalizes an absolute request path (without its query):
///
/// 1. percent-encodings of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded and the
///    others uppercased; `%00` is refused, so is `%2F`/`%5C` unless `escaped_slashes: keep`
///    (then they stay encoded within their segment), so is a raw `\` and a `%` not followed
///    by two hex digits;
/// 2. with `merge_slashes`, empty segments are dropped (`//a` is `/a`);
/// 3. `.` and `..` segments are removed (RFC 3986 §5.2.4); a `..` at the root is refused, as
///    nginx does, rather than silently dropped.
///
/// The result is idempotent, has no `.`/`..` segments, and is borrowed when `path` was
/// already normal.
pub fn normalize<'a>(path: &'a str, rules: impl Into<Rules>) -> Result<Cow<'a, str>, PathError> {
    let cfg = &rules.into();
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if plainly_normal(path, cfg) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path, cfg)?;
    let out = remove_dot_segments(&decoded, cfg.merge_slashes)?;
    if out == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(out))
    }
}

/// Step 1: percent-decoding of unreserved characters.
fn decode(path: &str, cfg: &Rules) -> Result<String, PathError> {
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(c) = bytes.next() {
        match c {
            b'%' => {
                let (Some(h), Some(l)) = (bytes.next().and_then(hex), bytes.next().and_then(hex))
                else {
                    return Err(PathError::InvalidEncoding);
                };
                let v = h * 16 + l;
                if is_unreserved(v) {
                    out.push(v);
                } else if v == 0 {
                    return Err(PathError::Nul);
                } else if v == b'/' || v == b'\\' {
                    if cfg.keep_escaped_slashes {
                        push_encoded(&mut out, v);
                    } else {
                        return Err(PathError::EscapedSlash);
                    }
                } else {
                    push_encoded(&mut out, v);
                }
            }
            b'\\' => return Err(PathError::Backslash),
            c => out.push(c),
        }
    }
    // Only ASCII sequences were replaced by ASCII, so UTF-8 input stays UTF-8.
    String::from_utf8(out).map_err(|_| PathError::InvalidEncoding)
}

fn push_encoded(out: &mut Vec<u8>, v: u8) {
    fn digit(n: u8) -> u8 {
        if n < 10 { b'0' + n } else { b'A' + n - 10 }
    }
    out.push(b'%');
    out.push(digit(v >> 4));
    out.push(digit(v & 0xf));
}

/// Steps 2 and 3 on a decoded absolute path.
fn remove_dot_segments(path: &str, merge_slashes: bool) -> Result<String, PathError> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        trailing_slash = false;
        match seg {
            "." => trailing_slash = last,
            ".." => {
                if stack.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = last;
            }
            "" if last => trailing_slash = true,
            "" if merge_slashes => {}
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    out.push('/');
    out.push_str(&stack.join("/"));
    if trailing_slash && !stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The upstream path-and-query for a request on a route with `prefix`, to a backend whose URL
/// has the path `base` (no trailing slash, empty for none): the prefix is replaced by the base,
/// as nginx's `proxy_pass` with a URI does. The query (after the first `?`) is kept as is.
///
/// The result never leaves `base`: request paths arrive normalized ([`normalize`]), and any
/// `.`/`..` left in the part after the prefix is removed here, clamped at `base`.
pub fn join_base(base: &str, prefix: Option<&str>, path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let prefix = prefix.unwrap_or("").trim_end_matches('/');
    let rest = match path.strip_prefix(prefix) {
        Some(r) if r.is_empty() || r.starts_with('/') => r,
        _ => path,
    };
    let mut out = String::with_capacity(base.len() + rest.len() + 1);
    out.push_str(base);
    // `rest` normally is empty or starts with `/`; anything else is taken as segments too.
    let body = rest.strip_prefix('/').unwrap_or(rest);
    let mut segments = body.split('/').peekable();
    if rest.is_empty() {
        segments.next();
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing = false;
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        trailing = false;
        match seg {
            "." => trailing = last,
            ".." => {
                kept.pop();
                trailing = last;
            }
            s => kept.push(s),
        }
    }
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p, Rules::default()).map(Cow::into_owned)
    }

    #[test]
    fn the_issue_variants() {
        for p in [
            "/%61dmin/secret",
            "/x/../admin/secret",
            "//admin/secret",
            "/./admin/secret",
            "/%2e/admin/secret",
            "/admin/./secret",
            "/admin//secret",
            "/ADMIN/../admin/secret",
        ] {
            assert_eq!(n(p).unwrap(), "/admin/secret", "{p}");
        }
        assert_eq!(n("/api/../internal").unwrap(), "/internal");
        assert_eq!(n("/api/%2e%2e/internal").unwrap(), "/internal");
    }

    #[test]
    fn rfc_3986_cases() {
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/a/.").unwrap(), "/a/");
        assert_eq!(n("/a/..").unwrap(), "/");
        assert_eq!(n("/a/b/../../c/").unwrap(), "/c/");
        assert_eq!(n("/%41%7e%7E").unwrap(), "/A~~");
        assert_eq!(n("/a%2a%20b").unwrap(), "/a%2A%20b");
        assert_eq!(n("/%252e%252e/x").unwrap(), "/%252e%252e/x");
        assert_eq!(n("/.a/..b/...").unwrap(), "/.a/..b/...");
        assert_eq!(n("//").unwrap(), "/");
        assert_eq!(n("/é/./ü").unwrap(), "/é/ü");
    }

    #[test]
    fn refusals() {
        assert_eq!(n("/a%2fb"), Err(PathError::EscapedSlash));
        assert_eq!(n("/a%5Cb"), Err(PathError::EscapedSlash));
        assert_eq!(n("/a\\b"), Err(PathError::Backslash));
        assert_eq!(n("/a%00b"), Err(PathError::Nul));
        assert_eq!(n("/%zz"), Err(PathError::InvalidEncoding));
        assert_eq!(n("/%4"), Err(PathError::InvalidEncoding));
        assert_eq!(n("/%ff").unwrap(), "/%FF");
        assert_eq!(n("/../x"), Err(PathError::AboveRoot));
        assert_eq!(n("/a/../../x"), Err(PathError::AboveRoot));
        assert_eq!(n("a"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn options() {
        let keep = Rules {
            merge_slashes: false,
            keep_escaped_slashes: true,
        };
        let k = |p| normalize(p, keep).map(Cow::into_owned);
        assert_eq!(k("/a%2fb/%5c").unwrap(), "/a%2Fb/%5C");
        assert_eq!(k("/a%2f..%2fb").unwrap(), "/a%2F..%2Fb");
        assert_eq!(k("/x//y").unwrap(), "/x//y");
        assert_eq!(k("//").unwrap(), "//");
        assert_eq!(k("/a//../b").unwrap(), "/a/b");
        assert_eq!(k("/a%00"), Err(PathError::Nul));
    }

    #[test]
    fn plain_paths_are_borrowed() {
        assert!(matches!(
            normalize("/v1/chat/completions", Rules::default()),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(
            normalize("/a.b/c.", Rules::default()),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn join_stays_under_the_base() {
        assert_eq!(
            join_base("/public", Some("/api"), "/api/x?y=1"),
            "/public/x?y=1"
        );
        assert_eq!(join_base("/public", Some("/api"), "/api"), "/public");
        assert_eq!(join_base("/public", Some("/api/"), "/api/"), "/public/");
        assert_eq!(join_base("/public", Some("/api"), "/api?q"), "/public?q");
        assert_eq!(join_base("/public", None, "/x"), "/public/x");
        // Raw input that was never normalized still cannot climb.
        assert_eq!(
            join_base("/public", Some("/api"), "/api/../internal"),
            "/public/internal"
        );
        assert_eq!(
            join_base("/public", Some("/api"), "/api/../../x/."),
            "/public/x/"
        );
        assert_eq!(join_base("", Some("/api"), "/api/x"), "/x");
        assert_eq!(join_base("", Some("/api"), "/api"), "/");
        assert_eq!(join_base("/public", Some("/api"), "/apix"), "/public/apix");
        assert_eq!(join_base("/public", Some("/api"), "*"), "/public/*");
    }
}
