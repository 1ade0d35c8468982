//! The Switchboard Kubernetes controller: Gateway API and Switchboard CRDs in, proxy fleets
//! out.
//!
//! Data flows one way. [`reconcile`] keeps reflector caches of every input kind
//! (GatewayClass, Gateway, HTTPRoute, ReferenceGrant, the [`crd`] kinds, Services and Secret
//! metadata); any change re-queues the Gateways it may affect. A reconcile snapshots the caches
//! into a [`render::World`] and calls [`render::render`], a pure function that produces the
//! proxy's `Config` (the gateway crate's own type, so file and cluster share one schema), the
//! child objects (ConfigMap, Deployment, Service, ServiceAccount) and the status to write.
//! The reconciler applies the children with server-side apply, prunes children no longer
//! wanted, writes status and Events, and publishes the config to [`push`], which streams each
//! version to the Gateway's proxies after checking their service-account token with a
//! TokenReview. [`leader`] holds a Lease so only one replica writes.

pub mod crd;
pub mod error;
pub mod gateway_api;
pub mod leader;
pub mod push;
pub mod reconcile;
pub mod render;

pub use error::{Error, Result};
