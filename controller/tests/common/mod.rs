//! Test support: an in-process fake Kubernetes API server, and helpers.
//!
//! kube-apiserver cannot be installed here, so this is a small but faithful stand-in for what
//! the controller uses: CRD-less storage keyed by (group, resource, namespace, name); list
//! (with equality label selectors) and watch (history replay from a resourceVersion, then
//! live events); create, replace (with resourceVersion conflicts), delete (with ownerReference
//! cascade, as the garbage collector would); server-side apply (create-or-merge; maps merge,
//! lists replace — enough for the objects here); JSON merge patch; the status subresource
//! (writes to the main resource leave status alone, writes to `/status` touch only status);
//! `metadata.generation` bumped on spec changes; Service cluster IPs; TokenReview against a
//! table of known tokens; Events accepted and stored.

#![allow(dead_code)]

mod cluster;
#[allow(unused_imports)]
pub use cluster::*;
mod controller;
#[allow(unused_imports)]
pub use controller::*;
mod fleet;
#[allow(unused_imports)]
pub use fleet::*;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// (group, resource, namespace, name)
type Key = (String, String, String, String);

#[derive(Clone, Debug)]
struct WatchEvent {
    rv: u64,
    group: String,
    resource: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<WatchEvent>,
    tokens: HashMap<String, String>,
    requests: Vec<String>,
    rejected: Vec<String>,
}

/// A running fake API server.
#[derive(Clone)]
pub struct FakeApiServer {
    inner: Arc<Mutex<Inner>>,
    schemas: Arc<Schemas>,
    tx: broadcast::Sender<WatchEvent>,
    /// Its address.
    pub addr: SocketAddr,
}

impl FakeApiServer {
    /// Starts it on a free loopback port.
    pub async fn start() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            schemas: Arc::new(Schemas::load()),
            tx,
            addr,
        };
        let app = Router::new().fallback(handle).with_state(me.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        me
    }

    /// A kube client for it.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// Makes `token` authenticate as `username` in TokenReviews.
    pub fn add_token(&self, token: &str, username: &str) {
        self.inner
            .lock()
            .unwrap()
            .tokens
            .insert(token.into(), username.into());
    }

    /// An object by (group, resource, namespace, name); namespace "" for cluster scope.
    pub fn get(&self, group: &str, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .get(&(group.into(), resource.into(), ns.into(), name.into()))
            .cloned()
    }

    /// All objects of a resource.
    pub fn list(&self, group: &str, resource: &str) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|(k, _)| k.0 == group && k.1 == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every write refused by schema validation so far.
    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }

    /// Every request so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Stores an object as a client's create or apply would (for test setup).
    pub fn put(&self, obj: Value) {
        let (group, resource) = resource_of(&obj);
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let mut inner = self.inner.lock().unwrap();
        let key = (group, resource, ns, name);
        let existing = inner.objects.get(&key).cloned();
        let merged = match existing {
            Some(mut cur) => {
                let status = obj.get("status").cloned();
                let mut o = obj.clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("status");
                }
                merge(&mut cur, &o, true);
                if let Some(s) = status {
                    cur["status"] = s;
                }
                cur
            }
            None => obj,
        };
        store(&mut inner, &self.tx, key, merged);
    }

    /// Deletes an object (with ownerReference cascade).
    pub fn delete(&self, group: &str, resource: &str, ns: &str, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        remove(
            &mut inner,
            &self.tx,
            &(group.into(), resource.into(), ns.into(), name.into()),
        );
    }
}

