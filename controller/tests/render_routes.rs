//! HTTPRoute features rendered into the proxy config (golden): header modifiers, URLRewrite,
//! RequestRedirect, RequestMirror, weighted backendRefs, query and regex matches, timeouts
//! and retries; and the route status reasons the Gateway API specifies for what cannot be
//! rendered. Every rendered config is checked by the proxy's own loader.

use crate::common;

use common::*;
use serde_json::{Value, json};
use switchboard_controller::render::{self, RenderOptions, Rendered, World};

fn world_of(yaml: &str) -> World {
    let mut world = World::default();
    for (i, mut doc) in yaml_docs(yaml).into_iter().enumerate() {
        doc["metadata"]["uid"] = json!(format!("uid-{i}"));
        doc["metadata"]["creationTimestamp"] = json!(format!("2026-01-01T00:00:{:02}Z", i % 60));
        render::add_document(&mut world, doc).unwrap_or_else(|e| panic!("{e}"));
    }
    world
}

fn render_gw(world: &World) -> Rendered {
    let gw = world.gateways.first().unwrap();
    let r = render::render(world, gw, &RenderOptions::default()).unwrap();
    switchboard_gateway::config::load_str(&r.config_yaml, "rendered", &|_| Some("x".into()))
        .unwrap_or_else(|e| panic!("rendered config is invalid:\n{e}\n{}", r.config_yaml));
    r
}

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: switchboard}
spec: {controllerName: switchboard.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: switchboard
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: stable, namespace: ns}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: canary, namespace: ns}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: shadow, namespace: ns}
spec: {ports: [{port: 80}]}
"#;

/// The rendered routes by name, as the config file shows them.
fn routes(r: &Rendered) -> Value {
    let cfg: Value = yaml_serde::from_str(&r.config_yaml).unwrap();
    let mut out = serde_json::Map::new();
    for route in cfg["listeners"][0]["routes"].as_array().unwrap() {
        let mut route = route.clone();
        let name = route["name"].as_str().unwrap().to_string();
        route.as_object_mut().unwrap().remove("name");
        out.insert(name, route);
    }
    Value::Object(out)
}

#[test]
fn filters_splits_matches_timeouts_and_retries_render() {
    let world = world_of(&format!(
        r#"{BASE}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /split}}}}]
      backendRefs: [{{name: stable, port: 80, weight: 90}}, {{name: canary, port: 80, weight: 10}}, {{name: shadow, port: 80, weight: 0}}]
      timeouts: {{request: 5s}}
      retry: {{attempts: 2, codes: [503], backoff: 100ms}}
    - matches: [{{path: {{type: PathPrefix, value: /v1}}}}]
      filters:
        - type: URLRewrite
          urlRewrite: {{hostname: api.internal, path: {{type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}}
        - type: RequestHeaderModifier
          requestHeaderModifier: {{set: [{{name: X-Env, value: prod}}], remove: [Cookie]}}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {{add: [{{name: X-Served, value: sb}}]}}
        - type: RequestMirror
          requestMirror: {{backendRef: {{name: shadow, port: 80}}, fraction: {{numerator: 1, denominator: 4}}}}
      backendRefs: [{{name: stable, port: 80}}]
    - matches: [{{path: {{type: Exact, value: /old}}}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {{scheme: https, hostname: new.example, statusCode: 301, path: {{type: ReplaceFullPath, replaceFullPath: /new}}}}
    - matches:
        - path: {{type: RegularExpression, value: "/users/[0-9]+"}}
          headers: [{{type: RegularExpression, name: X-Client, value: "mobile-.*"}}]
          queryParams: [{{name: tier, value: gold}}, {{type: RegularExpression, name: id, value: "[0-9]+"}}]
      backendRefs: [{{name: canary, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /full}}, method: PUT, headers: [{{name: X-Team, value: ml}}]}}]
      filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /replaced}}}}}}]
      timeouts: {{backendRequest: 2s}}
      backendRefs: [{{name: stable, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /nolimit}}}}]
      timeouts: {{request: 0s}}
      filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: shadow, port: 80}}, percent: 10}}}}]
      backendRefs: [{{name: stable, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /port}}}}]
      filters: [{{type: RequestRedirect, requestRedirect: {{port: 8443}}}}]
