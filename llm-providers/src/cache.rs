//! Response caching (`llm.cache`): an answer to a chat request (OpenAI chat completions or
//! Anthropic messages) is kept for `ttl` under a key over everything that changes the output,
//! and a later request with the same normalized input gets it without a provider call.
//!
//! * The key ([`ResponseCache::key`]) is the SHA-256 of: the route, the caller's API format,
//!   the caller's scope (its API key name, else its subject, else anonymous; one scope for all
//!   with `share_across_keys: true`), and the request with its keys sorted, the model name
//!   being the pool the request goes to (after routing rules), and the fields that do not
//!   change the output left out (`stream`, `stream_options`, `user`, `metadata`).
//! * What is kept is the complete answer in the caller's format (a streamed answer is
//!   assembled from the events it was sent as, [`Assembler`]), with the provider's identity.
//!   A hit is answered as JSON or, with `stream: true`, replayed as SSE in the caller's format
//!   ([`replay_sse`]). Requests asking for several choices (`n` > 1) are not cached; nor are
//!   errors, or streams that ended with an error or without their final event.
//! * Responses carry `x-switchboard-cache: hit` or `miss`. A hit costs nothing: no provider
//!   call, no token reservation, no usage or cost recorded in the metrics.
//! * Stores ([`CacheStore`]): [`MemoryStore`] (this replica, bounded by entries and bytes,
//!   oldest evicted first) or one the gateway supplies (Redis, shared by a fleet).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use switchboard_core::RequestContext;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::format::ApiFormat;

/// The response header saying whether the cache answered.
pub const CACHE_HEADER: &str = "x-switchboard-cache";

/// Where cached answers live.
pub trait CacheStore: Send + Sync {
    /// The value under `key`, if present and not expired.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Bytes>>;
    /// Keeps `value` under `key` for `ttl`.
    fn put(&self, key: String, value: Bytes, ttl: Duration) -> BoxFuture<'static, ()>;
}

struct Entry {
    value: Bytes,
    expires: Instant,
    seq: u64,
}

#[derive(Default)]
struct Memory {
    map: HashMap<String, Entry>,
    /// Insertion order, for eviction: `(key, seq)`; stale pairs (replaced or expired entries)
    /// are skipped.
    order: VecDeque<(String, u64)>,
    bytes: usize,
    seq: u64,
}

/// A store in this process, holding at most `max_entries` entries and `max_bytes` bytes of
/// values; the oldest entries go first.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Memory>>,
    max_entries: usize,
    max_bytes: usize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store with these bounds.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        MemoryStore {
            inner: Arc::default(),
            max_entries,
            max_bytes,
        }
    }

    /// Entries and bytes held (expired ones included until evicted or read).
    pub fn usage(&self) -> (usize, usize) {
        let m = self.lock();
        (m.map.len(), m.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Memory {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.bytes -= e.value.len();
        }
    }
}

impl CacheStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Bytes>> {
        let mut m = self.lock();
        let found = match m.map.get(key) {
            Some(e) if e.expires > Instant::now() => Some(e.value.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        };
        Box::pin(std::future::ready(found))
    }

    fn put(&self, key: String, value: Bytes, ttl: Duration) -> BoxFuture<'static, ()> {
        if value.len() <= self.max_bytes && self.max_entries > 0 {
            let mut m = self.lock();
            m.remove(&key);
            m.seq += 1;
            let seq = m.seq;
            m.bytes += value.len();
            m.order.push_back((key.clone(), seq));
            m.map.insert(
                key,
                Entry {
                    value,
                    expires: Instant::now() + ttl,
                    seq,
                },
            );
            while m.map.len() > self.max_entries || m.bytes > self.max_bytes {
                let Some((old, seq)) = m.order.pop_front() else {
                    break;
                };
                if m.map.get(&old).is_some_and(|e| e.seq == seq) {
                    m.remove(&old);
                }
            }
            // Stale order entries of replaced keys: drop them once they dominate.
            if m.order.len() > 2 * m.map.len() + 64 {
                let live: Vec<(String, u64)> = std::mem::take(&mut m.order)
                    .into_iter()
                    .filter(|(k, s)| m.map.get(k).is_some_and(|e| e.seq == *s))
                    .collect();
                m.order = live.into();
            }
        }
        Box::pin(std::future::ready(()))
    }
}