/// Maps a kind to its (group, plural resource).
fn resource_of(obj: &Value) -> (String, String) {
    let api_version = obj["apiVersion"].as_str().unwrap_or("v1");
    let group = match api_version.split_once('/') {
        Some((g, _)) => g.to_string(),
        None => String::new(),
    };
    let kind = obj["kind"].as_str().unwrap_or_default();
    let plural = match kind {
        "GatewayParameters" => "gatewayparameters".to_string(),
        "Policy" => "policies".to_string(),
        k if k.ends_with("Class") => format!("{}es", k.to_lowercase()),
        k => format!("{}s", k.to_lowercase()),
    };
    (group, plural)
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "gatewayclasses" => "GatewayClass",
        "gateways" => "Gateway",
        "httproutes" => "HTTPRoute",
        "referencegrants" => "ReferenceGrant",
        "backends" => "Backend",
        "policies" => "Policy",
        "gatewayparameters" => "GatewayParameters",
        "services" => "Service",
        "secrets" => "Secret",
        "configmaps" => "ConfigMap",
        "serviceaccounts" => "ServiceAccount",
        "deployments" => "Deployment",
        "leases" => "Lease",
        "events" => "Event",
        "namespaces" => "Namespace",
        _ => "Unknown",
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Writes `obj` under `key`, stamping metadata and emitting a watch event.
fn store(inner: &mut Inner, tx: &broadcast::Sender<WatchEvent>, key: Key, mut obj: Value) {
    inner.rv += 1;
    let rv = inner.rv;
    let existing = inner.objects.get(&key).cloned();
    let meta = obj["metadata"].as_object_mut().unwrap();
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    meta.insert("name".into(), json!(key.3));
    if !key.2.is_empty() {
        meta.insert("namespace".into(), json!(key.2));
    }
    let kind = match &existing {
        None => {
            inner.uid += 1;
            meta.insert("uid".into(), json!(format!("uid-{}", inner.uid)));
            meta.insert("creationTimestamp".into(), json!(now()));
            meta.insert("generation".into(), json!(1));
            "ADDED"
        }
        Some(old) => {
            for k in ["uid", "creationTimestamp"] {
                meta.insert(k.into(), old["metadata"][k].clone());
            }
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let spec_changed = strip(old) != strip(&obj);
            obj["metadata"]["generation"] = json!(if spec_changed {
                generation + 1
            } else {
                generation
            });
            "MODIFIED"
        }
    };
    if key.1 == "services"
        && obj["spec"]["clusterIP"].is_null()
        && obj["spec"]["type"].as_str() != Some("ExternalName")
    {
        obj["spec"]["clusterIP"] = json!(format!("10.96.0.{}", rv % 250 + 2));
    }
    inner.objects.insert(key.clone(), obj.clone());
    let ev = WatchEvent {
        rv,
        group: key.0,
        resource: key.1,
        namespace: key.2,
        kind,
        object: obj,
    };
    inner.history.push(ev.clone());
    let _ = tx.send(ev);
}

/// The object without metadata and status: what `generation` tracks.
fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn remove(inner: &mut Inner, tx: &broadcast::Sender<WatchEvent>, key: &Key) -> Option<Value> {
    let obj = inner.objects.remove(key)?;
    inner.rv += 1;
    let ev = WatchEvent {
        rv: inner.rv,
        group: key.0.clone(),
        resource: key.1.clone(),
        namespace: key.2.clone(),
        kind: "DELETED",
        object: obj.clone(),
    };
    inner.history.push(ev.clone());
    let _ = tx.send(ev);
    // Garbage collection: dependents whose ownerReferences name the deleted uid.
    let uid = obj["metadata"]["uid"].clone();
    let dependents: Vec<Key> = inner
        .objects
        .iter()
        .filter(|(_, o)| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for d in dependents {
        remove(inner, tx, &d);
    }
    Some(obj)
}

/// Deep merge: objects merge key by key (`null` deletes when `nulls_delete`), anything else
/// replaces.
fn merge(target: &mut Value, patch: &Value, nulls_delete: bool) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() && nulls_delete {
                    t.remove(k);
                } else if let Some(tv) = t.get_mut(k) {
                    merge(tv, v, nulls_delete);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
        .to_string(),
    )
        .into_response()
}

fn ok(v: &Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

struct Target {
    group: String,
    version: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        r => (None, r),
    };
    let (resource, name, status) = match rest {
        [r] => (r.to_string(), None, false),
        [r, n] => (r.to_string(), Some(n.to_string()), false),
        [r, n, "status"] => (r.to_string(), Some(n.to_string()), true),
        _ => return None,
    };
    Some(Target {
        group,
        version,
        resource,
        namespace,
        name,
        status,
    })
}

fn selector_matches(obj: &Value, selector: Option<&String>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => obj["metadata"]["labels"][k.trim_end_matches('=')].as_str() == Some(v),
        None => false,
    })
}

