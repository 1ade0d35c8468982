//! GatewayParameters: the class's defaults and the Gateway's own reference, merged field by
//! field (how the proxy fleet is deployed: image, replicas, resources, session store, mesh).

use kube::ResourceExt;

use super::{World, our_class};
use crate::crd::{self, GatewayParametersSpec};
use crate::gateway_api::Gateway;

/// The parameters of `gw`: the class's, then the Gateway's own on top. A reference that does
/// not resolve is reported (the last such problem) and leaves the parameters as they were.
pub(super) fn resolve(
    world: &World,
    gw: &Gateway,
    ns: &str,
) -> (GatewayParametersSpec, Option<String>) {
    let mut params_error = None;
    let mut params = GatewayParametersSpec::default();
    if let Some(r) = our_class(world, gw).and_then(|c| c.spec.parameters_ref.as_ref()) {
        match find_params(
            world,
            &r.group,
            &r.kind,
            r.namespace.as_deref().unwrap_or(ns),
            &r.name,
        ) {
            Ok(p) => params = p,
            Err(e) => params_error = Some(e),
        }
    }
    if let Some(r) = gw
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    {
        match find_params(world, &r.group, &r.kind, ns, &r.name) {
            Ok(p) => params = merge_params(params, p),
            Err(e) => params_error = Some(e),
        }
    }
    (params, params_error)
}

fn find_params(
    world: &World,
    group: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<GatewayParametersSpec, String> {
    if group != crd::GROUP || kind != "GatewayParameters" {
        return Err(format!(
            "parametersRef must point at a {}/GatewayParameters, not {group}/{kind}",
            crd::GROUP
        ));
    }
    world
        .parameters
        .iter()
        .find(|p| p.namespace().as_deref() == Some(ns) && p.name_any() == name)
        .map(|p| p.spec.clone())
        .ok_or_else(|| format!("GatewayParameters {ns}/{name} not found"))
}

/// The Gateway's parameters override the class's, field by field.
fn merge_params(
    base: crd::GatewayParametersSpec,
    over: crd::GatewayParametersSpec,
) -> crd::GatewayParametersSpec {
    crd::GatewayParametersSpec {
        image: over.image.or(base.image),
        replicas: over.replicas.or(base.replicas),
        resources: over.resources.or(base.resources),
        service_type: over.service_type.or(base.service_type),
        service_annotations: {
            let mut a = base.service_annotations;
            a.extend(over.service_annotations);
            a
        },
        external_traffic_policy: over
            .external_traffic_policy
            .or(base.external_traffic_policy),
        load_balancer_class: over.load_balancer_class.or(base.load_balancer_class),
        proxy_protocol: over.proxy_protocol.or(base.proxy_protocol),
        trusted_proxies: over.trusted_proxies.or(base.trusted_proxies),
        admin_token_secret: over.admin_token_secret.or(base.admin_token_secret),
        env: if over.env.is_empty() {
            base.env
        } else {
            over.env
        },
        session_store: over.session_store.or(base.session_store),
        istio: over.istio.or(base.istio),
    }
}
