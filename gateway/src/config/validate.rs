//! Semantic rules that serde cannot express: uniqueness, addresses, reachability of routes,
//! one backend per route, well-formed URLs and header names. Each rule reports a key path and
//! a message; [`super::load_str`] turns paths into positions.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::*;

type Issues = Vec<(String, String)>;

/// Checks every rule and returns all violations.
/// Relative paths read here (`openapi.spec` files) resolve against `base_dir`.
pub(super) fn validate(config: &Config, base_dir: &std::path::Path) -> Issues {
    let mut out = Issues::new();
    let admin = parse_bind(&config.admin.bind);
    if admin.is_none() {
        out.push(("admin.bind".into(), bind_message(&config.admin.bind)));
    }
    // An empty token would be matched by an empty `Authorization: Bearer `.
    if config
        .admin
        .token
        .as_ref()
        .is_some_and(|t| t.trim().is_empty())
    {
        out.push((
            "admin.token".into(),
            "must not be empty (an unset variable expands to nothing; leave the key out instead)"
                .into(),
        ));
    }

    out.extend(config.sessions.validate("sessions"));
    validate_llm_cache_stores(config, &mut out);

    let al = &config.access_log;
    if al.to.trim().is_empty() {
        out.push((
            "access_log.to".into(),
            "must be `stderr`, `off` or a file path".into(),
        ));
    }
    if !(1..=1_048_576).contains(&al.buffer) {
        out.push((
            "access_log.buffer".into(),
            format!("must be 1 to 1048576 lines, not {}", al.buffer),
        ));
    }
    if al.flush_interval.is_zero() {
        out.push((
            "access_log.flush_interval".into(),
            "must be more than 0".into(),
        ));
    }
    if let Some(fields) = &al.fields {
        if fields.is_empty() {
            out.push((
                "access_log.fields".into(),
                "must name at least one field".into(),
            ));
        }
        for (i, f) in fields.iter().enumerate() {
            if fields.iter().take(i).any(|g| g == f) {
                out.push((
                    format!("access_log.fields[{i}]"),
                    format!("`{}` is listed twice", f.name()),
                ));
            }
        }
    }

    if let Some(t) = &config.tracing {
        out.extend(validate_tracing(t));
    }

    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addrs: HashMap<SocketAddr, usize> = HashMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let p = format!("listeners[{i}]");
        if l.name.is_empty() {
            out.push((format!("{p}.name"), "must not be empty".into()));
        } else if let Some(first) = names.insert(&l.name, i) {
            out.push((
                format!("{p}.name"),
                format!(
                    "duplicate listener name `{}` (also listeners[{first}])",
                    l.name
                ),
            ));
        }
        match parse_bind(&l.bind) {
            None => out.push((format!("{p}.bind"), bind_message(&l.bind))),
            Some(addr) if addr.port() != 0 => {
                if let Some(first) = addrs.insert(addr, i) {
                    out.push((
                        format!("{p}.bind"),
                        format!("address {addr} is already used by listeners[{first}]"),
                    ));
                }
                if admin.is_some_and(|a| same_socket(a, addr)) {
                    out.push((
                        format!("{p}.bind"),
                        format!("address {addr} is already used by admin.bind"),
                    ));
                }
            }
            Some(_) => {}
        }
        validate_limits(&l.limits, &format!("{p}.limits"), &mut out);
        validate_trusted_proxies(
            &l.trusted_proxies,
            &format!("{p}.trusted_proxies"),
            &mut out,
        );
        out.extend(l.limits.json.validate(&format!("{p}.limits.json")));
        out.extend(l.paths.validate_routes(&l.routes, &p));
        if let Some(pol) = &l.policies {
            validate_policies(pol, &format!("{p}.policies"), &mut out);
        }
        validate_routes(&l.routes, &p, base_dir, &mut out);
    }
    out
}

fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Parses a `host:port` bind address; `localhost` is accepted as 127.0.0.1.
pub fn parse_bind(bind: &str) -> Option<SocketAddr> {
    if let Ok(a) = bind.parse() {
        return Some(a);
    }
    let port = bind.strip_prefix("localhost:")?.parse::<u16>().ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

fn bind_message(bind: &str) -> String {
    format!("`{bind}` is not a socket address; write host:port, e.g. 127.0.0.1:8080 or [::]:443")
}

fn validate_limits(l: &ListenerLimits, p: &str, out: &mut Issues) {
    if l.max_connections == 0 {
        out.push((format!("{p}.max_connections"), "must be at least 1".into()));
    }
    if l.max_header_bytes < 1024 {
        out.push((
            format!("{p}.max_header_bytes"),
            "must be at least 1024".into(),
        ));
    }
    if l.max_body_bytes == 0 {
        out.push((format!("{p}.max_body_bytes"), "must be at least 1".into()));
    }
    if l.idle_timeout.is_zero() {
        out.push((format!("{p}.idle_timeout"), "must be more than 0s".into()));
    }
    if l.header_read_timeout.is_zero() {
        out.push((
            format!("{p}.header_read_timeout"),
            "must be more than 0s".into(),
        ));
    }
}

fn validate_trusted_proxies(t: &TrustedProxiesConfig, p: &str, out: &mut Issues) {
    for (i, c) in t.cidrs.iter().enumerate() {
        if crate::cidr::Cidr::parse(c).is_none() {
            out.push((
                format!("{p}.cidrs[{i}]"),
                format!("`{c}` is not an address block; write e.g. 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7"),
            ));
        }
    }
}

fn validate_upgrades(upgrades: Option<&[String]>, p: &str, out: &mut Issues) {
    for (i, u) in upgrades.unwrap_or_default().iter().enumerate() {
        let token = !u.is_empty()
            && u.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if u.eq_ignore_ascii_case("h2c") {
            out.push((
                format!("{p}[{i}]"),
                "h2c is never forwarded: its tunnel would carry HTTP/2 requests no route or policy sees".into(),
            ));
        } else if !token {
            out.push((
                format!("{p}[{i}]"),
                format!("`{u}` is not a protocol name like websocket"),
            ));
        }
    }
}

fn validate_routes(routes: &[RouteConfig], lp: &str, base_dir: &std::path::Path, out: &mut Issues) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (j, r) in routes.iter().enumerate() {
        let p = format!("{lp}.routes[{j}]");
        if r.name.is_empty() {
            out.push((format!("{p}.name"), "must not be empty".into()));
        } else if let Some(first) = names.insert(&r.name, j) {
            out.push((
                format!("{p}.name"),
                format!("duplicate route name `{}` (also routes[{first}])", r.name),
            ));
        }
        validate_match(&r.matcher, &format!("{p}.match"), out);
        if let Some((k, earlier)) = routes
            .iter()
            .take(j)
            .enumerate()
            .find(|(_, earlier)| covers(&earlier.matcher, &r.matcher))
        {
            out.push((
                format!("{p}.match"),
                format!(
                    "this route can never match: routes[{k}] (`{}`) comes first and matches every request it would",
                    earlier.name
                ),
            ));
        }
        if let Some(pol) = &r.policies {
            validate_policies(pol, &format!("{p}.policies"), out);
        }
        let backends = backend_kinds(r);
        match backends.as_slice() {
            [] => out.push((
                p.clone(),
                "route has no backend: set exactly one of `mcp`, `llm`, `a2a`, `http`, `redirect`"
                    .into(),
            )),
            [_] => {}
            [_, second, ..] => out.push((
                format!("{p}.{second}"),
                format!(
                    "a route has exactly one backend, but this one sets {}",
                    backends.join(" and ")
                ),
            )),
        }
        if let Some(h) = &r.http {
            validate_http(h, &r.matcher, &format!("{p}.http"), out);
        }
        if let Some(rd) = &r.redirect {
            validate_redirect(rd, &r.matcher, &format!("{p}.redirect"), out);
        }
        if let Some(m) = &r.mcp {
            out.extend(m.validate_in(&format!("{p}.mcp"), base_dir));
            for (k, t) in m.targets.iter().enumerate() {
                if let Some(switchboard_mcp::config::TargetUpstreamAuth::Credential(a)) =
                    &t.upstream_auth
                {
                    let tp = format!("{p}.mcp.targets[{k}].upstream_auth");
                    out.extend(UpstreamAuth::from(a).validate(&tp));
                }
            }
        }
        if let Some(l) = &r.llm {
            out.extend(l.validate(&format!("{p}.llm")));
        }
        if let Some(a) = &r.a2a {
            validate_a2a(a, &format!("{p}.a2a"), out);
        }
    }
}