"#
    ));
    let r = render_gw(&world);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let conds = &r.routes[0].conditions;
    assert!(conds.iter().all(|c| c.status), "{conds:?}");
    let svc = |n: &str| format!("http://{n}.ns.svc.cluster.local:80");
    assert_eq!(
        routes(&r),
        json!({
            "ns.r.2.0": {
                "match": {"path": "/old"},
                "redirect": {"scheme": "https", "host": "new.example", "path": {"full": "/new"}, "status": 301}
            },
            "ns.r.1.0": {
                "match": {"path_prefix": "/v1"},
                "policies": {"headers": {
                    "request": {"set": {"x-env": "prod"}, "remove": ["cookie"]},
                    "response": {"add": {"x-served": "sb"}}
                }},
                "http": {
                    "url": svc("stable"),
                    "preserve_host": false,
                    "rewrite": {"path": {"prefix": "/v2"}, "host": "api.internal"},
                    "mirror": {"url": svc("shadow"), "percent": 25}
                }
            },
            "ns.r.0.0": {
                "match": {"path_prefix": "/split"},
                "policies": {"timeouts": {"request": "5s"}},
                "http": {
                    "preserve_host": true,
                    "upstreams": [{"url": svc("stable"), "weight": 90}, {"url": svc("canary"), "weight": 10}],
                    "retries": {"attempts": 2, "on": [503], "backoff": "100ms", "max_body_bytes": 65536}
                }
            },
            "ns.r.3.0": {
                "match": {
                    "path_regex": "/users/[0-9]+",
                    "headers_regex": {"x-client": "mobile-.*"},
                    "query": {"tier": "gold"},
                    "query_regex": {"id": "[0-9]+"}
                },
                "http": {"url": svc("canary"), "preserve_host": true}
            },
            "ns.r.5.0": {
                "match": {"path_prefix": "/nolimit"},
                "http": {"url": svc("stable"), "preserve_host": true, "mirror": {"url": svc("shadow"), "percent": 10}}
            },
            "ns.r.6.0": {
                "match": {"path_prefix": "/port"},
                "redirect": {"port": 8443, "status": 302}
            },
            "ns.r.4.0": {
                "match": {"path_prefix": "/full", "method": "PUT", "headers": {"x-team": "ml"}},
                "policies": {"timeouts": {"request": "2s"}},
                "http": {"url": svc("stable"), "preserve_host": true, "rewrite": {"path": {"full": "/replaced"}}}
            }
        })
    );
}

#[test]
fn unsupported_and_unresolved_get_the_specified_reasons() {
    let world = world_of(&format!(
        r#"{BASE}
---
apiVersion: v1
kind: Service
metadata: {{name: stable, namespace: other}}
spec: {{ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: granted, namespace: other}}
spec: {{ports: [{{port: 80}}]}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: to-granted, namespace: other}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ns}}]
  to: [{{group: "", kind: Service, name: granted}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: ext, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /ext}}}}]
      filters: [{{type: ExtensionRef, extensionRef: {{group: x.io, kind: Thing, name: t}}}}]
      backendRefs: [{{name: stable, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /ok}}}}]
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: missing, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /missing}}}}]
      backendRefs: [{{name: nope, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: foreign, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /foreign}}}}]
      backendRefs: [{{name: stable, namespace: other, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: kind, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /kind}}}}]
      backendRefs: [{{group: example.io, kind: Bucket, name: b}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: badre, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: RegularExpression, value: "("}}}}]
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: grant, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /granted}}}}]
      backendRefs: [{{name: granted, namespace: other, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: prefixexact, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: Exact, value: /pe}}}}]
      filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /x}}}}}}]
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: badmod, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /badmod}}}}]
      filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplaceSomething}}}}}}]
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: badmatch, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: Glob, value: "/g*"}}}}]
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: badredirect, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /br}}}}]
      filters: [{{type: RequestRedirect, requestRedirect: {{statusCode: 305}}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: nobackends, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /nb}}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: splitbad, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /sb}}}}]
      backendRefs: [{{name: stable, port: 80, weight: 50}}, {{name: gone, port: 80, weight: 50}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: badmirror, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /bm}}}}]
      filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: gone, port: 80}}}}}}]
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: badretry, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /brt}}}}]
      retry: {{attempts: 2, codes: [200]}}
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: manyretries, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /mr}}}}]
      retry: {{attempts: 11}}
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: badtimeout, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /bt}}}}]
      timeouts: {{request: soon}}
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: negweight, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /nw}}}}]
      backendRefs: [{{name: stable, port: 80, weight: -1}}]
