//! `policies.cors`: preflights answered by the gateway, CORS headers added to responses.

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};

use crate::config::CorsPolicy;

/// Compiled CORS rules.
#[derive(Debug, Clone)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<HeaderValue>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    allow_credentials: bool,
    max_age: Option<HeaderValue>,
}

impl Cors {
    pub(super) fn compile(c: &CorsPolicy) -> Self {
        let join = |v: &[String]| HeaderValue::from_str(&v.join(", ")).ok();
        Cors {
            any_origin: c.allow_origins.iter().any(|o| o == "*"),
            origins: c
                .allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            allow_methods: if c.allow_methods.is_empty() {
                HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS")
            } else {
                join(&c.allow_methods).unwrap_or(HeaderValue::from_static("GET"))
            },
            allow_headers: (!c.allow_headers.is_empty())
                .then(|| join(&c.allow_headers))
                .flatten(),
            expose_headers: (!c.expose_headers.is_empty())
                .then(|| join(&c.expose_headers))
                .flatten(),
            allow_credentials: c.allow_credentials,
            max_age: c.max_age.map(|d| HeaderValue::from(d.as_secs())),
        }
    }

    fn allowed_origin<'a>(&self, origin: &'a HeaderValue) -> Option<&'a HeaderValue> {
        (self.any_origin || self.origins.iter().any(|o| o == origin)).then_some(origin)
    }

    /// Answers a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`), or `None`
    /// when the request is not one.
    pub fn preflight<B, R: Default>(&self, req: &Request<B>) -> Option<Response<R>> {
        if req.method() != Method::OPTIONS
            || !req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = req.headers().get(header::ORIGIN)?;
        let mut resp = Response::new(R::default());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        if let Some(o) = self.allowed_origin(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                self.allow_methods.clone(),
            );
            let requested = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS);
            if let Some(v) = self.allow_headers.as_ref().or(requested) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
            if self.allow_credentials {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if let Some(v) = &self.max_age {
                h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
            }
        }
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Some(resp)
    }

    /// Adds CORS headers to an actual response for a request from `origin`.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        let Some(origin) = origin.and_then(|o| self.allowed_origin(o)) else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
}
