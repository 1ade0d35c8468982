//! OpenAPI targets (`targets[].openapi`): a REST service described by an OpenAPI 3.0/3.1
//! document, served as an MCP server whose tools are the document's operations (see `tools`
//! for how an operation becomes a tool). The gateway answers MCP itself: `initialize`, `ping`,
//! `tools/list`, `tools/call` (one REST request) and `logging/setLevel`; anything else gets
//! -32601, so such a target has no prompts or resources. One [`OpenApi`] per target serves
//! every session: it has no upstream session, only the shared HTTP client's pooled
//! connections.
//!
//! The document is a file (read and checked when the route is built: a bad one fails the
//! config; a relative path resolves against the config file's folder) or an `http(s)` URL,
//! fetched when the route is built, within the target's `timeout` and [`MAX_SPEC_BYTES`]. A
//! URL that fails is logged as an error and makes the target fail to initialize (-32002);
//! [`RETRY_AFTER`] later the next request that needs it fetches it again, and once loaded it
//! is kept for the backend's life. [`check_document`] lets `switchboard validate` report it
//! beforehand.
//!
//! Every REST request (and the document's, on the service's origin) carries the configured
//! `headers` and the target's upstream credential current at the time of the request
//! (`upstream_auth`, as for http and sse targets; see [`crate::credentials`]).

pub(crate) mod call;
pub(crate) mod tools;

use std::sync::{Arc, PoisonError};

use http::HeaderMap;
use serde_json::{Value, json};

use crate::config::{OpenApiTarget, is_url};
use crate::credentials::UpstreamHeaders;
use crate::error::{Error, Result};
use crate::jsonrpc;
use tools::Catalog;

/// Largest OpenAPI document read.
pub const MAX_SPEC_BYTES: usize = 16 * 1024 * 1024;

/// The document's tools and where to call them.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub catalog: Catalog,
    /// The base URL, without a trailing `/`.
    pub base: String,
}

/// One OpenAPI target, shared by every session of the route.
pub(crate) struct OpenApi {
    target: Arc<str>,
    cfg: OpenApiTarget,
    /// Each request goes out on the calling thread's client.
    client: super::Clients,
    /// The configured `headers` and the upstream credential.
    headers: UpstreamHeaders,
    max_reply: usize,
    timeout: std::time::Duration,
    loaded: tokio::sync::OnceCell<Arc<Loaded>>,
    /// When a URL document last failed to load, and why.
    failed: std::sync::Mutex<Option<(tokio::time::Instant, String)>>,
    /// How long a failure is answered before the document is fetched again.
    retry_after: std::time::Duration,
    /// Whether [`OpenApi::prefetch`] ran.
    prefetched: std::sync::atomic::AtomicBool,
}

/// How long a URL document that failed to load is not fetched again.
pub const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApi")
            .field("target", &self.target)
            .finish()
    }
}

/// Config checks of `targets[].openapi` (`path` is its key path): the base URL, the header
/// names, and a file document (read and turned into tools; a URL is only fetched when the route
/// is built).
pub(crate) fn validate(o: &OpenApiTarget, path: &str) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    if o.spec.trim().is_empty() {
        issues.push((format!("{path}.spec"), "must not be empty".into()));
    } else if is_url(&o.spec) {
        if let Err(e) = url::Url::parse(&o.spec) {
            issues.push((format!("{path}.spec"), format!("invalid URL: {e}")));
        }
    } else {
        let checked = read_file(&o.spec).and_then(|doc| {
            let (catalog, _) = tools::catalog(&doc)?;
            base_url(o, catalog.server.as_deref()).map(|_| ())
        });
        match checked {
            Ok(()) => {}
            Err(e) => issues.push((format!("{path}.spec"), e)),
        }
    }
    if let Some(b) = &o.base_url
        && let Err(e) = check_base(b)
    {
        issues.push((format!("{path}.base_url"), e));
    }
    for name in o.headers.keys() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            issues.push((
                format!("{path}.headers.{name}"),
                "invalid header name".into(),
            ));
        }
    }
    issues
}