"#
    ));
    let r = render_gw(&world);
    let cond = |route: &str, t: &str| {
        let o = r.routes.iter().find(|o| o.name == route).unwrap();
        let c = o.conditions.iter().find(|c| c.type_ == t).unwrap();
        (c.status, c.reason)
    };
    // Accepted=False, UnsupportedValue: what the proxy cannot do (the other condition stays
    // True).
    for route in [
        "ext",
        "badre",
        "prefixexact",
        "badmod",
        "badmatch",
        "badredirect",
        "badretry",
        "manyretries",
        "badtimeout",
        // The CRD refuses negative weights; one that gets here anyway is refused, not a panic.
        "negweight",
    ] {
        assert_eq!(
            cond(route, "Accepted"),
            (false, "UnsupportedValue"),
            "{route}"
        );
        assert_eq!(
            cond(route, "ResolvedRefs"),
            (true, "ResolvedRefs"),
            "{route}"
        );
    }
    // ResolvedRefs=False with the reason of the reference (Accepted stays True).
    for (route, reason) in [
        ("missing", "BackendNotFound"),
        ("foreign", "RefNotPermitted"),
        ("kind", "InvalidKind"),
        ("nobackends", "BackendNotFound"),
        ("splitbad", "BackendNotFound"),
        ("badmirror", "BackendNotFound"),
    ] {
        assert_eq!(cond(route, "ResolvedRefs"), (false, reason), "{route}");
        assert_eq!(cond(route, "Accepted"), (true, "Accepted"), "{route}");
    }
    // A ReferenceGrant permits the cross-namespace reference.
    assert_eq!(cond("grant", "ResolvedRefs"), (true, "ResolvedRefs"));
    assert_eq!(cond("grant", "Accepted"), (true, "Accepted"));
    // Supported rules are still served; a mirror whose backend does not resolve is left out
    // of a rule that is otherwise served.
    let mut names: Vec<String> = r.config.listeners[0]
        .routes
        .iter()
        .map(|x| x.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["ns.badmirror.0.0", "ns.ext.1.0", "ns.grant.0.0"]);
    let badmirror = r.config.listeners[0]
        .routes
        .iter()
        .find(|x| x.name == "ns.badmirror.0.0")
        .unwrap();
    assert_eq!(badmirror.http.as_ref().unwrap().mirror, None);
    let granted = r.config.listeners[0]
        .routes
        .iter()
        .find(|x| x.name == "ns.grant.0.0")
        .unwrap();
    assert_eq!(
        granted.http.as_ref().unwrap().url,
        "http://granted.other.svc.cluster.local:80"
    );
    // Every failure is also a warning (an Event on the Gateway).
    assert!(
        r.warnings.iter().any(|w| w.contains("ns/badmirror")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn grpc_routes_render_to_h2c_routes_on_service_and_method_paths() {
    let world = world_of(&format!(
        r#"{BASE}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [grpc.example.com]
  rules:
    - matches:
        - method: {{service: helloworld.Greeter, method: SayHello}}
          headers: [{{name: X-Tenant, value: a}}, {{type: RegularExpression, name: x-trace, value: "[0-9a-f]+"}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {{set: [{{name: X-Env, value: prod}}]}}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {{remove: [X-Internal]}}
      backendRefs: [{{name: stable, port: 80, weight: 3}}, {{name: canary, port: 80, weight: 1}}]
    - matches: [{{method: {{service: helloworld.Greeter}}}}]
      backendRefs: [{{name: stable, port: 80}}]
    - matches: [{{method: {{method: Ping}}}}]
      backendRefs: [{{name: canary, port: 80}}]
    - matches: [{{method: {{type: RegularExpression, service: "grpc\\.health\\..*", method: "Check|Watch"}}}}]
      backendRefs: [{{name: canary, port: 80}}]
    - backendRefs: [{{name: shadow, port: 80}}]
"#
    ));
    let r = render_gw(&world);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let o = &r.routes[0];
    assert_eq!((o.kind, o.name.as_str()), ("GRPCRoute", "g"));
    assert!(o.conditions.iter().all(|c| c.status), "{:?}", o.conditions);
    assert_eq!(
        r.listeners[0].attached_routes, 1,
        "the GRPCRoute attaches to the listener"
    );
    let svc = |n: &str| format!("http://{n}.ns.svc.cluster.local:80");
    let host = "grpc.example.com";
    assert_eq!(
        routes(&r),
        json!({
            "ns.g.0.0": {
                "match": {"path": "/helloworld.Greeter/SayHello", "host": host,
                          "headers": {"x-tenant": "a"}, "headers_regex": {"x-trace": "[0-9a-f]+"}},
                "policies": {"headers": {
                    "request": {"set": {"x-env": "prod"}},
                    "response": {"remove": ["x-internal"]}
                }},
                "http": {
                    "preserve_host": true,
                    "http2": true,
                    "upstreams": [{"url": svc("stable"), "weight": 3}, {"url": svc("canary"), "weight": 1}]
                }
            },
            "ns.g.1.0": {
                "match": {"path_prefix": "/helloworld.Greeter", "host": host},
                "http": {"url": svc("stable"), "preserve_host": true, "http2": true}
            },
            "ns.g.2.0": {
                "match": {"path_regex": "/[^/]+/Ping", "host": host},
                "http": {"url": svc("canary"), "preserve_host": true, "http2": true}
            },
            "ns.g.3.0": {
                "match": {"path_regex": "/grpc\\.health\\..*/Check|Watch", "host": host},
                "http": {"url": svc("canary"), "preserve_host": true, "http2": true}
            },
            "ns.g.4.0": {
                "match": {"host": host},
                "http": {"url": svc("shadow"), "preserve_host": true, "http2": true}
            }
        })
    );
}

#[test]
fn grpc_route_problems_get_the_specified_reasons() {
    let world = world_of(&format!(
        r#"{BASE}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: mirror, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{method: {{service: a.A}}}}]
      filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: shadow, port: 80}}}}}}]
      backendRefs: [{{name: stable, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: missing, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{method: {{service: b.B}}}}]
      backendRefs: [{{name: nope, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: foreign, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{method: {{service: c.C}}}}]
      backendRefs: [{{name: stable, namespace: other, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: perbackend, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{method: {{service: d.D}}}}]
      backendRefs:
        - name: stable
          port: 80
          filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: a, value: b}}]}}}}]