async fn handle(
    State(srv): State<FakeApiServer>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    srv.inner
        .lock()
        .unwrap()
        .requests
        .push(format!("{method} {}", uri.path()));
    let Some(t) = parse(uri.path()) else {
        return status(404, "NotFound", "unknown path");
    };
    let ns = t.namespace.clone().unwrap_or_default();
    let api_version = if t.group.is_empty() {
        t.version.clone()
    } else {
        format!("{}/{}", t.group, t.version)
    };
    let kind = kind_of(&t.resource);

    if t.resource == "tokenreviews" && method == Method::POST {
        let review: Value = serde_json::from_slice(&body).unwrap_or_default();
        let token = review["spec"]["token"].as_str().unwrap_or_default();
        let user = srv.inner.lock().unwrap().tokens.get(token).cloned();
        let mut out = review.clone();
        out["status"] = match user {
            Some(u) => json!({"authenticated": true, "user": {"username": u}}),
            None => json!({"authenticated": false, "error": "invalid token"}),
        };
        return (
            StatusCode::CREATED,
            [("content-type", "application/json")],
            out.to_string(),
        )
            .into_response();
    }

    match (method.clone(), &t.name) {
        (Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            let since: u64 = q
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let selector = q.get("labelSelector").cloned();
            let (backlog, rx) = {
                let inner = srv.inner.lock().unwrap();
                let rx = srv.tx.subscribe();
                let backlog: Vec<WatchEvent> = inner
                    .history
                    .iter()
                    .filter(|e| e.rv > since)
                    .cloned()
                    .collect();
                (backlog, rx)
            };
            let filter = {
                let (group, resource, ns, scoped) = (
                    t.group.clone(),
                    t.resource.clone(),
                    ns.clone(),
                    t.namespace.is_some(),
                );
                move |e: &WatchEvent| {
                    e.group == group
                        && e.resource == resource
                        && (!scoped || e.namespace == ns)
                        && selector_matches(&e.object, selector.as_ref())
                }
            };
            let f2 = filter.clone();
            let backlog = futures::stream::iter(
                backlog
                    .into_iter()
                    .filter(move |e| filter(e))
                    .map(|e| Ok::<_, Infallible>(event_line(&e))),
            );
            let live = futures::stream::unfold((rx, f2), |(mut rx, f)| async move {
                loop {
                    match rx.recv().await {
                        Ok(e) if f(&e) => return Some((Ok(event_line(&e)), (rx, f))),
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return None,
                    }
                }
            });
            use futures::StreamExt;
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(backlog.chain(live)))
                .unwrap()
        }
        (Method::GET, None) => {
            let inner = srv.inner.lock().unwrap();
            let items: Vec<Value> = inner
                .objects
                .iter()
                .filter(|(k, _)| {
                    k.0 == t.group && k.1 == t.resource && (t.namespace.is_none() || k.2 == ns)
                })
                .map(|(_, v)| v.clone())
                .filter(|v| selector_matches(v, q.get("labelSelector")))
                .collect();
            let list_kind = if headers
                .get("accept")
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("as=PartialObjectMetadataList"))
            {
                "PartialObjectMetadataList".to_string()
            } else {
                format!("{kind}List")
            };
            ok(&json!({"apiVersion": api_version, "kind": list_kind,
                       "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items}))
        }
        (Method::GET, Some(name)) => {
            let key = (
                t.group.clone(),
                t.resource.clone(),
                ns.clone(),
                name.clone(),
            );
            match srv.inner.lock().unwrap().objects.get(&key) {
                Some(v) => ok(v),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.resource),
                ),
            }
        }
        (Method::POST, None) => {
            let mut obj: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let name = match obj["metadata"]["name"].as_str() {
                Some(n) => n.to_string(),
                None => {
                    let prefix = obj["metadata"]["generateName"].as_str().unwrap_or("obj-");
                    let n = format!("{prefix}{}", srv.inner.lock().unwrap().rv + 1);
                    obj["metadata"]["name"] = json!(n);
                    n
                }
            };
            obj["apiVersion"] = json!(api_version);
            obj["kind"] = json!(kind);
            if let Some(r) = invalid(&srv, &t, &obj) {
                return r;
            }
            let key = (
                t.group.clone(),
                t.resource.clone(),
                ns.clone(),
                name.clone(),
            );
            let mut inner = srv.inner.lock().unwrap();
            if inner.objects.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", t.resource),
                );
            }
            store(&mut inner, &srv.tx, key.clone(), obj);
            let v = inner.objects[&key].clone();
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                v.to_string(),
            )
                .into_response()
        }
        (Method::PUT, Some(name)) => {
            let mut obj: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let key = (
                t.group.clone(),
                t.resource.clone(),
                ns.clone(),
                name.clone(),
            );
            let inner = srv.inner.lock().unwrap();
            let Some(cur) = inner.objects.get(&key).cloned() else {
                return status(404, "NotFound", "not found");
            };
            if let Some(rv) = obj["metadata"]["resourceVersion"].as_str()
                && cur["metadata"]["resourceVersion"].as_str() != Some(rv)
            {
                return status(409, "Conflict", "the object has been modified");
            }
            if t.status {
                let mut next = cur.clone();
                next["status"] = obj["status"].take();
                obj = next;
            } else {
                obj["status"] = cur["status"].clone();
            }
            drop(inner);
            if let Some(r) = invalid(&srv, &t, &obj) {
                return r;
            }
            let mut inner = srv.inner.lock().unwrap();
            store(&mut inner, &srv.tx, key.clone(), obj);
            ok(&inner.objects[&key])
        }
        (Method::PATCH, Some(name)) => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let patch: Value = if ct.contains("yaml") {
                match yaml_serde::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", &e.to_string()),
                }
            } else {
                match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", &e.to_string()),
                }
            };
            let apply = ct.starts_with("application/apply-patch");
            let key = (
                t.group.clone(),
                t.resource.clone(),
                ns.clone(),
                name.clone(),
            );
            let mut inner = srv.inner.lock().unwrap();
            let cur = match inner.objects.get(&key).cloned() {
                Some(c) => c,
                None if apply && !t.status => {
                    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
                }
                None => {
                    return status(
                        404,
                        "NotFound",
                        &format!("{} \"{name}\" not found", t.resource),
                    );
                }
            };
            let mut next = cur.clone();
            if t.status {
                if let Some(s) = patch.get("status") {
                    if next.get("status").is_none() {
                        next["status"] = json!({});
                    }
                    merge(&mut next["status"], s, !apply);
                }
            } else {
                let mut p = patch.clone();
                if let Some(m) = p.as_object_mut() {
                    m.remove("status");
                }
                merge(&mut next, &p, !apply);
            }
            if next != cur {
                drop(inner);
                if let Some(r) = invalid(&srv, &t, &next) {
                    return r;
                }
                inner = srv.inner.lock().unwrap();
            }
            if next != cur || !inner.objects.contains_key(&key) {
                store(&mut inner, &srv.tx, key.clone(), next);
            }
            ok(&inner.objects[&key])
        }
        (Method::DELETE, Some(name)) => {
            let key = (
                t.group.clone(),
                t.resource.clone(),
                ns.clone(),
                name.clone(),
            );
            let mut inner = srv.inner.lock().unwrap();
            match remove(&mut inner, &srv.tx, &key) {
                Some(v) => ok(&v),
                None => status(404, "NotFound", "not found"),
            }
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "not supported by the fake API server",
        ),
    }
}

