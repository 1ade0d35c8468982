//! The `redirect` route action (Gateway API `RequestRedirect`): every matched request is
//! answered with a redirect built from the request's scheme, host, port and path, each
//! replaced when the config says so. Nothing is sent upstream.

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Request, Response, StatusCode};

use crate::backend::http::rewrite_path;
use crate::config::{PathModifier, RedirectConfig};
use crate::context::RequestCx;
use crate::error::RequestError;

/// A compiled `redirect`.
pub struct Redirect {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: Option<PathModifier>,
    status: StatusCode,
}

impl Redirect {
    /// Builds the action from validated config.
    pub fn new(cfg: &RedirectConfig) -> Result<Self, String> {
        Ok(Redirect {
            scheme: cfg.scheme.clone(),
            host: cfg.host.clone(),
            port: cfg.port,
            path: cfg.path.clone(),
            status: StatusCode::from_u16(cfg.status).map_err(|e| e.to_string())?,
        })
    }

    /// The redirect for `req`.
    pub fn serve<B>(
        &self,
        req: &Request<B>,
        cx: &RequestCx<'_>,
    ) -> Result<Response<Body>, RequestError> {
        let raw = match req.uri().authority() {
            Some(a) => Some(a.as_str()),
            None => req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok()),
        };
        let authority = raw.and_then(|r| r.parse::<Authority>().ok());
        let scheme = self.scheme.as_deref().unwrap_or(cx.scheme);
        let host = match (&self.host, &authority) {
            (Some(h), _) => h.as_str(),
            (None, Some(a)) => a.host(),
            (None, None) => {
                return Err(crate::error::bad_request("the request names no host"));
            }
        };
        // No port given: the request's, unless the scheme changes (then the scheme's own).
        let port = self.port.or_else(|| {
            if self.scheme.is_some() {
                None
            } else {
                authority.as_ref().and_then(Authority::port_u16)
            }
        });
        let default_port = if scheme == "https" { 443 } else { 80 };
        let path = match &self.path {
            Some(pm) => rewrite_path(pm, req.uri().path(), req.uri().query(), cx.prefix),
            None => req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()),
        };
        let location = match port {
            Some(p) if p != default_port => format!("{scheme}://{host}:{p}{path}"),
            _ => format!("{scheme}://{host}{path}"),
        };
        let location = HeaderValue::from_str(&location)
            .map_err(|_| crate::error::bad_request("the redirect target is not a valid URL"))?;
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(header::LOCATION, location);
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        Ok(resp)
    }
}
