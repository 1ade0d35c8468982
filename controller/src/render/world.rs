//! The snapshot rendering reads ([`World`]), filled by the reconciler from its caches or, in
//! tests and tools, from YAML documents ([`add_document`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::CONTROLLER_NAME;
use crate::crd::{Backend, GatewayParameters, Policy};
use crate::gateway_api::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};

/// A snapshot of everything rendering reads (the reconciler fills it from its caches).
#[derive(Debug, Clone, Default)]
pub struct World {
    /// GatewayClasses.
    pub classes: Vec<Arc<GatewayClass>>,
    /// Gateways.
    pub gateways: Vec<Arc<Gateway>>,
    /// HTTPRoutes.
    pub routes: Vec<Arc<HTTPRoute>>,
    /// GRPCRoutes (empty when the API server has no GRPCRoute CRD or the controller may not
    /// read them).
    pub grpc_routes: Vec<Arc<GRPCRoute>>,
    /// ReferenceGrants.
    pub grants: Vec<Arc<ReferenceGrant>>,
    /// Switchboard Backends.
    pub backends: Vec<Arc<Backend>>,
    /// Switchboard Policies.
    pub policies: Vec<Arc<Policy>>,
    /// Switchboard GatewayParameters.
    pub parameters: Vec<Arc<GatewayParameters>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// Namespace labels, by namespace; `None` when the controller cannot read namespaces
    /// (then listeners with `allowedRoutes.namespaces.from: Selector` take no routes).
    pub namespace_labels: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Secrets that exist, as (namespace, name); their data is never read.
    pub secrets: BTreeSet<(String, String)>,
}

/// The GatewayClass of `gw` when this controller serves it.
pub fn our_class<'a>(world: &'a World, gw: &Gateway) -> Option<&'a Arc<GatewayClass>> {
    world
        .classes
        .iter()
        .find(|c| c.name_any() == gw.spec.gateway_class_name)
        .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
}

/// Adds one Gateway API, Switchboard, Service, Secret or Namespace object, given as a parsed YAML document
/// (manifests and golden tests), to the world; fails on any other kind or a malformed object.
pub fn add_document(world: &mut World, doc: Value) -> Result<(), String> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let de = |e: serde_json::Error| format!("{kind}: {e}");
    match kind.as_str() {
        "GatewayClass" => world
            .classes
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Gateway" => world
            .gateways
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "HTTPRoute" => world
            .routes
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "GRPCRoute" => world
            .grpc_routes
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "ReferenceGrant" => world
            .grants
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Backend" => world
            .backends
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Policy" => world
            .policies
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "GatewayParameters" => world
            .parameters
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Service" => world
            .services
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Namespace" => {
            let meta = &doc["metadata"];
            let labels = serde_json::from_value(meta["labels"].clone()).unwrap_or_default();
            world
                .namespace_labels
                .get_or_insert_with(Default::default)
                .insert(
                    meta["name"].as_str().unwrap_or_default().to_string(),
                    labels,
                );
        }
        "Secret" => {
            let meta = &doc["metadata"];
            world.secrets.insert((
                meta["namespace"].as_str().unwrap_or("default").to_string(),
                meta["name"].as_str().unwrap_or_default().to_string(),
            ));
        }
        _ => return Err(format!("unknown kind `{kind}`")),
    }
    Ok(())
}

/// An object's (namespace, name): the key the reconciler and tests look objects up by.
pub fn key_of<K: Resource>(o: &K) -> (String, String) {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}