fn validate_a2a(a: &A2aBackendConfig, p: &str, out: &mut Issues) {
    match (&a.url, a.upstreams.is_empty()) {
        (None, true) => out.push((
            p.into(),
            "set `url` (one agent) or `upstreams` (several replicas)".into(),
        )),
        (Some(_), false) => out.push((
            format!("{p}.upstreams"),
            "set `url` or `upstreams`, not both".into(),
        )),
        _ => {}
    }
    if let Some(u) = &a.url {
        validate_upstream_url(u, &format!("{p}.url"), out);
    }
    for (i, u) in a.upstreams.iter().enumerate() {
        validate_upstream_url(u, &format!("{p}.upstreams[{i}]"), out);
        if a.upstreams.iter().take(i).any(|earlier| earlier == u) {
            out.push((
                format!("{p}.upstreams[{i}]"),
                format!("`{u}` is listed twice"),
            ));
        }
    }
    if let Some(u) = &a.public_url {
        validate_upstream_url(u, &format!("{p}.public_url"), out);
    }
    for (i, u) in a.push_notifications.allowed_urls.iter().enumerate() {
        let key = format!("{p}.push_notifications.allowed_urls[{i}]");
        validate_upstream_url(u, &key, out);
        if url::Url::parse(u).is_ok_and(|u| !u.username().is_empty() || u.password().is_some()) {
            out.push((key, "must not carry credentials".into()));
        }
    }
    for (key, v) in [
        ("max_response_bytes", a.max_response_bytes),
        ("max_card_bytes", a.max_card_bytes),
    ] {
        if v == 0 {
            out.push((format!("{p}.{key}"), "must be at least 1".into()));
        }
    }
    if a.task_ttl.is_zero() {
        out.push((format!("{p}.task_ttl"), "must be more than 0s".into()));
    }
}

/// The backend keys a route sets, in a fixed order.
fn backend_kinds(r: &RouteConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    if r.mcp.is_some() {
        v.push("mcp");
    }
    if r.llm.is_some() {
        v.push("llm");
    }
    if r.http.is_some() {
        v.push("http");
    }
    if r.a2a.is_some() {
        v.push("a2a");
    }
    if r.redirect.is_some() {
        v.push("redirect");
    }
    v
}