/// A cached answer: the complete response body in the caller's format and who served it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cached {
    /// `x-switchboard-provider` of the answer.
    pub provider: String,
    /// `x-switchboard-model` of the answer.
    pub model: String,
    /// The response body (an OpenAI chat completion or an Anthropic message).
    pub body: Value,
}

/// A route's response cache (cheap to clone).
#[derive(Clone)]
pub struct ResponseCache {
    store: Arc<dyn CacheStore>,
    ttl: Duration,
    shared: bool,
    max_entry_bytes: usize,
    metrics: Option<crate::metrics::Metrics>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("ttl", &self.ttl)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// The cache of `cfg` in `store`.
    pub fn new(cfg: &CacheConfig, store: Arc<dyn CacheStore>) -> Self {
        ResponseCache {
            store,
            ttl: cfg.ttl,
            shared: cfg.share_across_keys,
            max_entry_bytes: cfg.max_entry_bytes,
            metrics: None,
        }
    }

    /// Counts each lookup in `switchboard_llm_cache_requests_total{result}`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The key of a request (`request`, the JSON body as the caller sent it or as the typed
    /// request encodes, its model taken as `model`: the pool it goes to), or `None` when the
    /// request is not cacheable (`n` > 1, or not a JSON object).
    ///
    /// The body is read once, borrowed ([`Node`]), and hashed in canonical order: no tree of
    /// owned values is built, nothing is encoded again.
    pub fn key(
        &self,
        ctx: &RequestContext,
        format: ApiFormat,
        request: &[u8],
        model: &str,
    ) -> Option<String> {
        let Ok(Node::Obj(mut fields)) = serde_json::from_slice::<Node<'_>>(request) else {
            return None;
        };
        if fields.iter().any(|(k, v)| {
            k == "n" && matches!(v, Node::Num(n) if n.as_u64().is_some_and(|n| n > 1))
        }) {
            return None;
        }
        fields.retain(|(k, _)| !matches!(&**k, "stream" | "stream_options" | "user" | "metadata"));
        for (k, v) in &mut fields {
            if k == "model" {
                *v = Node::Str(Cow::Borrowed(model));
            }
        }
        let mut h = Sha256::new();
        let scope: [&str; 2] = if self.shared {
            ["*", ""]
        } else if let Some(k) = &ctx.api_key {
            ["key:", k]
        } else if let Some(s) = &ctx.principal {
            ["sub:", s]
        } else {
            ["-", ""]
        };
        for part in ["switchboard-llm-cache-v2", &ctx.route, format_name(format)] {
            h.update(part.len().to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update((scope[0].len() + scope[1].len()).to_le_bytes());
        h.update(scope[0].as_bytes());
        h.update(scope[1].as_bytes());
        canonical(&mut Node::Obj(fields), &mut h);
        Some(hex::encode(h.finalize()))
    }

    /// The cached answer under `key` (a lookup, counted as a hit or a miss).
    pub async fn get(&self, key: &str) -> Option<Cached> {
        let found = self
            .store
            .get(key)
            .await
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if let Some(m) = &self.metrics {
            m.record_cache(found.is_some());
        }
        found
    }

    /// Keeps `answer` under `key` (in the background; answers over `max_entry_bytes` are not
    /// kept).
    pub fn put(&self, key: String, answer: &Cached) {
        let Ok(bytes) = serde_json::to_vec(answer) else {
            return;
        };
        self.keep(key, Bytes::from(bytes));
    }

    /// Keeps `body`, a complete JSON response body as the caller was sent it, under `key`
    /// with who served it: the entry is written as a [`Cached`] around the body's bytes, in
    /// the background, so the answer is neither parsed nor encoded again on its way out.
    pub fn put_body(&self, key: String, provider: &str, model: &str, body: Bytes) {
        let this = self.clone();
        let (provider, model) = (provider.to_owned(), model.to_owned());
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let mut out = Vec::with_capacity(body.len() + provider.len() + model.len() + 40);
            out.extend_from_slice(b"{\"provider\":");
            let named = serde_json::to_writer(&mut out, &provider).and_then(|()| {
                out.extend_from_slice(b",\"model\":");
                serde_json::to_writer(&mut out, &model)
            });
            if named.is_err() {
                return;
            }
            out.extend_from_slice(b",\"body\":");
            out.extend_from_slice(&body);
            out.push(b'}');
            if out.len() <= this.max_entry_bytes {
                this.store.put(key, Bytes::from(out), this.ttl).await;
            }
        });
    }

    fn keep(&self, key: String, bytes: Bytes) {
        if bytes.len() > self.max_entry_bytes {
            return;
        }
        let fut = self.store.put(key, bytes, self.ttl);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(fut);
        }
    }

    /// Largest answer kept.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }
}

