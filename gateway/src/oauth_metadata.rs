//! OAuth 2.0 Protected Resource Metadata (RFC 9728), as the MCP authorization spec uses it.
//!
//! A route with `policies.authn.resource_metadata` is a protected resource. Its metadata is
//! served at `/.well-known/oauth-protected-resource` followed by the resource's path (the
//! path-suffixed form RFC 9728 §3.1 defines, e.g. `…/oauth-protected-resource/mcp` for a
//! resource at `/mcp`), and at the bare `/.well-known/oauth-protected-resource` when the
//! resource has no path or it is the listener's only protected resource. A 401 from the route
//! carries `WWW-Authenticate: Bearer resource_metadata="<that URL>"`, which is how an MCP
//! client finds the authorization server.

use axum::body::Body;
use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::config::ResourceMetadataConfig;

/// The well-known path prefix of RFC 9728.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A route's compiled metadata.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// Configured resource URL, if any.
    resource: Option<url::Url>,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    resource_name: Option<String>,
}

impl ResourceMetadata {
    /// Compiles validated config.
    pub fn new(c: &ResourceMetadataConfig, required_scopes: &[String]) -> Self {
        let resource = c.resource.as_deref().and_then(|r| url::Url::parse(r).ok());
        ResourceMetadata {
            resource,
            authorization_servers: c.authorization_servers.clone(),
            scopes_supported: if c.scopes_supported.is_empty() {
                required_scopes.to_vec()
            } else {
                c.scopes_supported.clone()
            },
            resource_name: c.resource_name.clone(),
        }
    }

    /// The path of the resource (without a trailing slash): the configured resource URL's,
    /// else the route's `prefix`.
    pub fn path<'a>(&'a self, prefix: Option<&'a str>) -> &'a str {
        match &self.resource {
            Some(u) => u.path(),
            None => prefix.unwrap_or(""),
        }
        .trim_end_matches('/')
    }

    /// The resource identifier for a request from `origin` (`scheme://host[:port]`) to a route
    /// with `prefix`.
    pub fn resource(&self, origin: Option<&str>, prefix: Option<&str>) -> Option<String> {
        match &self.resource {
            Some(u) => Some(u.as_str().to_string()),
            None => origin.map(|o| format!("{o}{}", self.path(prefix))),
        }
    }

    /// The metadata document's URL (RFC 9728 §3.1: the well-known path inserted between host
    /// and resource path).
    pub fn metadata_url(&self, origin: Option<&str>, prefix: Option<&str>) -> Option<String> {
        let origin = match &self.resource {
            Some(u) => u.origin().ascii_serialization(),
            None => origin?.to_string(),
        };
        Some(format!("{origin}{WELL_KNOWN}{}", self.path(prefix)))
    }

    /// The metadata document.
    pub fn document(&self, origin: Option<&str>, prefix: Option<&str>) -> serde_json::Value {
        let mut doc = serde_json::Map::new();
        doc.insert("resource".into(), self.resource(origin, prefix).into());
        doc.insert(
            "authorization_servers".into(),
            serde_json::json!(self.authorization_servers),
        );
        doc.insert(
            "bearer_methods_supported".into(),
            serde_json::json!(["header"]),
        );
        if !self.scopes_supported.is_empty() {
            doc.insert(
                "scopes_supported".into(),
                serde_json::json!(self.scopes_supported),
            );
        }
        if let Some(n) = &self.resource_name {
            doc.insert("resource_name".into(), serde_json::json!(n));
        }
        serde_json::Value::Object(doc)
    }
}

/// `scheme://host` of a request, from the `Host` header (or HTTP/2 `:authority`).
pub fn request_origin<B>(req: &http::Request<B>, scheme: &str) -> Option<String> {
    let host = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    // A Host header is attacker-chosen text that we echo into a header and a document:
    // only host-name characters pass.
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

/// Answers a request for RFC 9728 metadata if `path` is a well-known metadata path of one of
/// the listener's protected resources; `None` lets the request route normally. `protected`
/// lists each protected route's metadata with the route's path prefix (called only for a
/// well-known path).
pub fn serve<'a, B, I>(
    protected: impl Fn() -> I,
    req: &http::Request<B>,
    scheme: &str,
) -> Option<Response<Body>>
where
    I: Iterator<Item = (&'a ResourceMetadata, Option<&'a str>)>,
{
    let suffix = req.uri().path().strip_prefix(WELL_KNOWN)?;
    if !(suffix.is_empty() || suffix.starts_with('/')) {
        return None;
    }
    let suffix = suffix.trim_end_matches('/');
    let (found, prefix) = protected()
        .find(|(m, prefix)| m.path(*prefix) == suffix)
        .or_else(|| {
            // The bare form also answers for a listener with a single protected resource.
            let mut all = protected();
            match (suffix.is_empty(), all.next(), all.next()) {
                (true, Some(only), None) => Some(only),
                _ => None,
            }
        })?;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(resp);
    }
    let origin = request_origin(req, scheme);
    let mut resp = Response::new(Body::from(
        found.document(origin.as_deref(), prefix).to_string(),
    ));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    // Browser-based MCP clients fetch this cross-origin.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(resource: Option<&str>) -> ResourceMetadataConfig {
        ResourceMetadataConfig {
            resource: resource.map(str::to_string),
            authorization_servers: vec!["https://idp.example".into()],
            scopes_supported: vec![],
            resource_name: None,
        }
    }

    #[test]
    fn url_inserts_well_known_before_the_path() {
        let m = ResourceMetadata::new(&cfg(Some("https://gw.example/mcp")), &[]);
        assert_eq!(
            m.metadata_url(None, Some("/other")).unwrap(),
            "https://gw.example/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(m.resource(None, None).unwrap(), "https://gw.example/mcp");
        let m = ResourceMetadata::new(&cfg(None), &["read".into()]);
        let tools = Some("/tools/");
        assert_eq!(
            m.metadata_url(Some("http://127.0.0.1:9"), tools).unwrap(),
            "http://127.0.0.1:9/.well-known/oauth-protected-resource/tools"
        );
        let doc = m.document(Some("http://h"), tools);
        assert_eq!(doc["resource"], "http://h/tools");
        assert_eq!(doc["scopes_supported"][0], "read");
        assert_eq!(doc["authorization_servers"][0], "https://idp.example");
    }

    #[test]
    fn hostile_host_is_not_echoed() {
        let req = http::Request::builder()
            .uri("/x")
            .header("host", "evil\"example")
            .body(())
            .unwrap();
        assert_eq!(request_origin(&req, "http"), None);
    }

    #[test]
    fn validation() {
        assert!(cfg(Some("https://gw.example/mcp")).validate("p").is_empty());
        let mut c = cfg(Some("gw.example"));
        c.authorization_servers.clear();
        assert_eq!(c.validate("p").len(), 2);
    }
}