"#
    ));
    let r = render_gw(&world);
    let cond = |route: &str, t: &str| {
        let o = r.routes.iter().find(|o| o.name == route).unwrap();
        assert_eq!(o.kind, "GRPCRoute");
        let c = o.conditions.iter().find(|c| c.type_ == t).unwrap();
        (c.status, c.reason)
    };
    assert_eq!(cond("mirror", "Accepted"), (false, "UnsupportedValue"));
    assert_eq!(cond("perbackend", "Accepted"), (false, "UnsupportedValue"));
    assert_eq!(cond("missing", "ResolvedRefs"), (false, "BackendNotFound"));
    assert_eq!(cond("foreign", "ResolvedRefs"), (false, "RefNotPermitted"));
    assert!(r.config.listeners[0].routes.is_empty());
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("GRPCRoute ns/mirror")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn allowed_route_kinds_limit_what_attaches_to_a_listener() {
    let world = world_of(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: switchboard}
spec: {controllerName: switchboard.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: switchboard
  listeners:
    - {name: web, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}]}}
    - {name: grpc, port: 81, protocol: HTTP, allowedRoutes: {kinds: [{group: gateway.networking.k8s.io, kind: GRPCRoute}]}}
    - {name: tcp, port: 82, protocol: HTTP, allowedRoutes: {kinds: [{kind: TCPRoute}]}}
    - {name: all, port: 83, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: ns}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: ns}