fn format_name(f: ApiFormat) -> &'static str {
    match f {
        ApiFormat::Anthropic => "anthropic",
        _ => "openai",
    }
}

/// A JSON value read for the cache key: strings borrowed from the body where they have no
/// escapes, numbers as [`serde_json::Number`] (so `1.0` and `1.00` are one number).
enum Node<'a> {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(Cow<'a, str>),
    Arr(Vec<Node<'a>>),
    Obj(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'de> serde::Deserialize<'de> for Node<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> serde::de::Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::Num(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::Num(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Node<'de>, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Node::Null, Node::Num))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Node::Arr(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(k) = map.next_key::<Node<'de>>()? {
            let Node::Str(k) = k else {
                return Err(serde::de::Error::custom("object key is not a string"));
            };
            fields.push((k, map.next_value()?));
        }
        Ok(Node::Obj(fields))
    }
}

/// Writes into a hash.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Feeds `v` into `h` with object keys sorted (a stable sort: repeated keys keep their
/// order), so key order never changes the key.
fn canonical(v: &mut Node<'_>, h: &mut Sha256) {
    match v {
        Node::Obj(fields) => {
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            h.update(b"{");
            for (k, v) in fields {
                let _ = serde_json::to_writer(HashWriter(h), &**k);
                h.update(b":");
                canonical(v, h);
                h.update(b",");
            }
            h.update(b"}");
        }
        Node::Arr(items) => {
            h.update(b"[");
            for v in items {
                canonical(v, h);
                h.update(b",");
            }
            h.update(b"]");
        }
        Node::Str(s) => {
            let _ = serde_json::to_writer(HashWriter(h), &**s);
        }
        Node::Num(n) => {
            let _ = serde_json::to_writer(HashWriter(h), n);
        }
        Node::Bool(true) => h.update(b"true"),
        Node::Bool(false) => h.update(b"false"),
        Node::Null => h.update(b"null"),
    }
}

/// Assembles the complete answer from the SSE a client was sent (the gateway's own output in
/// the caller's format), to cache a streamed answer.
pub struct Assembler {
    format: ApiFormat,
    buf: BytesMut,
    limit: usize,
    overflow: bool,
}

impl Assembler {
    /// For a stream in `format`, keeping at most `limit` bytes.
    pub fn new(format: ApiFormat, limit: usize) -> Self {
        Assembler {
            format,
            buf: BytesMut::new(),
            limit,
            overflow: false,
        }
    }

    /// Takes the next bytes sent to the client.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.overflow || self.buf.len() + chunk.len() > self.limit {
            self.overflow = true;
            self.buf.clear();
            return;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The complete answer, if the stream ended with its final event and without an error.
    pub fn finish(self) -> Option<Value> {
        if self.overflow {
            return None;
        }
        let text = std::str::from_utf8(&self.buf).ok()?;
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| *d != "[DONE]")
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .ok()?;
        match self.format {
            ApiFormat::Anthropic => assemble_anthropic(&events),
            _ => assemble_openai(&events),
        }
    }
}

fn assemble_openai(chunks: &[Value]) -> Option<Value> {
    let first = chunks.first()?;
    let mut content: Option<String> = None;
    let mut calls: Vec<Map<String, Value>> = Vec::new();
    let mut finish = None;
    let mut usage = None;
    for c in chunks {
        if c.get("error").is_some() {
            return None;
        }
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        let choices = c.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                return None;
            }
            if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
                finish = Some(f.clone());
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                content.get_or_insert_default().push_str(t);
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let i =
                    usize::try_from(tc.get("index").and_then(Value::as_u64).unwrap_or(0)).ok()?;
                while calls.len() <= i {
                    calls.push(Map::new());
                }
                let call = calls.get_mut(i)?;
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    call.insert("id".into(), json!(id));
                }
                let f = tc.get("function");
                if let Some(n) = f.and_then(|f| f.get("name")).and_then(Value::as_str) {
                    call.insert("name".into(), json!(n));
                }
                if let Some(a) = f.and_then(|f| f.get("arguments")).and_then(Value::as_str) {
                    let args = call.entry("arguments").or_insert_with(|| json!(""));
                    if let Value::String(s) = args {
                        s.push_str(a);
                    }
                }
            }
        }
    }
    let finish = finish?;
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        let calls: Vec<Value> = calls
            .into_iter()
            .map(|c| {
                json!({"id": c.get("id"), "type": "function", "function": {
                    "name": c.get("name"), "arguments": c.get("arguments").cloned().unwrap_or(json!(""))}})
            })
            .collect();
        set(&mut message, "tool_calls", Value::Array(calls));
    }
    let mut out = json!({
        "id": first.get("id"),
        "object": "chat.completion",
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    });
    if let Some(u) = usage {
        set(&mut out, "usage", u);
    }
    Some(out)
}

