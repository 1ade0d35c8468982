//! Leader election with a `coordination.k8s.io/v1` Lease, so that only one controller replica
//! writes (applies children, patches status) and serves config push.
//!
//! The holder renews every [`LeaseConfig::retry_period`]; a candidate takes the Lease over
//! once `renewTime + leaseDurationSeconds` has passed, or at once when the holder released it
//! (an empty `holderIdentity`, written by [`Leadership::release`] on shutdown). Updates carry
//! the Lease's `resourceVersion`, so two candidates racing for an expired Lease cannot both
//! win. A holder that cannot renew for [`LeaseConfig::renew_deadline`] (two thirds of the
//! duration) gives up, so it stops writing before anyone else may take over.

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

impl LeaseConfig {
    /// How often the holder renews and candidates retry: a seventh of the duration, at most
    /// 2 s.
    pub fn retry_period(&self) -> Duration {
        (self.duration / 7).min(Duration::from_secs(2))
    }
    /// How long the holder keeps leading without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// A unique identity for this process: `POD_NAME` (from the downward API) when set, else the
/// host name with a random suffix, so two replicas never share one.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard-controller".into());
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{host}-{:08x}", h.finish() as u32)
}

/// Why leading is impossible.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease's namespace does not exist.
    #[error(
        "the leader-election namespace `{0}` does not exist: create it, or pick an existing one with --namespace (env POD_NAMESPACE)"
    )]
    NoNamespace(String),
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
            let released = cur.holder_identity.as_deref().is_none_or(str::is_empty);
            if !mine && !released && !expired(&cur) {
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

/// This replica's leadership, while it lasts.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    stop: Option<tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<()>>>,
}

impl Leadership {
    /// Resolves when leadership is lost (the caller must stop writing at once).
    pub async fn lost(&self) {
        let mut rx = self.leading.clone();
        let _ = rx.wait_for(|l| !*l).await;
    }

    /// Whether this replica still leads.
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Stops renewing and gives the Lease up (empty holder), so a follower takes over at
    /// once instead of waiting for it to expire. Call after the last write.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            if stop.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(5), done_rx).await;
            }
        }
    }
}

async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> kube::Result<()> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    api.replace(&cfg.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

/// Waits until this replica leads, then keeps renewing in the background. Fails at once when
/// the Lease's namespace does not exist (waiting would never end).
pub async fn lead(client: Client, cfg: LeaseConfig) -> Result<Leadership, LeaderError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let retry = cfg.retry_period();
    let mut waiting_logged = false;
    // The start of the last successful attempt: the Lease's renewTime is no earlier, so
    // stepping down by `last_ok + renew_deadline` is always before anyone may take over.
    let mut last_ok;
    loop {
        last_ok = tokio::time::Instant::now();
        match try_acquire(&api, &cfg).await {
            Ok(true) => break,
            Ok(false) => {
                if !waiting_logged {
                    tracing::info!(identity = %cfg.identity, "another replica leads; waiting");
                    waiting_logged = true;
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
                if let Ok(None) = ns_api.get_opt(&cfg.namespace).await {
                    return Err(LeaderError::NoNamespace(cfg.namespace.clone()));
                }
                tracing::warn!(error = %s, "lease acquire failed");
            }
            Err(e) => tracing::warn!(error = %e, "lease acquire failed"),
        }
        tokio::time::sleep(retry).await;
    }
    tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
    let (tx, rx) = watch::channel(true);
    let (stop_tx, mut stop_rx) =
        tokio::sync::oneshot::channel::<tokio::sync::oneshot::Sender<()>>();
    tokio::spawn(async move {
        loop {
            // The step-down deadline is a timer of its own: neither the wait for the next
            // renewal nor a hanging renewal request can carry leadership past it.
            let deadline = last_ok + cfg.renew_deadline();
            tokio::select! {
                done = &mut stop_rx => {
                    let _ = tx.send(false);
                    if let Ok(done) = done {
                        match release(&api, &cfg).await {
                            Ok(()) => tracing::info!(identity = %cfg.identity, "released the lease"),
                            Err(e) => tracing::warn!(error = %e, "cannot release the lease"),
                        }
                        let _ = done.send(());
                    }
                    return;
                }
                _ = tokio::time::sleep_until((tokio::time::Instant::now() + retry).min(deadline)) => {}
            }
            let started = tokio::time::Instant::now();
            match tokio::time::timeout_at(deadline, try_acquire(&api, &cfg)).await {
                Ok(Ok(true)) => last_ok = started,
                Ok(Ok(false)) => {
                    tracing::error!("lost the lease to another replica");
                    let _ = tx.send(false);
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "lease renew failed"),
                Err(_) => tracing::warn!("lease renew timed out"),
            }
            if tokio::time::Instant::now() >= last_ok + cfg.renew_deadline() {
                tracing::error!("could not renew the lease in time; stepping down");
                let _ = tx.send(false);
                return;
            }
        }
    });
    Ok(Leadership {
        leading: rx,
        stop: Some(stop_tx),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(duration: Duration) -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            duration,
        }
    }

    /// The README's figures: the holder renews, and followers try, every seventh of the lease
    /// duration, at most every 2 s; the holder steps down after two thirds without renewing.
    #[test]
    fn renewals_and_tries_come_every_seventh_of_the_duration_at_most_2_s() {
        // (lease duration, retry period, renew deadline)
        let secs = Duration::from_secs;
        for (duration, retry, deadline) in [
            (secs(7), secs(1), Duration::from_nanos(4_666_666_666)),
            (secs(3), secs(3) / 7, secs(2)),
            (secs(15), secs(2), secs(10)),
            (secs(60), secs(2), secs(40)),
        ] {
            assert_eq!(cfg(duration).retry_period(), retry, "{duration:?}");
            assert_eq!(cfg(duration).renew_deadline(), deadline, "{duration:?}");
        }
    }

    /// A Lease is free to take once `renewTime + leaseDurationSeconds` has passed, not before.
    #[test]
    fn a_lease_expires_at_renew_time_plus_its_duration() {
        let spec = |ago: Duration, secs: i32| LeaseSpec {
            renew_time: Some(MicroTime((SystemTime::now() - ago).try_into().unwrap())),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        };
        assert!(!expired(&spec(Duration::from_secs(1), 15)));
        assert!(!expired(&spec(Duration::from_secs(14), 15)));
        assert!(expired(&spec(Duration::from_secs(16), 15)));
        assert!(expired(&LeaseSpec::default()), "no renewTime: free");
    }
}
