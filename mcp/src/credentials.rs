//! Upstream credentials of a route's targets (`policies.upstream_auth` and
//! `targets[].upstream_auth`). The gateway compiles them (it owns the secret sources: inline,
//! environment, a file re-read when it changes) and hands them over as
//! [`UpstreamCredential`]s with [`McpBackend::set_upstream_credentials`]; every request the
//! backend sends an http, sse or openapi target asks its slot for the current value, so a
//! rotated file needs neither a reload nor a new upstream session. Code outside the crate that
//! builds its own requests calls [`McpBackend::upstream_credential`] per request.
//!
//! [`McpBackend::set_upstream_credentials`]: crate::McpBackend::set_upstream_credentials
//! [`McpBackend::upstream_credential`]: crate::McpBackend::upstream_credential

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use http::{HeaderMap, HeaderName, HeaderValue};

pub use switchboard_core::UpstreamCredential;

/// A shared credential source.
pub type Credential = Arc<dyn UpstreamCredential>;

/// The credentials of a route's targets: the route's own (`policies.upstream_auth`) and each
/// target's override (`targets[].upstream_auth`, where `none` is an override without one).
#[derive(Clone, Default)]
pub struct TargetCredentials {
    route: Option<Credential>,
    targets: HashMap<String, Option<Credential>>,
}

impl TargetCredentials {
    /// The route's credential, for every target without an override.
    pub fn new(route: Option<Credential>) -> Self {
        TargetCredentials {
            route,
            targets: HashMap::new(),
        }
    }

    /// Target `name` gets `own` instead of the route's credential (`None`: no credential).
    pub fn with_target(mut self, name: &str, own: Option<Credential>) -> Self {
        self.targets.insert(name.to_string(), own);
        self
    }

    /// What target `name` gets, and whether it is the target's own (which wins over a header
    /// of the same name in the target's `headers`; the route's yields to it).
    pub(crate) fn resolve(&self, name: &str) -> Option<(Credential, bool)> {
        match self.targets.get(name) {
            Some(own) => own.clone().map(|c| (c, true)),
            None => self.route.clone().map(|c| (c, false)),
        }
    }
}

/// One target's current credential, shared by every upstream connection to it; replaced when
/// the gateway applies a new configuration.
#[derive(Clone, Default)]
pub(crate) struct CredentialSlot(Arc<RwLock<Option<(Credential, bool)>>>);

impl CredentialSlot {
    pub(crate) fn set(&self, c: Option<(Credential, bool)>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = c;
    }

    fn get(&self) -> Option<(Credential, bool)> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The headers of every request to one http, sse or openapi target: its fixed `headers` plus
/// the credential current at the time of the request.
#[derive(Clone, Default)]
pub(crate) struct UpstreamHeaders {
    fixed: HeaderMap,
    slot: CredentialSlot,
}

impl UpstreamHeaders {
    pub(crate) fn new(fixed: HeaderMap, slot: CredentialSlot) -> Self {
        UpstreamHeaders { fixed, slot }
    }

    /// The headers for one request now.
    pub(crate) fn current(&self) -> HeaderMap {
        let mut h = self.fixed.clone();
        if let Some((name, value)) = self.credential() {
            h.insert(name, value);
        }
        h
    }

    /// The credential header for one request now, if any.
    pub(crate) fn credential(&self) -> Option<(HeaderName, HeaderValue)> {
        let (c, own) = self.slot.get()?;
        let (name, value) = c.header()?;
        // A header the target's config sets itself is more specific than the route's policy.
        if !own && self.fixed.contains_key(&name) {
            return None;
        }
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str);
    impl UpstreamCredential for Fixed {
        fn header(&self) -> Option<(HeaderName, HeaderValue)> {
            Some((
                http::header::AUTHORIZATION,
                HeaderValue::from_static(self.0),
            ))
        }
    }

    #[test]
    fn own_credential_wins_and_the_routes_yields_to_fixed_headers() {
        let creds = TargetCredentials::new(Some(Arc::new(Fixed("route"))))
            .with_target("own", Some(Arc::new(Fixed("own"))))
            .with_target("off", None);
        let mut fixed = HeaderMap::new();
        fixed.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("fixed"),
        );
        let headers = |name: &str, fixed: HeaderMap| {
            let slot = CredentialSlot::default();
            slot.set(creds.resolve(name));
            UpstreamHeaders::new(fixed, slot).current()
        };
        assert_eq!(headers("other", HeaderMap::new())["authorization"], "route");
        assert_eq!(headers("other", fixed.clone())["authorization"], "fixed");
        assert_eq!(headers("own", fixed.clone())["authorization"], "own");
        assert!(
            headers("off", HeaderMap::new())
                .get("authorization")
                .is_none()
        );
    }
}