/// 422 Invalid when `obj` breaks its CRD schema, as the real API server answers.
fn invalid(srv: &FakeApiServer, t: &Target, obj: &Value) -> Option<Response> {
    let errors = srv
        .schemas
        .validate(&t.group, &t.resource, &t.version, obj)?;
    if errors.is_empty() {
        return None;
    }
    srv.inner.lock().unwrap().rejected.push(errors.join("; "));
    Some(status(422, "Invalid", &errors.join("; ")))
}

fn event_line(e: &WatchEvent) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": e.kind, "object": e.object})).unwrap();
    v.push(b'\n');
    Bytes::from(v)
}

/// Parses a multi-document YAML file into JSON values.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    yaml_serde::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

// Not every test target uses both.
#[allow(unused_imports)]
pub use switchboard_testing::{eventually, eventually_async};

/// The workspace root (for examples/).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// OpenAPI v3 schemas of CRDs, by (group, plural, version): the Gateway API v1.6.1 CRDs in
/// tests/data and the Switchboard CRDs generated from the types.
pub struct Schemas(HashMap<(String, String, String), Value>);

impl Schemas {
    /// Loads the schemas the fake API server enforces.
    pub fn load() -> Self {
        let mut docs = Vec::new();
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gateway-api-v1.6.1");
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                docs.extend(yaml_docs(&std::fs::read_to_string(p).unwrap()));
            }
        }
        docs.extend(yaml_docs(&switchboard_controller::crd::crds_yaml()));
        let mut map = HashMap::new();
        for d in docs
            .iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            let group = d["spec"]["group"].as_str().unwrap().to_string();
            let plural = d["spec"]["names"]["plural"].as_str().unwrap().to_string();
            for v in d["spec"]["versions"].as_array().unwrap() {
                map.insert(
                    (
                        group.clone(),
                        plural.clone(),
                        v["name"].as_str().unwrap().to_string(),
                    ),
                    v["schema"]["openAPIV3Schema"].clone(),
                );
            }
        }
        for k in [
            "gatewayclasses",
            "gateways",
            "httproutes",
            "referencegrants",
        ] {
            assert!(map.keys().any(|(_, p, _)| p == k), "no CRD schema for {k}");
        }
        Schemas(map)
    }

    /// Validates an object; `None` when no schema is known for it.
    pub fn validate(
        &self,
        group: &str,
        plural: &str,
        version: &str,
        obj: &Value,
    ) -> Option<Vec<String>> {
        let schema = self.0.get(&(group.into(), plural.into(), version.into()))?;
        let mut errors = Vec::new();
        // metadata, apiVersion and kind are the API server's business, not the schema's.
        let mut o = obj.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("metadata");
            m.remove("apiVersion");
            m.remove("kind");
        }
        check(schema, &o, "", &mut errors);
        Some(errors)
    }
}

