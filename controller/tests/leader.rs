//! Leader election against the fake API server: one holder at a time, renewal by the holder,
//! takeover of an expired Lease, and no takeover of a live one.

use crate::common;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use switchboard_controller::leader::{LeaseConfig, try_acquire};

fn cfg(identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "switchboard-system".into(),
        name: "switchboard-controller".into(),
        identity: identity.into(),
        duration: std::time::Duration::from_secs(15),
    }
}

#[tokio::test]
async fn one_leader_at_a_time_and_expired_leases_are_taken_over() {
    let fake = FakeApiServer::start().await;
    let api: Api<Lease> = Api::namespaced(fake.client(), "switchboard-system");

    assert!(
        try_acquire(&api, &cfg("a")).await.unwrap(),
        "first candidate creates the Lease"
    );
    assert!(
        !try_acquire(&api, &cfg("b")).await.unwrap(),
        "a live Lease is not taken"
    );
    assert!(
        try_acquire(&api, &cfg("a")).await.unwrap(),
        "the holder renews"
    );
    let lease = api
        .get("switchboard-controller")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("a"));
    assert_eq!(lease.lease_transitions, Some(0));

    // The holder died: its last renewal is long past.
    fake.put(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "switchboard-controller", "namespace": "switchboard-system"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                 "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 0}
    }));
    assert!(
        try_acquire(&api, &cfg("b")).await.unwrap(),
        "an expired Lease is taken over"
    );
    let lease = api
        .get("switchboard-controller")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("b"));
    assert_eq!(lease.lease_transitions, Some(1));
    assert!(
        !try_acquire(&api, &cfg("a")).await.unwrap(),
        "the old holder does not get it back"
    );
}