/// Whether two URLs have the same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// What a valid file document leaves out (operations skipped, with the reason), keyed by
/// `{path}.spec`; nothing for a URL (not fetched here) or a document `validate` refuses.
pub(crate) fn warnings(o: &OpenApiTarget, path: &str) -> Vec<(String, String)> {
    if is_url(&o.spec) {
        return Vec::new();
    }
    match read_file(&o.spec).and_then(|doc| tools::catalog(&doc)) {
        Ok((_, warnings)) => warnings
            .into_iter()
            .map(|w| (format!("{path}.spec"), w))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn check_base(b: &str) -> std::result::Result<(), String> {
    match url::Url::parse(b) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        Ok(_) => Err("scheme must be http or https".into()),
        Err(e) => Err(format!("invalid URL: {e}")),
    }
}

/// Parse a document: JSON, else YAML.
pub(crate) fn parse(text: &str) -> std::result::Result<Value, String> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"));
    }
    yaml_serde::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
}

fn read_file(path: &str) -> std::result::Result<Value, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    if meta.len() > MAX_SPEC_BYTES as u64 {
        return Err(format!("`{path}` is larger than {MAX_SPEC_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    parse(&text).map_err(|e| format!("`{path}`: {e}"))
}

/// Turn the document into tools and find the base URL; logs what was skipped.
fn load(o: &OpenApiTarget, doc: &Value, target: &str) -> std::result::Result<Loaded, String> {
    let (catalog, warnings) = tools::catalog(doc)?;
    let base = base_url(o, catalog.server.as_deref())?;
    for w in warnings {
        tracing::warn!(target_name = %target, "openapi: {w}");
    }
    Ok(Loaded { catalog, base })
}

/// The base URL: `base_url`, else the document's first server, resolved against the spec's
/// URL when relative.
fn base_url(o: &OpenApiTarget, server: Option<&str>) -> std::result::Result<String, String> {
    let base = match (&o.base_url, server) {
        (Some(b), _) => b.clone(),
        (None, Some(s)) if check_base(s).is_ok() => s.to_string(),
        (None, Some(s)) if is_url(&o.spec) => url::Url::parse(&o.spec)
            .and_then(|u| u.join(s))
            .map(String::from)
            .map_err(|e| format!("servers[0].url `{s}`: {e}"))?,
        (None, _) => {
            return Err(
                "no `base_url` is set and the document has no absolute `servers[0].url`".into(),
            );
        }
    };
    check_base(&base).map_err(|e| format!("base URL `{base}`: {e}"))?;
    Ok(base.trim_end_matches('/').to_string())
}

/// Fetch a URL document within `timeout` and [`MAX_SPEC_BYTES`]; `headers` go with the request
/// only when the document has the service's origin (`base_url`).
async fn fetch(
    client: &reqwest::Client,
    o: &OpenApiTarget,
    headers: HeaderMap,
    timeout: std::time::Duration,
) -> std::result::Result<String, String> {
    let spec = &o.spec;
    let get = async {
        let mut req = client.get(spec);
        // The configured headers and the credential go to the service's own origin only: a
        // document hosted elsewhere does not get them.
        if o.base_url.as_deref().is_some_and(|b| same_origin(b, spec)) {
            req = req.headers(headers);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("fetching {spec}: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("fetching {spec}: HTTP {}", resp.status()));
        }
        let body = call::read_bounded(resp, MAX_SPEC_BYTES)
            .await
            .map_err(|e| format!("fetching {spec}: {e}"))?;
        String::from_utf8(body).map_err(|_| format!("{spec}: not UTF-8 text"))
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| format!("fetching {spec}: timed out after {timeout:?}"))?
}

/// What building the route would find wrong with a URL document, for `switchboard validate`
/// (keyed by `{path}.spec`): that it cannot be fetched or used (the target would fail to
/// initialize), or the operations it leaves out. Nothing for a file (see [`validate`] and
/// [`warnings`]).
pub(crate) async fn check_document(
    o: &OpenApiTarget,
    path: String,
    client: reqwest::Client,
    headers: UpstreamHeaders,
    timeout: std::time::Duration,
) -> Vec<(String, String)> {
    if !is_url(&o.spec) || url::Url::parse(&o.spec).is_err() {
        return Vec::new();
    }
    let key = format!("{path}.spec");
    let checked = async {
        let text = fetch(&client, o, headers.current(), timeout).await?;
        let doc = parse(&text).map_err(|e| format!("{}: {e}", o.spec))?;
        let (catalog, warnings) = tools::catalog(&doc).map_err(|e| format!("{}: {e}", o.spec))?;
        base_url(o, catalog.server.as_deref()).map_err(|e| format!("{}: {e}", o.spec))?;
        Ok::<_, String>(warnings)
    };
    match checked.await {
        Ok(warnings) => warnings.into_iter().map(|w| (key.clone(), w)).collect(),
        Err(e) => vec![(
            key,
            format!(
                "the document cannot be loaded now ({e}); until it can be, the target fails to initialize"
            ),
        )],
    }
}

impl OpenApi {
    /// The target's service. A file document is loaded now (its errors are the config's); a URL
    /// is fetched by [`prefetch`](Self::prefetch) (once the credentials are set) or by the
    /// first request that needs it. `cfg.spec` is a URL, or a path already resolved against
    /// the config file's folder; `headers` are the target's `headers` and credential.
    pub fn new(
        target: Arc<str>,
        cfg: &OpenApiTarget,
        client: super::Clients,
        headers: UpstreamHeaders,
        max_reply: usize,
        timeout: std::time::Duration,
    ) -> Result<Arc<Self>> {
        let this = Arc::new(Self {
            headers,
            target,
            cfg: cfg.clone(),
            client,
            max_reply,
            timeout,
            loaded: tokio::sync::OnceCell::new(),
            failed: std::sync::Mutex::new(None),
            retry_after: RETRY_AFTER,
            prefetched: std::sync::atomic::AtomicBool::new(false),
        });
        if !is_url(&cfg.spec) {
            let loaded = read_file(&cfg.spec)
                .and_then(|doc| load(cfg, &doc, &this.target))
                .map_err(|e| {
                    Error::Config(format!("target `{}`: openapi.spec: {e}", this.target))
                })?;
            let _ = this.loaded.set(Arc::new(loaded));
        }
        Ok(this)
    }

    /// Starts fetching a URL document in the background (once; the backend calls it when the
    /// target's credential is set, so the fetch carries it), so that a document that cannot be
    /// fetched is logged when the route is built rather than at the first `initialize`.
    pub(crate) fn prefetch(self: &Arc<Self>) {
        if self.loaded.initialized()
            || self
                .prefetched
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let t = self.clone();
            rt.spawn(async move {
                let _ = t.loaded().await;
            });
        }
    }

    /// The document's tools. A URL document is fetched once it is needed; a fetch that fails
    /// is logged as an error and its reason answered for [`RETRY_AFTER`], then the next
    /// request fetches again. Concurrent requests share one fetch.
    async fn loaded(&self) -> std::result::Result<Arc<Loaded>, String> {
        if let Some(l) = self.loaded.get() {
            return Ok(l.clone());
        }
        self.loaded
            .get_or_try_init(|| async {
                if let Some(e) = self.recent_failure() {
                    return Err(e);
                }
                let loaded = async {
                    let text = self.fetch().await?;
                    let doc = parse(&text).map_err(|e| format!("{}: {e}", self.cfg.spec))?;
                    load(&self.cfg, &doc, &self.target)
                        .map(Arc::new)
                        .map_err(|e| format!("{}: {e}", self.cfg.spec))
                }
                .await;
                if let Err(e) = &loaded {
                    tracing::error!(
                        target_name = %self.target,
                        spec = %self.cfg.spec,
                        "openapi document failed to load (fetched again after {:?}): {e}",
                        self.retry_after
                    );
                    *self.failed.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some((tokio::time::Instant::now(), e.clone()));
                }
                loaded
            })
            .await
            .cloned()
    }

    /// The reason of a failed fetch less than `retry_after` ago.
    fn recent_failure(&self) -> Option<String> {
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, e) = failed.as_ref()?;
        (at.elapsed() < self.retry_after).then(|| e.clone())
    }

    async fn fetch(&self) -> std::result::Result<String, String> {
        fetch(
            self.client.here(),
            &self.cfg,
            self.headers_now(),
            self.timeout,
        )
        .await
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::Unavailable {
            target: self.target.to_string(),
            reason: reason.into(),
        }
    }

    /// The `initialize` result this target answers with (the document loaded).
    pub async fn initialize(&self, init_params: &Value) -> Result<Value> {
        let loaded = self
            .loaded()
            .await
            .map_err(|e| self.unavailable(format!("openapi document: {e}")))?;
        let version = init_params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(crate::revision::LATEST_VERSION);
        Ok(json!({
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": loaded.catalog.title, "version": loaded.catalog.version},
        }))
    }

    /// The headers of a request sent now: the configured `headers` and the upstream credential
    /// current at the time of the request (the target's own wins over a configured header of
    /// the same name, the route's yields to it, as for http and sse targets).
    pub(crate) fn headers_now(&self) -> HeaderMap {
        self.headers.current()
    }

    /// Answer one JSON-RPC request.
    pub async fn request(&self, msg: Value) -> Result<Value> {
        let id = jsonrpc::id(&msg);
        let loaded = self
            .loaded()
            .await
            .map_err(|e| self.unavailable(format!("openapi document: {e}")))?;
        let result = match jsonrpc::method(&msg) {
            "initialize" => {
                self.initialize(msg.get("params").unwrap_or(&Value::Null))
                    .await?
            }
            "ping" | "logging/setLevel" => json!({}),
            "tools/list" => {
                let tools: Vec<Value> = loaded.catalog.ops.iter().map(|o| o.tool.clone()).collect();
                json!({ "tools": tools })
            }
            "tools/call" => {
                let name = jsonrpc::param_str(&msg, "name").unwrap_or_default();
                let Some(op) = loaded.catalog.ops.iter().find(|o| o.name == name) else {
                    return Ok(json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": crate::error::INVALID_PARAMS,
                        "message": format!("unknown tool `{name}`")}}));
                };
                let empty = serde_json::Map::new();
                let args = crate::jsonrpc::at(&msg, &["params", "arguments"])
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                self.call(&loaded, op, args).await?
            }
            other => {
                return Ok(json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": crate::error::METHOD_NOT_FOUND,
                    "message": format!("method not found: {other}")}}));
            }
        };
        Ok(jsonrpc::result(id, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(spec: &str, base: Option<&str>) -> OpenApiTarget {
        OpenApiTarget {
            spec: spec.into(),
            base_url: base.map(Into::into),
            headers: Default::default(),
        }
    }

    const DOC: &str = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get: {operationId: x}\n";

    #[test]
    fn yaml_and_json_documents_parse() {
        assert_eq!(parse(DOC).unwrap()["openapi"], "3.0.3");
        assert_eq!(parse(r#"{"openapi":"3.1.0"}"#).unwrap()["openapi"], "3.1.0");
        assert!(parse("openapi: [").unwrap_err().starts_with("invalid YAML"));
        assert!(
            parse("{\"openapi\":")
                .unwrap_err()
                .starts_with("invalid JSON")
        );
    }

    #[test]
    fn base_url_from_config_or_servers() {
        let e = base_url(&cfg("f.yaml", None), None).unwrap_err();
        assert!(e.contains("no `base_url`"), "{e}");
        let e = base_url(&cfg("f.yaml", None), Some("/v2")).unwrap_err();
        assert!(e.contains("no `base_url`"), "{e}");
        let b = base_url(&cfg("f.yaml", Some("http://h:1/api/")), Some("/v2")).unwrap();
        assert_eq!(b, "http://h:1/api");
        let b = base_url(&cfg("http://h:2/docs/openapi.yaml", None), Some("/v2")).unwrap();
        assert_eq!(b, "http://h:2/v2");
        let b = base_url(&cfg("f.yaml", None), Some("https://api.example/v3")).unwrap();
        assert_eq!(b, "https://api.example/v3");
    }

    #[test]
    fn validate_reads_file_documents() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, DOC).unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "swagger: '2.0'\n").unwrap();
        let good = good.to_str().unwrap();
        assert!(validate(&cfg(good, Some("http://h")), "o").is_empty());
        let i = validate(&cfg(bad.to_str().unwrap(), Some("ftp://h")), "o");
        assert_eq!(i[0].0, "o.spec");
        assert!(i[0].1.contains("Swagger 2.0"), "{}", i[0].1);
        assert_eq!(
            i[1],
            ("o.base_url".into(), "scheme must be http or https".into())
        );
        let i = validate(&cfg("/nonexistent/x.yaml", Some("http://h")), "o");
        assert!(
            i[0].1.contains("cannot read `/nonexistent/x.yaml`"),
            "{i:?}"
        );
        // A URL is not fetched by `validate`.
        assert!(validate(&cfg("http://127.0.0.1:9/x.yaml", Some("http://h")), "o").is_empty());
        // Relative paths: from the working directory (the crate's, under cargo).
        let pets = cfg("../examples/openapi/pets.yaml", Some("http://h"));
        assert!(validate(&pets, "o").is_empty());
        assert_eq!(
            warnings(&pets, "o"),
            [(
                "o.spec".to_string(),
                "PUT /pets/{petId}/photo: request body is not JSON (image/png) and only JSON \
                 bodies are supported, operation skipped"
                    .to_string()
            )]
        );
    }

    /// A document server: `/ok.yaml`, `/big.yaml` (over the bound), `/slow.yaml` (never
    /// answers), anything else 404.
    async fn doc_server(hits: Arc<std::sync::atomic::AtomicUsize>) -> String {
        doc_server_with(hits, Arc::default()).await
    }

    /// [`doc_server`], also with `/flaky.yaml` (503 on the first request, `flaky` counts them).
    async fn doc_server_with(
        hits: Arc<std::sync::atomic::AtomicUsize>,
        flaky: Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/ok.yaml",
                get(move || async move {
                    hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    DOC
                }),
            )
            .route(
                "/auth.yaml",
                get(|h: http::HeaderMap| async move {
                    match h.get("x-key") {
                        Some(_) => (http::StatusCode::OK, DOC),
                        None => (http::StatusCode::UNAUTHORIZED, ""),
                    }
                }),
            )
            .route(
                "/big.yaml",
                get(|| async { "#".repeat(MAX_SPEC_BYTES + 1) }),
            )
            .route("/slow.yaml", get(std::future::pending::<&'static str>))
            .route(
                "/flaky.yaml",
                get(move || async move {
                    // Unavailable at first, then fine.
                    match flaky.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
                        0 => (http::StatusCode::SERVICE_UNAVAILABLE, ""),
                        _ => (http::StatusCode::OK, DOC),
                    }
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn document_urls_are_fetched_once_within_the_timeout_and_size_bound() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let base = doc_server(hits.clone()).await;
        let load = |path: &str| {
            let o = OpenApi::new(
                "t".into(),
                &cfg(&format!("{base}{path}"), Some("http://h")),
                crate::upstream::Clients::new().unwrap(),
                UpstreamHeaders::default(),
                1024,
                std::time::Duration::from_millis(300),
            )
            .unwrap();
            async move {
                let first = o.loaded().await.map(|l| l.catalog.ops.len());
                assert_eq!(o.loaded().await.map(|l| l.catalog.ops.len()), first);
                first
            }
        };
        assert_eq!(load("/ok.yaml").await, Ok(1));
        // Both waits above shared one request.
        assert_eq!(hits.load(std::sync::atomic::Ordering::Relaxed), 1);
        let e = load("/missing.yaml").await.unwrap_err();
        assert!(e.contains("HTTP 404"), "{e}");
        let e = load("/big.yaml").await.unwrap_err();
        assert!(e.contains("larger than the limit"), "{e}");
        let e = load("/slow.yaml").await.unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        // The configured headers go with the document's request on the service's own origin
        // only.
        for (service, ok) in [(base.as_str(), true), ("http://127.0.0.1:9", false)] {
            let mut c = cfg(&format!("{base}/auth.yaml"), Some(service));
            c.headers.insert("x-key".into(), "k".into());
            let o = OpenApi::new(
                "t".into(),
                &c,
                crate::upstream::Clients::new().unwrap(),
                UpstreamHeaders::new(
                    super::super::http::header_map(&c.headers),
                    Default::default(),
                ),
                1024,
                std::time::Duration::from_secs(5),
            )
            .unwrap();
            assert_eq!(o.loaded().await.is_ok(), ok, "{service}");
        }
    }

    #[tokio::test]
    async fn a_failed_fetch_is_answered_for_a_while_then_fetched_again() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let flaky = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let base = doc_server_with(Arc::default(), flaky.clone()).await;
        let hits = || flaky.load(std::sync::atomic::Ordering::Relaxed);
        let open = |retry_after| {
            let mut o = OpenApi::new(
                "t".into(),
                &cfg(&format!("{base}/flaky.yaml"), Some("http://h")),
                crate::upstream::Clients::new().unwrap(),
                UpstreamHeaders::default(),
                1024,
                std::time::Duration::from_secs(5),
            )
            .unwrap();
            Arc::get_mut(&mut o).unwrap().retry_after = retry_after;
            o
        };
        // Within `retry_after` the failure is the answer, and nothing is fetched again.
        let o = open(std::time::Duration::from_secs(3600));
        let e = o.loaded().await.unwrap_err();
        assert!(e.contains("503"), "{e}");
        assert_eq!(o.loaded().await.unwrap_err(), e);
        assert_eq!(hits(), 1);
        // After it, the next request fetches again, and a loaded document is kept.
        let o = open(std::time::Duration::ZERO);
        assert_eq!(o.loaded().await.map(|l| l.catalog.ops.len()), Ok(1));
        assert_eq!(o.loaded().await.map(|l| l.catalog.ops.len()), Ok(1));
        assert_eq!(hits(), 2);
    }
}