/// Largest regular expression source accepted in a match.
pub const MAX_REGEX_LEN: usize = 1024;
/// Compiled-size limit of each regular expression (the `regex` crate's `size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a match regular expression, anchored, within the size limits.
pub fn compile_regex(src: &str) -> Result<regex::Regex, String> {
    if src.len() > MAX_REGEX_LEN {
        return Err(format!(
            "regular expression longer than {MAX_REGEX_LEN} bytes"
        ));
    }
    regex::RegexBuilder::new(&format!("^(?:{src})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("not a valid regular expression: {e}"))
}

fn validate_path_modifier(pm: &PathModifier, m: &RouteMatch, p: &str, out: &mut Issues) {
    let v = match (&pm.full, &pm.prefix) {
        (Some(v), None) | (None, Some(v)) => v,
        _ => {
            out.push((p.into(), "set exactly one of `full`, `prefix`".into()));
            return;
        }
    };
    if !v.starts_with('/') {
        out.push((p.into(), format!("`{v}` must start with `/`")));
    } else if http::uri::PathAndQuery::try_from(v.as_str()).is_err() || v.contains(['?', '#']) {
        out.push((p.into(), format!("`{v}` is not a path")));
    }
    if pm.prefix.is_some() && (m.path.is_some() || m.path_regex.is_some()) {
        out.push((
            format!("{p}.prefix"),
            "`prefix` replaces `match.path_prefix`; this route matches `path` or `path_regex`"
                .into(),
        ));
    }
}

fn validate_http(h: &HttpBackendConfig, m: &RouteMatch, p: &str, out: &mut Issues) {
    match (h.url.is_empty(), h.upstreams.is_empty()) {
        (true, true) => out.push((format!("{p}.url"), "set `url` or `upstreams`".into())),
        (false, false) => out.push((
            format!("{p}.upstreams"),
            "set `url` or `upstreams`, not both".into(),
        )),
        (false, true) => validate_upstream_url(&h.url, &format!("{p}.url"), out),
        (true, false) => {
            for (i, u) in h.upstreams.iter().enumerate() {
                validate_upstream_url(&u.url, &format!("{p}.upstreams[{i}].url"), out);
                if u.weight > 1_000_000 {
                    out.push((
                        format!("{p}.upstreams[{i}].weight"),
                        "at most 1000000".into(),
                    ));
                }
            }
        }
    }
    validate_upgrades(h.upgrades.as_deref(), &format!("{p}.upgrades"), out);
    if let Some(rw) = &h.rewrite {
        if let Some(pm) = &rw.path {
            validate_path_modifier(pm, m, &format!("{p}.rewrite.path"), out);
            let urls = std::iter::once(h.url.as_str())
                .filter(|u| !u.is_empty())
                .chain(h.upstreams.iter().map(|u| u.url.as_str()));
            for u in urls {
                if url::Url::parse(u).is_ok_and(|u| u.path() != "/") {
                    out.push((
                        format!("{p}.rewrite.path"),
                        format!("`{u}` has a path; with `rewrite.path` upstream URLs have none"),
                    ));
                }
            }
        }
        if let Some(host) = &rw.host {
            if host.is_empty() || http::uri::Authority::try_from(host.as_str()).is_err() {
                out.push((
                    format!("{p}.rewrite.host"),
                    format!("`{host}` is not a host name"),
                ));
            }
            if h.preserve_host {
                out.push((
                    format!("{p}.rewrite.host"),
                    "set `rewrite.host` or `preserve_host`, not both".into(),
                ));
            }
        }
    }
    if let Some(mi) = &h.mirror {
        validate_upstream_url(&mi.url, &format!("{p}.mirror.url"), out);
        if mi.percent > 100 {
            out.push((format!("{p}.mirror.percent"), "0 to 100".into()));
        }
    }
    if let Some(r) = &h.retries {
        if !(1..=10).contains(&r.attempts) {
            out.push((format!("{p}.retries.attempts"), "1 to 10".into()));
        }
        if r.on.is_empty() || r.on.iter().any(|s| !(100..=599).contains(s)) {
            out.push((
                format!("{p}.retries.on"),
                "a non-empty list of HTTP statuses (100-599)".into(),
            ));
        }
        if r.backoff > std::time::Duration::from_secs(10) {
            out.push((format!("{p}.retries.backoff"), "at most 10s".into()));
        }
        if r.max_body_bytes > 1 << 20 {
            out.push((
                format!("{p}.retries.max_body_bytes"),
                "at most 1048576".into(),
            ));
        }
    }
}

fn validate_redirect(r: &RedirectConfig, m: &RouteMatch, p: &str, out: &mut Issues) {
    if let Some(s) = &r.scheme
        && !matches!(s.as_str(), "http" | "https")
    {
        out.push((format!("{p}.scheme"), format!("`{s}` is not http or https")));
    }
    if let Some(h) = &r.host
        && (h.is_empty()
            || h.contains([':', '/', '@'])
            || http::uri::Authority::try_from(h.as_str()).is_err())
    {
        out.push((format!("{p}.host"), format!("`{h}` is not a host name")));
    }
    if r.port == Some(0) {
        out.push((format!("{p}.port"), "port 0".into()));
    }
    if let Some(pm) = &r.path {
        validate_path_modifier(pm, m, &format!("{p}.path"), out);
    }
    if !matches!(r.status, 301 | 302 | 303 | 307 | 308) {
        out.push((
            format!("{p}.status"),
            format!("{} is not 301, 302, 303, 307 or 308", r.status),
        ));
    }
}

fn validate_upstream_url(raw: &str, p: &str, out: &mut Issues) {
    match url::Url::parse(raw) {
        Err(e) => out.push((p.into(), format!("`{raw}` is not a URL: {e}"))),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => out.push((
            p.into(),
            format!(
                "scheme `{}` is not supported; use http or https",
                u.scheme()
            ),
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            out.push((p.into(), "the URL has no host".into()))
        }
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            out.push((p.into(), "the URL must not have a query or fragment".into()))
        }
        Ok(_) => {}
    }
}

fn validate_match(m: &RouteMatch, p: &str, out: &mut Issues) {
    if m.path.is_some() && m.path_prefix.is_some() {
        out.push((
            format!("{p}.path"),
            "set `path` or `path_prefix`, not both".into(),
        ));
    }
    for (key, v) in [("path_prefix", &m.path_prefix), ("path", &m.path)] {
        if let Some(v) = v
            && !v.starts_with('/')
        {
            out.push((format!("{p}.{key}"), format!("`{v}` must start with `/`")));
        }
    }
    if let Some(method) = &m.method
        && (method.is_empty() || http::Method::from_bytes(method.as_bytes()).is_err())
    {
        out.push((
            format!("{p}.method"),
            format!("`{method}` is not an HTTP method"),
        ));
    }
    if let Some(host) = &m.host {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        if bare.is_empty()
            || bare.contains('*')
            || !bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':')
        {
            out.push((
                format!("{p}.host"),
                format!("`{host}` is not a host name or `*.domain` pattern"),
            ));
        }
    }
    if let Some(r) = &m.path_regex
        && let Err(e) = compile_regex(r)
    {
        out.push((format!("{p}.path_regex"), e));
    }
    for (key, map) in [
        ("headers_regex", &m.headers_regex),
        ("query_regex", &m.query_regex),
    ] {
        for (name, r) in map {
            if let Err(e) = compile_regex(r) {
                out.push((format!("{p}.{key}.{name}"), e));
            }
        }
    }
    for name in m.headers_regex.keys() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            out.push((
                format!("{p}.headers_regex.{name}"),
                format!("`{name}` is not a header name"),
            ));
        }
    }
    for name in m.query.keys().chain(m.query_regex.keys()) {
        if name.is_empty() {
            out.push((format!("{p}.query"), "empty parameter name".into()));
        }
    }
    for (name, value) in &m.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            out.push((
                format!("{p}.headers.{name}"),
                format!("`{name}` is not a header name"),
            ));
        } else if http::HeaderValue::from_str(value).is_err() {
            out.push((
                format!("{p}.headers.{name}"),
                "not a valid header value".into(),
            ));
        }
    }
}

