//! Leader election with a `coordination.k8s.io/v1` Lease, so that only one controller replica
//! writes (applies children, patches status) and serves config push.
//!
//! The holder renews every `duration / 3`; a candidate takes the Lease over once `renewTime +
//! leaseDurationSeconds` has passed. Updates carry the Lease's `resourceVersion`, so two
//! candidates racing for an expired Lease cannot both win.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease is valid without renewal.
    pub duration: Duration,
}

fn now() -> MicroTime {
    MicroTime(
        SystemTime::now()
            .try_into()
            .expect("system time is in range"),
    )
}

fn expired(spec: &LeaseSpec) -> bool {
    let (Some(renew), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    let renewed: SystemTime = renew.0.into();
    renewed + Duration::from_secs(secs.max(0) as u64) < SystemTime::now()
}

/// Tries once to acquire or renew the Lease. `Ok(true)` when this replica holds it.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> kube::Result<bool> {
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: acquired.or_else(|| Some(now())),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec(0, None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let cur = lease.spec.clone().unwrap_or_default();
            let mine = cur.holder_identity.as_deref() == Some(cfg.identity.as_str());
            if !mine && !expired(&cur) {
                return Ok(false);
            }
            let transitions = cur.lease_transitions.unwrap_or(0) + i32::from(!mine);
            let acquired = if mine { cur.acquire_time.clone() } else { None };
            lease.spec = Some(spec(transitions, acquired));
            // replace() sends resourceVersion: a concurrent writer makes this fail with 409.
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica leads, then keeps renewing in the background. The returned
/// receiver turns `false` if leadership is lost (the caller should stop writing and exit).
pub async fn lead(client: Client, cfg: LeaseConfig) -> watch::Receiver<bool> {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let retry = cfg.duration / 3;
    loop {
        match try_acquire(&api, &cfg).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "lease acquire failed"),
        }
        tokio::time::sleep(retry).await;
    }
    tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
    let (tx, rx) = watch::channel(true);
    tokio::spawn(async move {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(retry).await;
            match try_acquire(&api, &cfg).await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("lost the lease to another replica");
                    let _ = tx.send(false);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lease renew failed");
                    if last_ok.elapsed() > cfg.duration {
                        let _ = tx.send(false);
                        return;
                    }
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}
