//! The request context: what the gateway's policy stage decided about one request, handed to
//! whichever backend serves it. One type for every backend kind; a backend reads the fields
//! that concern it.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;

/// One thing a request names, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// An MCP tool name (`tools/list`, `tools/call`).
    Tool(&'a str),
    /// An MCP prompt name (`prompts/list`, `prompts/get`, a `ref/prompt` completion).
    Prompt(&'a str),
    /// An MCP resource URI or resource template's `uriTemplate`.
    Resource(&'a str),
    /// An LLM model name as the client sends it.
    Model(&'a str),
}

/// A predicate over the [`Item`]s a caller may list and use (its `authz` rules on
/// `mcp.tool.name`, `mcp.prompt.name`, `mcp.resource.uri`, `llm.model`, an API key's allow
/// lists). What it refuses is left out of every list and answered as unknown or forbidden when
/// used.
#[derive(Clone)]
pub struct Access(pub Arc<dyn Fn(Item<'_>) -> bool + Send + Sync>);

impl Access {
    /// Whether the item may be listed and used.
    pub fn allows(&self, item: Item<'_>) -> bool {
        (self.0)(item)
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Access(..)")
    }
}

/// A token budget for one caller on one route (`policies.rate_limit.tokens`), owned by the
/// gateway's policy stage. A backend that knows token counts reserves an estimate before it
/// sends the request and settles with the real usage afterwards.
#[async_trait::async_trait]
pub trait TokenMeter: Send + Sync {
    /// Reserves `estimate` tokens. Fails with a [`Cause::RateLimited`](crate::Cause) error
    /// (with `retry-after` and `x-ratelimit-*` headers) when the budget is spent.
    async fn reserve(&self, estimate: u64) -> Result<Box<dyn TokenReservation>, Error>;
}

/// Tokens reserved by [`TokenMeter::reserve`].
#[async_trait::async_trait]
pub trait TokenReservation: Send {
    /// Replaces the estimate with the real usage.
    async fn settle(self: Box<Self>, actual: u64);
    /// Tokens reserved.
    fn reserved(&self) -> u64;
}

/// What one LLM request used, priced from the route's price table: what a [`SpendMeter`]
/// records when the request ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spent {
    /// The provider entry that served it.
    pub provider: String,
    /// The provider's model name.
    pub model: String,
    /// All prompt tokens, cache reads and writes included.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Prompt tokens read from a cache.
    pub cache_read: u64,
    /// Prompt tokens written to a cache.
    pub cache_write: u64,
    /// Cost in USD (0 without a price for the model).
    pub cost_usd: f64,
}

/// A caller's spend and budgets (virtual keys, teams), owned by the gateway's policy stage.
/// A backend that knows prices reserves an estimated cost before it sends a request and
/// settles with what the request really used afterwards, like [`TokenMeter`].
#[async_trait::async_trait]
pub trait SpendMeter: Send + Sync {
    /// Reserves `estimate_usd`. Fails with a [`Cause::RateLimited`](crate::Cause) error
    /// (with `x-switchboard-budget-remaining`) when a budget is spent.
    async fn reserve(&self, estimate_usd: f64) -> Result<Box<dyn SpendReservation>, Error>;

    /// Records a request answered by the response cache (`llm.cache`) with the answer of
    /// `provider`'s `model`: no provider call, no cost, no budget spent. The default records
    /// nothing.
    async fn cached(&self, _provider: &str, _model: &str) {}
}

/// A cost reserved by [`SpendMeter::reserve`].
#[async_trait::async_trait]
pub trait SpendReservation: Send {
    /// Replaces the estimate with what the request used; `None` when nothing was observed
    /// (the estimate stands).
    async fn settle(self: Box<Self>, spent: Option<Spent>);
}

/// A credential the gateway sets on requests it sends upstream (`policies.upstream_auth`, or
/// an MCP target's own `upstream_auth`). Backends that build their own upstream requests ask
/// for it once per request, so a rotated secret (a re-read `file`) takes effect without a
/// reload; implementations answer cheaply (a clone of a cached value).
pub trait UpstreamCredential: Send + Sync {
    /// The header to set and its current value (marked sensitive), or `None` when there is
    /// nothing to send (an unreadable file, an unset variable).
    fn header(&self) -> Option<(http::HeaderName, http::HeaderValue)>;
}

/// What the gateway hands a backend with each request.
#[derive(Clone, Default)]
pub struct RequestContext {
    /// Route name.
    pub route: Arc<str>,
    /// The route's `path_prefix` (empty when it has none).
    pub prefix: Arc<str>,
    /// Authenticated subject, if any.
    pub principal: Option<Arc<str>>,
    /// Name of the API key used, if any.
    pub api_key: Option<Arc<str>>,
    /// What the caller may list and use; `None`: everything.
    pub access: Option<Access>,
    /// The caller's token budget on this route, when it has one.
    pub tokens: Option<Arc<dyn TokenMeter>>,
    /// The caller's spend and budgets, for backends that price requests (`llm`).
    pub spend: Option<Arc<dyn SpendMeter>>,
    /// Most messages in one JSON-RPC batch (the listener's `limits.json.max_batch`).
    pub max_batch: Option<usize>,
    /// The request's server span, when tracing is on (`tracing:`); backends open their
    /// client spans under it and propagate it upstream. `None`: tracing off, nothing to do.
    pub trace: Option<crate::trace::Trace>,
    /// The caller's team (an API key's `team`), if any: LLM routing rules (`caller.team`).
    pub team: Option<Arc<str>>,
}

impl RequestContext {
    /// Whether the caller may use `item` (true without an access predicate).
    pub fn allows(&self, item: Item<'_>) -> bool {
        self.access.as_ref().is_none_or(|a| a.allows(item))
    }
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("route", &self.route)
            .field("prefix", &self.prefix)
            .field("principal", &self.principal)
            .field("api_key", &self.api_key)
            .field("access", &self.access)
            .field("tokens", &self.tokens.is_some())
            .field("spend", &self.spend.is_some())
            .field("max_batch", &self.max_batch)
            .field("trace", &self.trace)
            .field("team", &self.team)
            .finish()
    }
}
