//! The request's one authority: the absolute-form target or HTTP/2 `:authority`, and the
//! `Host` header, checked to agree and canonicalized.

use std::fmt;
use std::net::Ipv6Addr;

use http::header::{self, HeaderMap};
use http::{Uri, Version};

/// Why a request's authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// HTTP/1.1 (or HTTP/2 without `:authority`) without a `Host` header.
    #[error("request has no Host header")]
    MissingHost,
    /// More than one `Host` header.
    #[error("request has more than one Host header")]
    DuplicateHost,
    /// Not a host name, IPv4 or bracketed IPv6 address.
    #[error("request host is not a valid host name")]
    InvalidHost,
    /// A port that is not a number from 0 to 65535.
    #[error("request host has an invalid port")]
    InvalidPort,
    /// `user@host`.
    #[error("request host must not carry user information")]
    UserInfo,
    /// The target's authority and `Host` name different hosts or ports.
    #[error("request target and Host header disagree")]
    Mismatch,
    /// An absolute-form target with a scheme other than http or https.
    #[error("request target has an unsupported scheme")]
    Scheme,
}

impl AuthorityError {
    /// The fixed message for the client.
    pub fn message(&self) -> &'static str {
        match self {
            AuthorityError::MissingHost => "request has no Host header",
            AuthorityError::DuplicateHost => "request has more than one Host header",
            AuthorityError::InvalidHost => "request host is not a valid host name",
            AuthorityError::InvalidPort => "request host has an invalid port",
            AuthorityError::UserInfo => "request host must not carry user information",
            AuthorityError::Mismatch => "request target and Host header disagree",
            AuthorityError::Scheme => "request target has an unsupported scheme",
        }
    }
}

/// A canonical authority: the host lowercased without a trailing dot (IPv6 in brackets, in
/// its canonical text form), and the port when one was given. Displays as `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: Option<u16>,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

impl HostPort {
    /// The host, lowercased, without trailing dot (`[v6]` bracketed).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, when the request named one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Parses `host[:port]` (RFC 3986 authority without user information). An empty port
    /// (`host:`) is no port (RFC 3986 §6.2.3); reg-names are limited to letters, digits, `-`,
    /// `_` and `.` with non-empty labels (no percent-encoding or sub-delimiters).
    pub fn parse(raw: &str) -> Result<Self, AuthorityError> {
        // Byte searches: `str`'s char searcher costs more than these short values.
        if raw.as_bytes().contains(&b'@') {
            return Err(AuthorityError::UserInfo);
        }
        let (host, port) = if let Some(v6) = raw.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or(AuthorityError::InvalidHost)?;
            let ip: Ipv6Addr = addr.parse().map_err(|_| AuthorityError::InvalidHost)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(AuthorityError::InvalidHost)?),
            };
            (format!("[{ip}]"), port)
        } else {
            let colon = raw.bytes().position(|b| b == b':');
            let (name, port) = match colon.and_then(|i| raw.split_at_checked(i)) {
                Some((n, p)) => {
                    let p = p.strip_prefix(':').unwrap_or(p);
                    if p.as_bytes().contains(&b':') {
                        return Err(AuthorityError::InvalidHost);
                    }
                    (n, Some(p))
                }
                None => (raw, None),
            };
            (reg_name(name)?, port)
        };
        let port = match port {
            None | Some("") => None,
            Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse().map_err(|_| AuthorityError::InvalidPort)?)
            }
            Some(_) => return Err(AuthorityError::InvalidPort),
        };
        Ok(HostPort { host, port })
    }

    /// Whether `raw` is this authority as [`Display`](fmt::Display) writes it (the canonical
    /// form), compared without writing it.
    pub fn is_written_as(&self, raw: &[u8]) -> bool {
        let Some(rest) = raw.strip_prefix(self.host.as_bytes()) else {
            return false;
        };
        match (self.port, rest.split_first()) {
            (None, None) => true,
            (Some(port), Some((b':', digits))) => {
                // Decimal without leading zeros, as `u16`'s `Display` writes it.
                let canonical = matches!(digits, [b'0'] | [b'1'..=b'9', ..]);
                canonical
                    && digits.len() <= 5
                    && digits.iter().all(u8::is_ascii_digit)
                    && digits
                        .iter()
                        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
                        == u32::from(port)
            }
            _ => false,
        }
    }

    /// Same host, and same port once an absent port is read as `default_port`.
    fn agrees_with(&self, other: &HostPort, default_port: u16) -> bool {
        self.host == other.host
            && self.port.unwrap_or(default_port) == other.port.unwrap_or(default_port)
    }
}

/// A DNS name or IPv4 address, lowercased, one trailing dot removed.
fn reg_name(name: &str) -> Result<String, AuthorityError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    // One pass over the bytes: every label non-empty and at most 63 long.
    let mut label = 0usize;
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| {
            if b == b'.' {
                std::mem::take(&mut label) > 0
            } else {
                label += 1;
                label <= 63 && (b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }
        })
        && label > 0;
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(AuthorityError::InvalidHost)
    }
}

