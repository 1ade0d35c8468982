//! The caches a reconcile reads instead of the API server ([`Stores`]), and how a cached
//! object is decoded: one at a time, so an object the Rust types refuse is reported
//! ([`InvalidObject`]) and skipped instead of failing every watch and every Gateway.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::render::World;

/// The caches a reconcile reads instead of the API server. Input kinds that users write are
/// cached undecoded ([`DynamicObject`]) and decoded one object at a time in [`Stores::world`],
/// so one object the Rust types refuse is reported and skipped instead of failing the whole
/// list (and with it every watch and every Gateway).
#[derive(Clone)]
pub struct Stores {
    /// GatewayClasses.
    pub classes: Store<DynamicObject>,
    /// Gateways.
    pub gateways: Store<DynamicObject>,
    /// HTTPRoutes.
    pub routes: Store<DynamicObject>,
    /// GRPCRoutes; `None` when the API server serves no GRPCRoute CRD or the controller may
    /// not list them (it then renders HTTPRoutes only).
    pub grpc_routes: Option<Store<DynamicObject>>,
    /// ReferenceGrants.
    pub grants: Store<DynamicObject>,
    /// Backends.
    pub backends: Store<DynamicObject>,
    /// Policies.
    pub policies: Store<DynamicObject>,
    /// GatewayParameters.
    pub parameters: Store<DynamicObject>,
    /// Services.
    pub services: Store<Service>,
    /// Secret metadata (never the data).
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Namespace metadata (their labels, for `allowedRoutes` selectors); `None` when the
    /// controller may not list namespaces.
    pub namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
}

/// An object the controller could not decode: reported on the object itself and skipped.
#[derive(Debug, Clone)]
pub struct InvalidObject {
    /// Its kind.
    pub kind: &'static str,
    /// The raw object.
    pub object: Arc<DynamicObject>,
    /// Why it was refused.
    pub error: String,
}

/// Decodes one cached object as `K`; `apiVersion` and `kind` are filled in, as list items
/// may lack them.
pub fn decode<K>(o: &DynamicObject) -> std::result::Result<K, serde_json::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let mut v = serde_json::to_value(o)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), K::api_version(&()).into());
        m.insert("kind".into(), K::kind(&()).into());
    }
    serde_json::from_value(v)
}

fn decode_all<K>(store: &Store<DynamicObject>, invalid: &mut Vec<InvalidObject>) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let mut out = Vec::new();
    for o in store.state() {
        match decode::<K>(&o) {
            Ok(k) => out.push(Arc::new(k)),
            Err(e) => invalid.push(InvalidObject {
                kind: kind_name::<K>(),
                object: o,
                error: format!("cannot be read: {e}"),
            }),
        }
    }
    out
}

fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "GatewayClass" => "GatewayClass",
        "Gateway" => "Gateway",
        "HTTPRoute" => "HTTPRoute",
        "GRPCRoute" => "GRPCRoute",
        "ReferenceGrant" => "ReferenceGrant",
        "Backend" => "Backend",
        "Policy" => "Policy",
        "GatewayParameters" => "GatewayParameters",
        _ => "object",
    }
}

impl Stores {
    /// A consistent-enough snapshot for one rendering.
    pub fn world(&self) -> World {
        self.world_and_invalid().0
    }

    /// The snapshot, and the objects that did not decode (left out of it).
    pub fn world_and_invalid(&self) -> (World, Vec<InvalidObject>) {
        let mut invalid = Vec::new();
        let world = World {
            classes: decode_all(&self.classes, &mut invalid),
            gateways: decode_all(&self.gateways, &mut invalid),
            routes: decode_all(&self.routes, &mut invalid),
            grpc_routes: self
                .grpc_routes
                .as_ref()
                .map(|s| decode_all(s, &mut invalid))
                .unwrap_or_default(),
            grants: decode_all(&self.grants, &mut invalid),
            backends: decode_all(&self.backends, &mut invalid),
            policies: decode_all(&self.policies, &mut invalid),
            parameters: decode_all(&self.parameters, &mut invalid),
            services: self.services.state(),
            secrets: self
                .secrets
                .state()
                .iter()
                .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
                .collect::<BTreeSet<_>>(),
            namespace_labels: self.namespaces.as_ref().map(|s| {
                s.state()
                    .iter()
                    .map(|n| (n.name_any(), n.labels().clone()))
                    .collect()
            }),
        };
        (world, invalid)
    }

    /// Resolves once every cache holds a complete first listing; meanwhile `waiting` holds
    /// the kinds whose listing is not complete yet. Until then nothing is decided: a Gateway
    /// whose GatewayClass is not cached yet is not "someone else's".
    ///
    /// Only one future waits here: the one in [`super::run`], which tells everything else
    /// through [`super::Context::mark_caches_complete`]. kube's `Store::wait_until_ready` wakes only
    /// the waker that polled it last, so a second waiter (the sweep, or a reconcile, which
    /// kube polls with a waker of its own) could miss the wake-up and wait for ever: a
    /// Gateway created while the controller started was then never reconciled.
    pub async fn wait_until_ready(&self, waiting: &Mutex<Vec<&'static str>>) {
        async fn one<K>(
            store: Option<&Store<K>>,
            kind: &'static str,
            waiting: &Mutex<Vec<&'static str>>,
        ) where
            K: kube::runtime::reflector::Lookup + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            let Some(store) = store else { return };
            waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(kind);
            let _ = store.wait_until_ready().await;
            waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|k| *k != kind);
        }
        futures::join!(
            one(Some(&self.classes), "GatewayClass", waiting),
            one(Some(&self.gateways), "Gateway", waiting),
            one(Some(&self.routes), "HTTPRoute", waiting),
            one(self.grpc_routes.as_ref(), "GRPCRoute", waiting),
            one(Some(&self.grants), "ReferenceGrant", waiting),
            one(Some(&self.backends), "Backend", waiting),
            one(Some(&self.policies), "Policy", waiting),
            one(Some(&self.parameters), "GatewayParameters", waiting),
            one(Some(&self.services), "Service", waiting),
            one(Some(&self.secrets), "Secret", waiting),
            one(self.namespaces.as_ref(), "Namespace", waiting),
        );
    }
}