spec:
  parentRefs: [{name: gw, sectionName: web}, {name: gw, sectionName: grpc}]
  rules: [{backendRefs: [{name: svc, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h, namespace: ns}
spec:
  parentRefs: [{name: gw, sectionName: web}, {name: gw, sectionName: grpc}]
  rules: [{backendRefs: [{name: svc, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: other}
spec:
  parentRefs: [{name: gw, namespace: ns, sectionName: web}, {name: gw, namespace: ns, sectionName: all}]
  rules: [{backendRefs: [{name: svc, namespace: ns, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-other, namespace: ns}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: other}]
  to: [{group: "", kind: Service}]
"#,
    );
    let r = render_gw(&world);
    let accepted = |kind: &str, section: &str| {
        let o = r
            .routes
            .iter()
            .find(|o| o.kind == kind && o.parent_ref.section_name.as_deref() == Some(section))
            .unwrap();
        let c = o.conditions.iter().find(|c| c.type_ == "Accepted").unwrap();
        (c.status, c.reason)
    };
    assert_eq!(accepted("HTTPRoute", "web"), (true, "Accepted"));
    assert_eq!(accepted("GRPCRoute", "grpc"), (true, "Accepted"));
    assert_eq!(
        accepted("GRPCRoute", "web"),
        (false, "NotAllowedByListeners")
    );
    assert_eq!(
        accepted("HTTPRoute", "grpc"),
        (false, "NotAllowedByListeners")
    );
    // Namespaces: `Same` (the default) refuses a route from another namespace, `All` takes it.
    let from_other = |section: &str| {
        let o = r
            .routes
            .iter()
            .find(|o| {
                o.name == "elsewhere" && o.parent_ref.section_name.as_deref() == Some(section)
            })
            .unwrap();
        let c = o.conditions.iter().find(|c| c.type_ == "Accepted").unwrap();
        (c.status, c.reason)
    };
    assert_eq!(from_other("web"), (false, "NotAllowedByListeners"));
    assert_eq!(from_other("all"), (true, "Accepted"));
    let listener = |n: &str| r.listeners.iter().find(|l| l.name == n).unwrap();
    let kinds = |n: &str| {
        listener(n)
            .supported_kinds
            .iter()
            .map(|k| k.kind.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds("web"), ["HTTPRoute"]);
    assert_eq!(kinds("grpc"), ["GRPCRoute"]);
    assert!(kinds("tcp").is_empty());
    assert_eq!(
        (
            listener("web").attached_routes,
            listener("grpc").attached_routes
        ),
        (1, 1)
    );
    let cond = |n: &str, t: &str| {
        let c = listener(n)
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .unwrap();
        (c.status, c.reason)
    };
    assert_eq!(cond("tcp", "ResolvedRefs"), (false, "InvalidRouteKinds"));
    assert_eq!(cond("tcp", "Programmed"), (false, "Invalid"));
    assert_eq!(cond("web", "Programmed"), (true, "Programmed"));
    // Only the served listeners become proxy listeners, each with its own kind's route.
    let binds: Vec<&str> = r.config.listeners.iter().map(|l| l.bind.as_str()).collect();
    assert_eq!(binds, ["0.0.0.0:80", "0.0.0.0:81", "0.0.0.0:83"]);
    let grpc = &r.config.listeners[1].routes[0];
    assert!(grpc.http.as_ref().unwrap().http2);
    assert!(!r.config.listeners[0].routes[0].http.as_ref().unwrap().http2);
}

#[test]
fn namespace_selectors_decide_by_namespace_labels() {
    let gateway = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: switchboard}
spec: {controllerName: switchboard.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: switchboard
  listeners:
    - name: labels
      port: 80
      protocol: HTTP
      allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}
    - name: expressions
      port: 81
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: Selector
          selector: {matchExpressions: [{key: env, operator: In, values: [prod, staging]}, {key: frozen, operator: DoesNotExist}]}
"#;
    let routes_in = |ns: &str| {
        format!(
            r#"
---
apiVersion: v1
kind: Service
metadata: {{name: svc, namespace: {ns}}}
spec: {{ports: [{{port: 80}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw, namespace: ns, sectionName: labels}}, {{name: gw, namespace: ns, sectionName: expressions}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /{ns}}}}}], backendRefs: [{{name: svc, port: 80}}]}}]
"#
        )
    };
    let namespaces = r#"
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {team: a, env: dev}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b, labels: {team: b, env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-c, labels: {team: a, env: prod, frozen: "yes"}}
"#;
    let all = format!(
        "{gateway}{namespaces}{}{}{}",
        routes_in("team-a"),
        routes_in("team-b"),
        routes_in("team-c")
    );
    let r = render_gw(&world_of(&all));
    let accepted = |ns: &str, section: &str| {
        let o = r
            .routes
            .iter()
            .find(|o| o.namespace == ns && o.parent_ref.section_name.as_deref() == Some(section))
            .unwrap();
        let c = o.conditions.iter().find(|c| c.type_ == "Accepted").unwrap();
        (c.status, c.reason)
    };
    let yes = (true, "Accepted");
    let no = (false, "NotAllowedByListeners");
    assert_eq!(accepted("team-a", "labels"), yes);
    assert_eq!(accepted("team-b", "labels"), no);
    assert_eq!(accepted("team-c", "labels"), yes);
    assert_eq!(accepted("team-a", "expressions"), no);
    assert_eq!(accepted("team-b", "expressions"), yes);
    assert_eq!(accepted("team-c", "expressions"), no);

    // Without namespace labels (the controller may not read namespaces) a selector admits
    // nothing.
    let blind = format!("{gateway}{}", routes_in("team-a"));
    let r = render_gw(&world_of(&blind));
    assert!(
        r.routes
            .iter()
            .all(|o| o.conditions[0].reason == "NotAllowedByListeners"),
        "{:?}",
        r.routes
    );
}