fn assemble_anthropic(events: &[Value]) -> Option<Value> {
    let mut message: Option<Value> = None;
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial_json: HashMap<usize, String> = HashMap::new();
    let mut stopped = false;
    for e in events {
        let index = || {
            e.get("index")
                .and_then(Value::as_u64)
                .and_then(|i| usize::try_from(i).ok())
        };
        match e.get("type").and_then(Value::as_str)? {
            "message_start" => message = e.get("message").cloned(),
            "content_block_start" => {
                let i = index()?;
                if i != blocks.len() {
                    return None;
                }
                blocks.push(e.get("content_block")?.clone());
            }
            "content_block_delta" => {
                let i = index()?;
                let block = blocks.get_mut(i)?;
                let delta = e.get("delta")?;
                let append = |block: &mut Value, field: &str, s: &str| {
                    let cur = block.get(field).and_then(Value::as_str).unwrap_or("");
                    let joined = json!(format!("{cur}{s}"));
                    set(block, field, joined);
                };
                match delta.get("type").and_then(Value::as_str)? {
                    "text_delta" => append(block, "text", delta.get("text")?.as_str()?),
                    "thinking_delta" => {
                        append(block, "thinking", delta.get("thinking")?.as_str()?);
                    }
                    "signature_delta" => {
                        append(block, "signature", delta.get("signature")?.as_str()?);
                    }
                    "input_json_delta" => partial_json
                        .entry(i)
                        .or_default()
                        .push_str(delta.get("partial_json")?.as_str()?),
                    _ => return None,
                }
            }
            "content_block_stop" => {
                let i = index()?;
                if let Some(json) = partial_json.remove(&i) {
                    let input: Value = if json.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&json).ok()?
                    };
                    set(blocks.get_mut(i)?, "input", input);
                }
            }
            "message_delta" => {
                let m = message.as_mut()?;
                if let Some(d) = e.get("delta").and_then(Value::as_object) {
                    for (k, v) in d {
                        set(m, k, v.clone());
                    }
                }
                if let Some(u) = e.get("usage").and_then(Value::as_object) {
                    let usage = m.get_mut("usage")?;
                    for (k, v) in u {
                        set(usage, k, v.clone());
                    }
                }
            }
            "message_stop" => stopped = true,
            "ping" => {}
            _ => return None,
        }
    }
    let mut m = message.filter(|_| stopped)?;
    set(&mut m, "content", Value::Array(blocks));
    Some(m)
}