/// The one authority of a request: the target's (absolute-form or HTTP/2 `:authority`) and
/// the `Host` header's must agree (host compared canonically, an absent port read as the
/// scheme's default); HTTP/1.1 needs exactly one `Host`, HTTP/2 one of the two, HTTP/1.0 may
/// have neither (`Ok(None)`). More than one `Host` is always refused.
pub fn resolve(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<HostPort>, AuthorityError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::DuplicateHost);
    }
    let from_header = match host_header {
        Some(v) => Some(HostPort::parse(
            v.to_str().map_err(|_| AuthorityError::InvalidHost)?,
        )?),
        None => None,
    };
    let from_target = match uri.authority() {
        Some(a) => {
            if !matches!(uri.scheme_str(), None | Some("http" | "https")) {
                return Err(AuthorityError::Scheme);
            }
            Some(HostPort::parse(a.as_str())?)
        }
        None => None,
    };
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    match (from_target, from_header) {
        (Some(t), Some(h)) if t.agrees_with(&h, default_port) => Ok(Some(t)),
        (Some(_), Some(_)) => Err(AuthorityError::Mismatch),
        // RFC 9112 §3.2: an HTTP/1.1 request needs a Host header even in absolute form.
        (Some(_), None) if version == Version::HTTP_11 => Err(AuthorityError::MissingHost),
        (Some(t), None) => Ok(Some(t)),
        (None, Some(h)) => Ok(Some(h)),
        (None, None) if matches!(version, Version::HTTP_09 | Version::HTTP_10) => Ok(None),
        (None, None) => Err(AuthorityError::MissingHost),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<String, AuthorityError> {
        HostPort::parse(s).map(|h| h.to_string())
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(p("Admin.Example.").unwrap(), "admin.example");
        assert_eq!(p("admin.example:8080").unwrap(), "admin.example:8080");
        assert_eq!(p("admin.example:").unwrap(), "admin.example");
        assert_eq!(p("admin.example.:080").unwrap(), "admin.example:80");
        assert_eq!(p("[0:0::1]:443").unwrap(), "[::1]:443");
        assert_eq!(p("127.0.0.1").unwrap(), "127.0.0.1");
    }

    #[test]
    fn is_written_as_agrees_with_the_written_form() {
        let raws = [
            "admin.example",
            "Admin.Example",
            "admin.example.",
            "admin.example:8080",
            "admin.example:080",
            "admin.example:0",
            "admin.example:00",
            "admin.example:",
            "admin.example:65535",
            "a:1",
            "127.0.0.1:80",
            "[::1]:443",
            "[0:0::1]:443",
            "[::1]",
        ];
        for raw in raws {
            let hp = HostPort::parse(raw).unwrap();
            let written = hp.to_string() == raw;
            assert_eq!(hp.is_written_as(raw.as_bytes()), written, "{raw}");
            // Another authority's form is never taken for this one.
            assert!(!hp.is_written_as(b"other.example"), "{raw}");
            assert!(!hp.is_written_as(format!("{hp}:1").as_bytes()), "{raw}");
            assert!(!hp.is_written_as(format!("{hp}0").as_bytes()), "{raw}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(p("admin.example:abc"), Err(AuthorityError::InvalidPort));
        assert_eq!(p("admin.example:65536"), Err(AuthorityError::InvalidPort));
        assert_eq!(p("admin.example:+80"), Err(AuthorityError::InvalidPort));
        assert_eq!(p("admin.example.."), Err(AuthorityError::InvalidHost));
        assert_eq!(p(".admin"), Err(AuthorityError::InvalidHost));
        assert_eq!(p(""), Err(AuthorityError::InvalidHost));
        assert_eq!(p("."), Err(AuthorityError::InvalidHost));
        assert_eq!(p("a/b"), Err(AuthorityError::InvalidHost));
        assert_eq!(p("a%2eb"), Err(AuthorityError::InvalidHost));
        assert_eq!(p("u@admin.example"), Err(AuthorityError::UserInfo));
        assert_eq!(p("[::1"), Err(AuthorityError::InvalidHost));
        assert_eq!(p("[v1.x]"), Err(AuthorityError::InvalidHost));
        assert_eq!(p("::1"), Err(AuthorityError::InvalidHost));
    }

    fn resolve_with(
        version: Version,
        uri: &str,
        hosts: &[&str],
    ) -> Result<Option<String>, AuthorityError> {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, v.parse().unwrap());
        }
        resolve(version, &uri, &h).map(|a| a.map(|a| a.to_string()))
    }

    #[test]
    fn one_authority_per_request() {
        use Version as V;
        assert_eq!(
            resolve_with(V::HTTP_11, "http://public.example/", &["admin.example"]),
            Err(AuthorityError::Mismatch)
        );
        assert_eq!(
            resolve_with(
                V::HTTP_11,
                "http://Public.Example:80/",
                &["public.example."]
            ),
            Ok(Some("public.example:80".into()))
        );
        assert_eq!(
            resolve_with(V::HTTP_11, "https://a:443/", &["a:80"]),
            Err(AuthorityError::Mismatch)
        );
        assert_eq!(
            resolve_with(V::HTTP_11, "/", &[]),
            Err(AuthorityError::MissingHost)
        );
        assert_eq!(
            resolve_with(V::HTTP_11, "http://a/", &[]),
            Err(AuthorityError::MissingHost)
        );
        assert_eq!(
            resolve_with(V::HTTP_11, "/", &["a", "a"]),
            Err(AuthorityError::DuplicateHost)
        );
        assert_eq!(resolve_with(V::HTTP_10, "/", &[]), Ok(None));
        assert_eq!(
            resolve_with(V::HTTP_10, "http://a/", &[]),
            Ok(Some("a".into()))
        );
        assert_eq!(
            resolve_with(V::HTTP_2, "http://a/", &[]),
            Ok(Some("a".into()))
        );
        assert_eq!(
            resolve_with(V::HTTP_2, "/", &[]),
            Err(AuthorityError::MissingHost)
        );
        assert_eq!(
            resolve_with(V::HTTP_11, "ftp://a/", &["a"]),
            Err(AuthorityError::Scheme)
        );
    }
}