/// Whether every request `b` matches is also matched by `a`: a route matching `b` after one
/// matching `a` is unreachable (validation refuses it; the controller drops it).
pub fn covers(a: &RouteMatch, b: &RouteMatch) -> bool {
    // Regular expressions and query conditions: `a` covers `b` only when `b` has the very
    // same ones (and the rest covers).
    if a.has_opaque_conditions()
        && (a.path_regex != b.path_regex
            || a.headers_regex != b.headers_regex
            || a.query != b.query
            || a.query_regex != b.query_regex)
    {
        return false;
    }
    let path_covers = match (&a.path_prefix, &a.path, &b.path_prefix, &b.path) {
        (None, None, ..) => true,
        (Some(pa), None, Some(pb), _) => prefix_matches(pa, pb),
        (Some(pa), None, None, Some(xb)) => prefix_matches(pa, xb),
        (None, Some(xa), None, Some(xb)) => xa == xb,
        _ => false,
    };
    let host_covers = match (&a.host, &b.host) {
        (None, _) => true,
        (Some(ha), Some(hb)) => ha.eq_ignore_ascii_case(hb),
        (Some(_), None) => false,
    };
    let method_covers = match (&a.method, &b.method) {
        (None, _) => true,
        (Some(ma), Some(mb)) => ma.eq_ignore_ascii_case(mb),
        (Some(_), None) => false,
    };
    let headers_cover = a.headers.iter().all(|(k, v)| {
        b.headers
            .iter()
            .any(|(kb, vb)| kb.eq_ignore_ascii_case(k) && vb == v)
    });
    path_covers && host_covers && method_covers && headers_cover
}

/// Segment-aware prefix test shared by validation and the router: `/a` matches `/a`, `/a/`,
/// `/a/b`, not `/ab`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The semantic problems of one `policies` block at key path `p`, as `(key path, message)`
/// (what a config load reports for it; the Kubernetes controller checks Policy objects with it).
pub fn policies_issues(pol: &Policies, p: &str) -> Vec<(String, String)> {
    let mut out = Issues::new();
    validate_policies(pol, p, &mut out);
    out
}