/// Sets `key` of `v` when `v` is an object (cached data is not trusted to be one).
fn set(v: &mut Value, key: &str, x: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), x);
    }
}

fn sse_data(out: &mut BytesMut, event: Option<&str>, data: &Value) {
    if let Some(e) = event {
        out.extend_from_slice(format!("event: {e}\n").as_bytes());
    }
    out.extend_from_slice(format!("data: {data}\n\n").as_bytes());
}

/// A cached answer (`body`, in `format`) replayed as the SSE stream of the same format: role,
/// content and tool calls, the finish, usage when the OpenAI caller asked for it
/// (`include_usage`), the end.
pub fn replay_sse(format: ApiFormat, body: &Value, include_usage: bool) -> Bytes {
    let mut out = BytesMut::new();
    match format {
        ApiFormat::Anthropic => replay_anthropic(body, &mut out),
        _ => replay_openai(body, include_usage, &mut out),
    }
    out.freeze()
}

fn replay_openai(body: &Value, include_usage: bool, out: &mut BytesMut) {
    let chunk = |choices: Value| {
        json!({"id": body.get("id"), "object": "chat.completion.chunk", "created": body.get("created"),
               "model": body.get("model"), "choices": choices})
    };
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let message = choice.and_then(|c| c.get("message"));
    sse_data(
        out,
        None,
        &chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        ),
    );
    if let Some(text) = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        sse_data(
            out,
            None,
            &chunk(json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}])),
        );
    }
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    for (i, call) in calls.into_iter().flatten().enumerate() {
        let mut c = call.clone();
        set(&mut c, "index", json!(i));
        sse_data(
            out,
            None,
            &chunk(json!([{"index": 0, "delta": {"tool_calls": [c]}, "finish_reason": null}])),
        );
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .cloned()
        .unwrap_or(json!("stop"));
    sse_data(
        out,
        None,
        &chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}])),
    );
    if include_usage && let Some(u) = body.get("usage") {
        let mut c = chunk(json!([]));
        set(&mut c, "usage", u.clone());
        sse_data(out, None, &c);
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
}

