//! Serving the agent card: `GET {prefix}/.well-known/agent-card.json` (or the older
//! `agent.json`) fetches the card from the first replica that has one and
//! [`super::card::rewrite`]s it to point at the gateway. Failures here come before any
//! JSON-RPC id, so they are [`RequestError`]s rendered at the gateway's edge.

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Authority;
use http::{Request, Response, StatusCode, Uri};
use serde_json::Value;

use super::A2aBackend;
use super::card;
use super::replica::{Upstream, upstream_failed};
use crate::context::RequestCx;
use crate::error::RequestError;

impl A2aBackend {
    /// The URL clients reach this route at, without a trailing slash.
    pub(super) fn public_base(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        cx: &RequestCx<'_>,
        prefix: &str,
    ) -> Result<String, RequestError> {
        if let Some(p) = &self.public_url {
            return Ok(p.clone());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(Authority::as_str))
            .filter(|h| !h.is_empty() && h.parse::<Authority>().is_ok())
            .ok_or(crate::error::bad_request("the request has no usable Host"))?;
        Ok(format!("{}://{host}{prefix}", cx.scheme))
    }

    pub(super) async fn card(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        cx: &RequestCx<'_>,
        prefix: &str,
    ) -> Result<Response<Body>, RequestError> {
        let public = self.public_base(headers, uri, cx, prefix)?;
        let mut last_err = None;
        for up in &self.upstreams {
            let mut found = None;
            for path in ["/.well-known/agent-card.json", "/.well-known/agent.json"] {
                match self.fetch_json(up, path, cx).await {
                    Ok(Some(v)) => {
                        found = Some(v);
                        break;
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        last_err = Some(e);
                        break;
                    }
                }
            }
            let Some(mut card) = found else { continue };
            let changed = card::rewrite(&mut card, &public, &up.base_path, &self.security);
            self.log_rewrite(&changed);
            self.count("agent_card", "ok");
            let mut resp = Response::new(Body::from(card.to_string()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(resp);
        }
        self.count("agent_card", "upstream_error");
        Err(last_err.unwrap_or(crate::error::upstream("no replica serves an agent card")))
    }

    pub(super) fn log_rewrite(&self, changed: &card::Rewritten) {
        if changed.signatures_dropped > 0 {
            tracing::info!(
                route = %self.route,
                signatures = changed.signatures_dropped,
                "agent card signatures dropped: the card was rewritten to point at the gateway, so they would no longer verify"
            );
        }
        if !changed.interfaces_dropped.is_empty() {
            tracing::debug!(
                route = %self.route,
                bindings = ?changed.interfaces_dropped,
                "agent card interfaces other than JSON-RPC dropped: this route proxies JSON-RPC only"
            );
        }
    }

    /// GETs a JSON document from a replica; `None` on 404.
    async fn fetch_json(
        &self,
        up: &Upstream,
        path: &str,
        cx: &RequestCx<'_>,
    ) -> Result<Option<Value>, RequestError> {
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = up.uri(path, None)?;
        req.headers_mut().insert(header::HOST, up.host.clone());
        req.headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(t) = &cx.context.trace {
            t.inject(req.headers_mut());
        }
        let resp = match tokio::time::timeout(cx.timeouts.request, self.client.request(req)).await {
            Err(_) => return Err(crate::error::timeout(cx.timeouts.request)),
            Ok(Err(e)) => return Err(upstream_failed(e)),
            Ok(Ok(r)) => r,
        };
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            tracing::warn!(route = %self.route, status = resp.status().as_u16(), upstream = %up.url, "agent card fetch failed");
            return Err(crate::error::upstream(format!(
                "agent card answered {}",
                resp.status()
            )));
        }
        let bytes = self
            .read_reply(up, resp.into_body(), self.max_card_bytes, "agent card")
            .await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(card) if card.is_object() => Ok(Some(card)),
            _ => {
                tracing::warn!(route = %self.route, upstream = %up.url, "A2A agent card is not a JSON object");
                Err(crate::error::upstream("agent card is not a JSON object"))
            }
        }
    }
}
