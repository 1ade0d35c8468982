//! The Switchboard Kubernetes controller: Gateway API and Switchboard CRDs in, proxy fleets
//! out.
//!
//! Data flows one way. [`reconcile`] keeps reflector caches of every input kind
//! (GatewayClass, Gateway, HTTPRoute, GRPCRoute when its CRD is installed, ReferenceGrant, the
//! [`crd`] kinds, Services and Secret metadata); any change re-renders every Gateway (rendering is cheap, and a change can affect
//! Gateways it no longer names). A reconcile snapshots the caches into a [`render::World`]
//! and calls [`render::render`], a pure function that produces the proxy's `Config` (the
//! gateway crate's own type, so file and cluster share one schema), the child objects
//! (ConfigMap, Deployment, Service, ServiceAccount) and the status to write. The reconciler
//! applies the children with server-side apply, prunes children no longer wanted, writes
//! status and Events, and publishes the config to [`push`], which streams each version to the
//! Gateway's proxies after checking their service-account token with a TokenReview.
//! [`leader`] holds a Lease so only one replica writes.
//!
//! Modules, in the order data flows through them:
//!
//! - [`gateway_api`]: the Gateway API types the controller reads and writes (the subset it
//!   uses).
//! - [`crd`]: the Switchboard CRDs (Backend, GatewayParameters, Policy) and their schemas.
//! - [`render`]: cluster snapshot and Gateway in; proxy config, child objects and status out.
//!   One file per stage (listeners, routes, backends, policies, children, status...).
//! - [`reconcile`]: caches, apply and prune, status writes, the sweep, and the controller
//!   loops.
//! - [`push`]: the config push server the proxies follow.
//! - [`leader`]: Lease-based leader election.
//! - [`install`]: the install manifests and the RBAC rules they grant (checked at start-up).
//! - [`error`]: the crate's error type.

pub mod crd;
pub mod error;
pub mod gateway_api;
pub mod install;
pub mod leader;
pub mod push;
pub mod reconcile;
pub mod render;

pub use error::{Error, Result};
