//! Policies: Switchboard Policy objects attached to a Gateway (all listeners or one), an
//! HTTPRoute or a Backend, mapped onto the proxy config's `policies` blocks and merged with
//! what HTTPRoute filters ask for.

use std::sync::Arc;

use kube::ResourceExt;
use serde_json::Value;
use switchboard_gateway::config::Policies;

use super::World;
use super::status::{Cond, Resources};
use crate::crd::{self, Backend, Policy};
use crate::gateway_api::{self as gwapi, Gateway};

/// `over`'s keys replace `base`'s (Policy objects win over HTTPRoute filters).
pub(super) fn merge_policies(base: &mut Policies, over: Policies) {
    let mut b = switchboard_gateway::config::expose_secrets(|| serde_json::to_value(&*base))
        .expect("policies serialize");
    if let (Some(bo), Value::Object(oo)) = (
        b.as_object_mut(),
        switchboard_gateway::config::expose_secrets(|| serde_json::to_value(over))
            .expect("policies serialize"),
    ) {
        for (k, v) in oo {
            bo.insert(k, v);
        }
    }
    *base = serde_json::from_value(b).expect("merging two valid policy blocks stays valid");
}

/// The Policy objects, in (namespace, name) order so that merges are deterministic. A Policy
/// attaches only to objects in its own namespace.
pub(super) struct PolicyIndex<'a> {
    policies: Vec<&'a Arc<Policy>>,
}

impl<'a> PolicyIndex<'a> {
    pub(super) fn new(world: &'a World) -> Self {
        let mut policies: Vec<&Arc<Policy>> = world.policies.iter().collect();
        policies.sort_by_key(|p| (p.namespace(), p.name_any()));
        Self { policies }
    }

    fn targets(p: &Policy, group: &str, kind: &str, name: &str) -> bool {
        p.spec
            .target_refs
            .iter()
            .any(|t| t.group == group && t.kind == kind && t.name == name)
    }

    /// An `Accepted` entry for every Policy that names the Gateway `gw` in a targetRef.
    pub(super) fn on_gateway(&self, gw: &str) -> Resources {
        self.policies
            .iter()
            .filter(|p| Self::targets(p, gwapi::GROUP, "Gateway", gw))
            .map(|p| {
                (
                    ("Policy", p.namespace().unwrap_or_default(), p.name_any()),
                    vec![Cond::ok("Accepted", "Accepted")],
                )
            })
            .collect()
    }

    /// The Policies in `ns` that target this object (and listener `section`), merged in
    /// order; each one's `Accepted` condition goes into `resources`.
    fn collect(
        &self,
        ns: &str,
        group: &str,
        kind: &str,
        name: &str,
        section: Option<&str>,
        resources: &mut Resources,
    ) -> Option<Policies> {
        let mut out: Option<Policies> = None;
        for p in self
            .policies
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(ns))
        {
            let hit = p.spec.target_refs.iter().any(|t| {
                t.group == group
                    && t.kind == kind
                    && t.name == name
                    && t.section_name.as_deref() == section
            });
            if !hit {
                continue;
            }
            let (pol, problems) = policy_to_config(&p.spec);
            let conds = match problems.is_empty() {
                true => vec![Cond::ok("Accepted", "Accepted")],
                false => vec![Cond::fail("Accepted", "Invalid", problems.join("; "))],
            };
            resources.insert(("Policy", ns.to_string(), p.name_any()), conds);
            if !problems.is_empty() {
                // Refused as a whole: half a policy (say, authn without its rate limit) would
                // be a different policy than the one written.
                continue;
            }
            match &mut out {
                Some(o) => merge_policies(o, pol),
                None => out = Some(pol),
            }
        }
        out
    }

    /// The Policies attached to a route of `kind` (`HTTPRoute` or `GRPCRoute`).
    pub(super) fn for_route(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
        resources: &mut Resources,
    ) -> Option<Policies> {
        self.collect(ns, gwapi::GROUP, kind, name, None, resources)
    }

    /// The Policies attached to a Backend.
    pub(super) fn for_backend(&self, b: &Backend, resources: &mut Resources) -> Option<Policies> {
        self.collect(
            &b.namespace().unwrap_or_default(),
            crd::GROUP,
            "Backend",
            &b.name_any(),
            None,
            resources,
        )
    }

    /// The Policies of one proxy listener: those on the whole Gateway, then those on the
    /// listener (`sectionName`) on top.
    pub(super) fn listener_policies(
        &self,
        gw: &Gateway,
        listener: &str,
        resources: &mut Resources,
    ) -> Option<Policies> {
        let ns = gw.namespace().unwrap_or_default();
        let name = gw.name_any();
        let mut all = self.collect(&ns, gwapi::GROUP, "Gateway", &name, None, resources);
        if let Some(section) = self.collect(
            &ns,
            gwapi::GROUP,
            "Gateway",
            &name,
            Some(listener),
            resources,
        ) {
            match &mut all {
                Some(a) => merge_policies(a, section),
                None => all = Some(section),
            }
        }
        all
    }
}

/// A Policy spec's proxy `policies` block (the same type), with the problems the proxy's
/// semantic checks find in it (a Policy with problems is `Accepted=False`).
pub fn policy_to_config(p: &crd::PolicySpec) -> (Policies, Vec<String>) {
    let pol = p.policies.clone();
    let problems = switchboard_gateway::config::policies_issues(&pol, "spec")
        .into_iter()
        .map(|(at, m)| format!("{at}: {m}"))
        .collect();
    (pol, problems)
}