fn validate_policies(pol: &Policies, p: &str, out: &mut Issues) {
    if let Some(rl) = &pol.rate_limit {
        out.extend(rl.validate(&format!("{p}.rate_limit")));
    }
    if let Some(h) = &pol.headers {
        for (dir, ops) in [("request", &h.request), ("response", &h.response)] {
            let base = format!("{p}.headers.{dir}");
            for (kind, map) in [("add", &ops.add), ("set", &ops.set)] {
                for (name, value) in map {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        out.push((
                            format!("{base}.{kind}.{name}"),
                            format!("`{name}` is not a header name"),
                        ));
                    } else if http::HeaderValue::from_str(value).is_err() {
                        out.push((
                            format!("{base}.{kind}.{name}"),
                            "not a valid header value".into(),
                        ));
                    }
                }
            }
            for (i, name) in ops.remove.iter().enumerate() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    out.push((
                        format!("{base}.remove[{i}]"),
                        format!("`{name}` is not a header name"),
                    ));
                }
            }
        }
    }
    if let Some(a) = &pol.authn {
        out.extend(a.validate(&format!("{p}.authn")));
    }
    if let Some(a) = &pol.authz {
        out.extend(a.validate(&format!("{p}.authz")));
    }
    if let Some(g) = &pol.guardrails {
        out.extend(g.validate(&format!("{p}.guardrails")));
    }
    if let Some(a) = &pol.upstream_auth {
        out.extend(a.validate(&format!("{p}.upstream_auth")));
    }
    if let Some(t) = &pol.timeouts {
        for (key, d) in [
            ("connect", t.connect),
            ("request", t.request),
            ("idle", t.idle),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                out.push((format!("{p}.timeouts.{key}"), "must be more than 0s".into()));
            }
        }
    }
    if let Some(c) = &pol.cors {
        if c.allow_origins.is_empty() {
            out.push((
                format!("{p}.cors.allow_origins"),
                "list at least one origin (or `*`)".into(),
            ));
        }
        for (i, o) in c.allow_origins.iter().enumerate() {
            let ok = o == "*"
                || url::Url::parse(o).is_ok_and(|u| {
                    u.host_str().is_some()
                        && (u.path() == "/" || u.path().is_empty())
                        && !o.ends_with('/')
                });
            if !ok {
                out.push((
                    format!("{p}.cors.allow_origins[{i}]"),
                    format!("`{o}` is not an origin like https://app.example (no path, no trailing slash) or `*`"),
                ));
            }
        }
        if c.allow_credentials && c.allow_origins.iter().any(|o| o == "*") {
            out.push((
                format!("{p}.cors.allow_credentials"),
                "browsers refuse credentials with a `*` origin; list the origins".into(),
            ));
        }
    }
}

/// `tracing:`: a sampling ratio, an endpoint URL, header names and values, a timeout.
fn validate_tracing(t: &TracingConfig) -> Issues {
    let mut out = Issues::new();
    if let Some(r) = t.sampling
        && !(0.0..=1.0).contains(&r)
    {
        out.push((
            "tracing.sampling".into(),
            format!("must be a ratio from 0 to 1, not {r}"),
        ));
    }
    if let Some(e) = &t.otlp.endpoint {
        match url::Url::parse(e) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => out.push((
                "tracing.otlp.endpoint".into(),
                "must be an http:// or https:// URL with a host".into(),
            )),
        }
    }
    for (k, v) in &t.otlp.headers {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            out.push((
                format!("tracing.otlp.headers.{k}"),
                "is not a valid header name".into(),
            ));
        } else if http::HeaderValue::from_str(v).is_err() {
            // The value is a secret: not echoed.
            out.push((
                format!("tracing.otlp.headers.{k}"),
                "is not a valid header value".into(),
            ));
        }
    }
    if t.otlp.timeout.is_some_and(|d| d.is_zero()) {
        out.push(("tracing.otlp.timeout".into(), "must be more than 0".into()));
    }
    for k in t.resource.keys() {
        if k.trim().is_empty() {
            out.push(("tracing.resource".into(), "keys must not be empty".into()));
        }
    }
    out
}

/// `llm.cache.store: redis` uses the sessions store's Redis: it needs `sessions.store: redis`.
fn validate_llm_cache_stores(config: &Config, out: &mut Issues) {
    if config.sessions.redis.is_some() {
        return;
    }
    for (i, l) in config.listeners.iter().enumerate() {
        for (j, r) in l.routes.iter().enumerate() {
            if r.llm
                .as_ref()
                .and_then(|l| l.cache.as_ref())
                .is_some_and(|c| c.store == switchboard_llm::config::CacheStoreKind::Redis)
            {
                out.push((
                    format!("listeners[{i}].routes[{j}].llm.cache.store"),
                    "`redis` needs `sessions.store: redis` (the cache uses its Redis)".into(),
                ));
            }
        }
    }
}