fn replay_anthropic(body: &Value, out: &mut BytesMut) {
    let mut start = body.clone();
    set(&mut start, "content", json!([]));
    set(&mut start, "stop_reason", Value::Null);
    set(&mut start, "stop_sequence", Value::Null);
    let output_tokens = body
        .get("usage")
        .and_then(|u| u.get("output_tokens"))
        .cloned()
        .unwrap_or(json!(0));
    if let Some(u) = start.get_mut("usage") {
        set(u, "output_tokens", json!(0));
    }
    sse_data(
        out,
        Some("message_start"),
        &json!({"type": "message_start", "message": start}),
    );
    let blocks = body.get("content").and_then(Value::as_array);
    for (i, block) in blocks.into_iter().flatten().enumerate() {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let (empty, deltas) = match kind {
            "text" => (
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": block.get("text")})],
            ),
            "tool_use" => (
                json!({"type": "tool_use", "id": block.get("id"), "name": block.get("name"), "input": {}}),
                vec![json!({"type": "input_json_delta",
                             "partial_json": block.get("input").map(Value::to_string).unwrap_or_default()})],
            ),
            "thinking" => (
                json!({"type": "thinking", "thinking": ""}),
                vec![
                    json!({"type": "thinking_delta", "thinking": block.get("thinking")}),
                    json!({"type": "signature_delta", "signature": block.get("signature")}),
                ],
            ),
            // Blocks without deltas (redacted thinking) are sent whole.
            _ => (block.clone(), vec![]),
        };
        sse_data(
            out,
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": i, "content_block": empty}),
        );
        for d in deltas {
            sse_data(
                out,
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": i, "delta": d}),
            );
        }
        sse_data(
            out,
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": i}),
        );
    }
    sse_data(
        out,
        Some("message_delta"),
        &json!({"type": "message_delta",
                "delta": {"stop_reason": body.get("stop_reason"), "stop_sequence": body.get("stop_sequence")},
                "usage": {"output_tokens": output_tokens}}),
    );
    sse_data(out, Some("message_stop"), &json!({"type": "message_stop"}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_is_bounded_by_entries_and_bytes() {
        let s = MemoryStore::new(2, 10);
        let ttl = Duration::from_secs(60);
        s.put("a".into(), Bytes::from_static(b"1234"), ttl).await;
        s.put("b".into(), Bytes::from_static(b"1234"), ttl).await;
        s.put("c".into(), Bytes::from_static(b"1234"), ttl).await;
        assert_eq!(s.usage(), (2, 8));
        assert!(s.get("a").await.is_none(), "the oldest went first");
        s.put("d".into(), Bytes::from_static(b"123456789"), ttl)
            .await;
        assert_eq!(s.usage(), (1, 9));
        s.put("big".into(), Bytes::from_static(b"12345678901"), ttl)
            .await;
        assert!(s.get("big").await.is_none(), "over max_bytes: not kept");
        assert!(s.get("d").await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_store_entries_expire() {
        let s = MemoryStore::new(10, 100);
        s.put("a".into(), Bytes::from_static(b"x"), Duration::from_secs(5))
            .await;
        assert!(s.get("a").await.is_some());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(s.get("a").await.is_none());
        assert_eq!(s.usage(), (0, 0));
    }

    #[tokio::test]
    async fn answers_over_max_entry_bytes_are_not_kept() {
        let store = MemoryStore::new(10, 1 << 20);
        let cfg: CacheConfig = serde_json::from_value(json!({"max_entry_bytes": 200})).unwrap();
        let cache = ResponseCache::new(&cfg, Arc::new(store.clone()));
        let answer = |text: &str| Cached {
            provider: "p".into(),
            model: "m".into(),
            body: json!({"text": text}),
        };
        cache.put("small".into(), &answer("short"));
        cache.put("big".into(), &answer(&"x".repeat(300)));
        tokio::task::yield_now().await;
        assert!(cache.get("small").await.is_some());
        assert!(cache.get("big").await.is_none());
        assert_eq!(store.usage().0, 1);
    }

    #[test]
    fn keys_read_the_body_in_canonical_order_and_leave_out_what_does_not_change_the_answer() {
        let cache = ResponseCache::new(
            &serde_json::from_value(json!({})).unwrap(),
            Arc::new(MemoryStore::new(10, 1 << 20)),
        );
        let ctx = RequestContext {
            route: "llm".into(),
            api_key: Some("alice".into()),
            ..RequestContext::default()
        };
        let key =
            |body: &str, model: &str| cache.key(&ctx, ApiFormat::OpenAi, body.as_bytes(), model);
        let base = key(
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#,
            "pool",
        )
        .unwrap();
        // Key order, whitespace, escapes, number spelling, the fields left out, and the model
        // asked for (the pool it goes to counts) do not change the key.
        for same in [
            r#"{ "temperature": 0.50, "messages": [{"content":"hi","role":"user"}], "model": "other" }"#,
            r#"{"model":"gpt","messages":[{"role":"user","content":"h\u0069"}],"temperature":5e-1}"#,
            r#"{"model":"gpt","stream":true,"stream_options":{"include_usage":true},"user":"u","metadata":{"a":"b"},"messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#,
        ] {
            assert_eq!(key(same, "pool").as_deref(), Some(base.as_str()), "{same}");
        }
        // What changes the answer does.
        for other in [
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi!"}],"temperature":0.5}"#,
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"temperature":0.6}"#,
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"temperature":0.5,"seed":1}"#,
            r#"{"model":"gpt","messages":[{"content":"hi","role":"user"},{"role":"user","content":"hi"}],"temperature":0.5}"#,
        ] {
            assert_ne!(
                key(other, "pool").as_deref(),
                Some(base.as_str()),
                "{other}"
            );
        }
        let body =
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#;
        assert_ne!(key(body, "pool-2").unwrap(), base, "another pool");
        let bob = RequestContext {
            api_key: Some("bob".into()),
            ..ctx.clone()
        };
        assert_ne!(
            cache
                .key(&bob, ApiFormat::OpenAi, body.as_bytes(), "pool")
                .unwrap(),
            base,
            "another key"
        );
        assert_ne!(
            cache
                .key(&ctx, ApiFormat::Anthropic, body.as_bytes(), "pool")
                .unwrap(),
            base,
            "another API"
        );
        // Not cached: several choices, or a body that is not an object.
        assert!(key(r#"{"model":"gpt","messages":[],"n":2}"#, "pool").is_none());
        assert!(key(r#"{"model":"gpt","messages":[],"n":1}"#, "pool").is_some());
        assert!(key("[1]", "pool").is_none());
        assert!(key("{", "pool").is_none());
    }

    #[tokio::test]
    async fn a_body_kept_as_bytes_reads_back_as_the_answer() {
        let store = MemoryStore::new(10, 1 << 20);
        let cfg: CacheConfig = serde_json::from_value(json!({"max_entry_bytes": 200})).unwrap();
        let cache = ResponseCache::new(&cfg, Arc::new(store.clone()));
        let body = br#"{"id":"c1","choices":[{"message":{"content":"\"quoted\""}}]}"#;
        cache.put_body("k".into(), "prov \"1\"", "m", Bytes::from_static(body));
        cache.put_body("big".into(), "p", "m", Bytes::from("x".repeat(300)));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let got = cache.get("k").await.expect("kept");
        assert_eq!(got.provider, "prov \"1\"");
        assert_eq!(got.model, "m");
        assert_eq!(got.body, serde_json::from_slice::<Value>(body).unwrap());
        assert!(cache.get("big").await.is_none(), "over max_entry_bytes");
    }

    #[tokio::test]
    async fn each_lookup_is_counted_as_a_hit_or_a_miss() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = crate::metrics::Metrics::new(&mut registry);
        let cfg: CacheConfig = serde_json::from_value(json!({})).unwrap();
        let cache =
            ResponseCache::new(&cfg, Arc::new(MemoryStore::new(10, 1 << 20))).with_metrics(metrics);
        let answer = Cached {
            provider: "p".into(),
            model: "m".into(),
            body: json!({"text": "t"}),
        };
        assert!(cache.get("k").await.is_none());
        cache.put("k".into(), &answer);
        tokio::task::yield_now().await;
        assert!(cache.get("k").await.is_some());
        assert!(cache.get("k").await.is_some());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("llm_cache_requests_total{result=\"hit\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("llm_cache_requests_total{result=\"miss\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn openai_answers_round_trip_through_sse() {
        let body = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
        let sse = replay_sse(ApiFormat::OpenAi, &body, true);
        let mut a = Assembler::new(ApiFormat::OpenAi, 1 << 20);
        a.feed(&sse);
        assert_eq!(a.finish().unwrap(), body);
    }

    #[test]
    fn anthropic_answers_round_trip_through_sse() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": "hi"},
                        {"type": "tool_use", "id": "tu1", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 2}});
        let sse = replay_sse(ApiFormat::Anthropic, &body, false);
        let mut a = Assembler::new(ApiFormat::Anthropic, 1 << 20);
        a.feed(&sse);
        assert_eq!(a.finish().unwrap(), body);
    }

    #[test]
    fn incomplete_or_errored_streams_are_not_assembled() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 2}});
        let sse = replay_sse(ApiFormat::Anthropic, &body, false);
        let cut = &sse[..sse.len() - 40];
        let mut a = Assembler::new(ApiFormat::Anthropic, 1 << 20);
        a.feed(cut);
        assert!(a.finish().is_none());
        let mut a = Assembler::new(ApiFormat::OpenAi, 1 << 20);
        a.feed(b"data: {\"error\": {\"message\": \"x\"}}\n\n");
        assert!(a.finish().is_none());
        let mut a = Assembler::new(ApiFormat::Anthropic, 10);
        a.feed(&sse);
        assert!(a.finish().is_none(), "over the entry limit");
    }
}