/// The subset of structural-schema validation that catches shape errors: types, unknown
/// fields, required fields, enums, lengths, item counts, bounds, date-time format. CEL rules
/// (`x-kubernetes-validations`) and patterns are not evaluated.
fn check(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if v.is_null() {
        if schema["nullable"] != true && !at.is_empty() {
            errors.push(format!("{at}: null is not allowed"));
        }
        return;
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let type_ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string() || schema["x-kubernetes-int-or-string"] == true,
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{at}: expected {ty}, got {v}"));
        return;
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        errors.push(format!("{at}: {v} is not one of {e:?}"));
    }
    if let Some(s) = v.as_str() {
        let n = s.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|m| n > m) {
            errors.push(format!("{at}: longer than {}", schema["maxLength"]));
        }
        if schema["minLength"].as_u64().is_some_and(|m| n < m) {
            errors.push(format!("{at}: shorter than {}", schema["minLength"]));
        }
        if schema["format"] == "date-time" && humantime::parse_rfc3339_weak(s).is_err() {
            errors.push(format!("{at}: `{s}` is not a date-time"));
        }
    }
    if let Some(n) = v.as_i64() {
        if schema["minimum"].as_i64().is_some_and(|m| n < m) {
            errors.push(format!("{at}: below the minimum {}", schema["minimum"]));
        }
        if schema["maximum"].as_i64().is_some_and(|m| n > m) {
            errors.push(format!("{at}: above the maximum {}", schema["maximum"]));
        }
    }
    if let Some(items) = v.as_array() {
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|m| items.len() as u64 > m)
        {
            errors.push(format!("{at}: more than {} items", schema["maxItems"]));
        }
        if schema["minItems"]
            .as_u64()
            .is_some_and(|m| (items.len() as u64) < m)
        {
            errors.push(format!("{at}: fewer than {} items", schema["minItems"]));
        }
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(o) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            let k = r.as_str().unwrap();
            if !o.contains_key(k) {
                errors.push(format!("{at}.{k}: required"));
            }
        }
        let props = schema["properties"].as_object();
        let extra = &schema["additionalProperties"];
        for (k, val) in o {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(s, val, &format!("{at}.{k}"), errors),
                None if extra.is_object() => check(extra, val, &format!("{at}.{k}"), errors),
                None if schema["x-kubernetes-preserve-unknown-fields"] == true
                    || props.is_none() => {}
                None => errors.push(format!("{at}.{k}: unknown field")),
            }
        }
    }
}

/// The `switchboard` binary, built on demand (it belongs to another package of the workspace).
pub fn switchboard_binary() -> std::path::PathBuf {
    let root = workspace_root();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "switchboard-gateway", "--bin", "switchboard"])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the switchboard binary failed");
    let bin = target.join("debug").join("switchboard");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}
