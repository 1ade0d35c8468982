//! Applying a rendering: the config is validated and published for push, the child objects
//! are server-side applied (field manager [`FIELD_MANAGER`], forced, so the controller owns
//! what it renders), and labelled children no longer wanted are pruned.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use super::status::truncate;
use crate::gateway_api::GatewayStatusAddress;
use crate::render::{Cond, FIELD_MANAGER, GATEWAY_LABEL, Rendered};
use crate::{Error, Result};

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    Ok(api
        .patch(&name, &apply_params(), &Patch::Apply(obj))
        .await?)
}

/// Deletes children of the Gateway (`gateway`, `uid`) of kind `K` that carry our label and an
/// ownerReference to that very Gateway, and whose names are not `keep`: only children that
/// are provably this Gateway's and no longer wanted.
async fn prune<K>(
    client: &Client,
    ns: &str,
    gateway: &str,
    uid: &str,
    keep: Option<&str>,
) -> Result<usize>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{GATEWAY_LABEL}={gateway}"));
    let mut n = 0;
    for o in api.list_metadata(&lp).await? {
        let name = o.name_any();
        let owned = o.owner_references().iter().any(|r| r.uid == uid);
        if owned && Some(name.as_str()) != keep {
            api.delete(&name, &DeleteParams::background()).await?;
            n += 1;
        }
    }
    Ok(n)
}

pub(super) async fn prune_all(
    client: &Client,
    ns: &str,
    gateway: &str,
    uid: &str,
    keep: Option<&str>,
) -> Result<usize> {
    Ok(prune::<Deployment>(client, ns, gateway, uid, keep).await?
        + prune::<Service>(client, ns, gateway, uid, keep).await?
        + prune::<ConfigMap>(client, ns, gateway, uid, keep).await?
        + prune::<ServiceAccount>(client, ns, gateway, uid, keep).await?)
}

/// The addresses a Service offers: load-balancer ingress, else its cluster IP.
pub fn addresses_of(svc: &Service) -> Vec<GatewayStatusAddress> {
    let mut out = Vec::new();
    if let Some(ing) = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
    {
        for i in ing {
            if let Some(ip) = &i.ip {
                out.push(GatewayStatusAddress {
                    type_: "IPAddress".into(),
                    value: ip.clone(),
                });
            } else if let Some(h) = &i.hostname {
                out.push(GatewayStatusAddress {
                    type_: "Hostname".into(),
                    value: h.clone(),
                });
            }
        }
    }
    let spec = svc.spec.as_ref();
    let ty = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    if out.is_empty()
        && ty != "LoadBalancer"
        && let Some(ip) = spec
            .and_then(|s| s.cluster_ip.as_ref())
            .filter(|ip| *ip != "None")
    {
        out.push(GatewayStatusAddress {
            type_: "IPAddress".into(),
            value: ip.clone(),
        });
    }
    out
}

async fn apply_children(ctx: &Context, ns: &str, rendered: &Rendered) -> Result<Service> {
    let c = &rendered.children;
    apply(&ctx.client, ns, &c.service_account).await?;
    apply(&ctx.client, ns, &c.config_map).await?;
    let svc = apply(&ctx.client, ns, &c.service).await?;
    apply(&ctx.client, ns, &c.deployment).await?;
    Ok(svc)
}

/// What applying a rendering achieved.
pub(super) struct Programmed {
    /// The Gateway's `Programmed` condition.
    pub(super) condition: Cond,
    /// The addresses of the proxy Service.
    pub(super) addresses: Vec<GatewayStatusAddress>,
    /// Why the children could not be applied: the reconcile fails with it once the status
    /// is written, so it is retried.
    pub(super) apply_error: Option<Error>,
}

/// Validates the rendered config, publishes it for push, applies the children and prunes
/// those no longer wanted. Problems found become warnings in `warnings`. Errors only when
/// pruning fails.
pub(super) async fn program(
    ctx: &Context,
    ns: &str,
    name: &str,
    uid: &str,
    rendered: &Rendered,
    warnings: &mut Vec<String>,
) -> Result<Programmed> {
    // The proxy validates what it receives; validating here too turns a rendering bug into a
    // condition instead of a fleet that refuses its config. `${VAR}`s are filled with a
    // placeholder: their values live in Secrets the controller does not read.
    let validation =
        switchboard_gateway::config::load_str(&rendered.config_yaml, "rendered", &|_| {
            Some("placeholder".into())
        });
    let mut programmed = Cond {
        type_: "Programmed",
        status: true,
        reason: "Programmed",
        message: String::new(),
    };
    let mut addresses = Vec::new();
    let mut apply_error = None;
    match validation {
        Err(errors) => {
            let msg = format!("the rendered proxy config is invalid: {errors}");
            warnings.push(msg.clone());
            programmed = Cond::failed("Programmed", "Invalid", truncate(&msg));
        }
        Ok(_) => {
            // Proxies that follow the push stream get the config even if the children
            // cannot be written.
            ctx.hub
                .publish(ns, name, &rendered.checksum, &rendered.config_yaml);
            if let Some(msg) = &rendered.too_large {
                warnings.push(msg.clone());
                programmed = Cond::failed("Programmed", "Invalid", msg.clone());
            } else {
                match apply_children(ctx, ns, rendered).await {
                    Ok(svc) => {
                        prune_all(&ctx.client, ns, name, uid, Some(name)).await?;
                        addresses = addresses_of(&svc);
                        if addresses.is_empty() {
                            programmed = Cond::failed(
                                "Programmed",
                                "AddressNotAssigned",
                                "waiting for the Service to get an address",
                            );
                        }
                    }
                    Err(e) => {
                        programmed = Cond::failed(
                            "Programmed",
                            "Invalid",
                            truncate(&format!("cannot apply the proxy fleet: {e}")),
                        );
                        apply_error = Some(e);
                    }
                }
            }
        }
    }
    Ok(Programmed {
        condition: programmed,
        addresses,
        apply_error,
    })
}
