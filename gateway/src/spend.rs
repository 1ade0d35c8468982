//! Spend and budgets: what each LLM request cost, accumulated per key, team and model, and
//! the budgets of virtual keys and teams enforced before a request is sent.
//!
//! The `llm` backend prices a request from `llm.prices` (input, output, cache-read and
//! cache-write tokens, USD per million) and talks to the caller's `Meter` through
//! [`switchboard_core::SpendMeter`]: before the provider is called it reserves an estimate
//! (prompt bytes / 4 at the input price plus the capped output allowance at the output price,
//! at the dearest provider of the model's pool) against every budget that applies; when the
//! response or stream ends it replaces the estimate with the real cost and adds the real usage
//! to the spend totals. As with `rate_limit.tokens`, a budget refuses only once it is spent,
//! so it may be exceeded by at most the estimates of the requests admitted last.
//!
//! Amounts are kept as integer nano-dollars. With `sessions.store: redis` budget counters are
//! single Redis integers changed by Lua scripts (check-and-charge is one atomic step, so
//! concurrent requests on any replica never lose an update), and spend totals are one Redis
//! hash per UTC day (`{prefix}spend:YYYY-MM-DD`, kept 400 days); with `memory` both live in
//! the process. A store that cannot be asked lets requests through (logged): budgets fail
//! open, like `rate_limit` with `fail_open: true`.
//!
//! With Redis a request should not wait for a round trip, so each replica holds a *slice* of
//! each busy budget ([`Lease`]): taken by one script that counts it as used in Redis at once
//! (a sixteenth of what is left, at most [`SLICE_MAX_ESTIMATES`] estimates), drawn on by
//! requests locally, refilled in the background at half, and given back when idle for
//! [`SLICE_IDLE`], on shutdown, and near the limit. Near the limit (fewer than
//! [`SLICE_FLOOR_ESTIMATES`] estimates left) there are no slices and every request is checked
//! and charged in Redis as before, so the fleet still overshoots by at most the estimates of
//! the requests admitted last. After the answer, the reconciles (none for a charge drawn from
//! a slice) and the spend record run at once in the settle task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use http::{HeaderMap, HeaderName, HeaderValue};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use redis::Script;
use switchboard_core::{Cause, SpendMeter, SpendReservation, Spent};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

use crate::auth::Principal;
use crate::auth::virtual_keys::{Budget, KeyStore, Period};

/// The response header that says how much of the spent budget is left (USD).
pub static BUDGET_REMAINING: HeaderName = HeaderName::from_static("x-switchboard-budget-remaining");

/// Distinct key (and team) names the metrics label before the rest become `other`.
pub const LABEL_CAP: usize = 100;

/// How long daily spend totals are kept in Redis.
const SPEND_TTL_SECS: u64 = 400 * 86_400;

/// The current period's index and the time until it ends (`None` for `total`).
fn current(p: Period, now_secs: u64) -> (i64, Option<Duration>) {
    {
        let days = (now_secs / 86_400) as i64;
        match p {
            Period::Day => (
                days,
                Some(Duration::from_secs((days as u64 + 1) * 86_400 - now_secs)),
            ),
            Period::Month => {
                let (y, m, _) = civil_from_days(days);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let next = days_from_civil(ny, nm, 1) as u64 * 86_400;
                (
                    y * 12 + i64::from(m) - 1,
                    Some(Duration::from_secs(next - now_secs)),
                )
            }
            Period::Total => (0, None),
        }
    }
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Month => "month",
        Period::Total => "total",
    }
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day count.
pub fn day_string(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day count of `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Nano-dollars of a USD amount (negative and non-finite amounts count as 0).
fn nusd(usd: f64) -> i64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e9).round() as i64
    } else {
        0
    }
}

fn usd(n: i64) -> f64 {
    n as f64 / 1e9
}

/// Usage and cost totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cost in nano-dollars.
    pub cost_nusd: i64,
    /// Requests.
    pub requests: i64,
    /// Prompt tokens (cached included).
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Cache-read prompt tokens.
    pub cache_read: i64,
    /// Cache-write prompt tokens.
    pub cache_write: i64,
    /// Requests answered by the response cache (`llm.cache`), at no cost; counted in
    /// `requests` too.
    pub cached: i64,
}

const FIELDS: [&str; 7] = [
    "cost_nusd",
    "requests",
    "input",
    "output",
    "cache_read",
    "cache_write",
    "cached",
];

impl Totals {
    fn values(&self) -> [i64; 7] {
        [
            self.cost_nusd,
            self.requests,
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.cached,
        ]
    }

    fn add_field(&mut self, field: &str, v: i64) {
        match field {
            "cost_nusd" => self.cost_nusd += v,
            "requests" => self.requests += v,
            "input" => self.input += v,
            "output" => self.output += v,
            "cache_read" => self.cache_read += v,
            "cache_write" => self.cache_write += v,
            "cached" => self.cached += v,
            _ => {}
        }
    }

    /// Adds `o`.
    pub fn add(&mut self, o: &Totals) {
        for (f, v) in FIELDS.iter().zip(o.values()) {
            self.add_field(f, v);
        }
    }

    /// As the admin API shows it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "cost_usd": usd(self.cost_nusd),
            "requests": self.requests,
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
            "cached_requests": self.cached,
        })
    }
}

/// One spend row: who (key, team) spent on what (provider, model).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Row {
    /// API key name (`-` without one).
    pub key: String,
    /// Team (`-` without one).
    pub team: String,
    /// Provider entry.
    pub provider: String,
    /// Provider model.
    pub model: String,
}

const SEP: char = '\u{1f}';

impl Row {
    fn field_prefix(&self) -> String {
        format!(
            "{}{SEP}{}{SEP}{}{SEP}{}{SEP}",
            self.key, self.team, self.provider, self.model
        )
    }

    fn parse(field: &str) -> Option<(Row, &str)> {
        let mut it = field.split(SEP);
        let row = Row {
            key: it.next()?.to_string(),
            team: it.next()?.to_string(),
            provider: it.next()?.to_string(),
            model: it.next()?.to_string(),
        };
        Some((row, it.next()?))
    }
}

/// Filters of a spend query.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// First UTC day (day count), inclusive.
    pub from: i64,
    /// Last UTC day, inclusive.
    pub to: i64,
    /// Only this key name.
    pub key: Option<String>,
    /// Only this team.
    pub team: Option<String>,
    /// Only this provider model.
    pub model: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpendLabels {
    key: String,
    team: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    scope: String,
    name: String,
}

/// Keeps a label's values to [`LABEL_CAP`] distinct ones; the rest become `other`.
#[derive(Default)]
struct LabelCap(Mutex<HashSet<String>>);

impl LabelCap {
    fn label(&self, v: &str) -> String {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(v) {
            return v.to_string();
        }
        if seen.len() < LABEL_CAP {
            seen.insert(v.to_string());
            v.to_string()
        } else {
            "other".into()
        }
    }
}

#[derive(Clone)]
struct SpendMetrics {
    usd: Family<SpendLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    requests: Family<SpendLabels, Counter>,
    used_ratio: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    soft: Family<BudgetLabels, Gauge>,
    keys: Arc<LabelCap>,
    teams: Arc<LabelCap>,
}

impl SpendMetrics {
    fn new(r: &mut prometheus_client::registry::Registry) -> Self {
        let m = SpendMetrics {
            usd: Family::default(),
            requests: Family::default(),
            used_ratio: Family::default(),
            soft: Family::default(),
            keys: Arc::default(),
            teams: Arc::default(),
        };
        r.register(
            "spend_usd",
            "LLM spend in USD from the price table, by API key, team and provider model (at most 100 keys and teams, the rest as `other`)",
            m.usd.clone(),
        );
        r.register(
            "spend_requests",
            "LLM requests counted for spend, by API key, team and provider model",
            m.requests.clone(),
        );
        r.register(
            "budget_used_ratio",
            "Fraction of the current period's budget spent, by scope (key, team) and name",
            m.used_ratio.clone(),
        );
        r.register(
            "budget_soft_limit_reached",
            "1 while a budget's spend is at or over its soft_limit fraction (default 0.8)",
            m.soft.clone(),
        );
        m
    }

    fn budget(&self, scope: &str, name: &str, used: i64, b: &Budget) {
        let name = if scope == "team" {
            self.teams.label(name)
        } else {
            self.keys.label(name)
        };
        let l = BudgetLabels {
            scope: scope.into(),
            name,
        };
        let ratio = usd(used) / b.usd;
        self.used_ratio.get_or_create(&l).set(ratio);
        self.soft
            .get_or_create(&l)
            .set(i64::from(ratio >= b.soft_fraction()));
    }
}

enum Backend {
    Memory {
        rows: Mutex<BTreeMap<(i64, Row), Totals>>,
        counters: DashMap<String, i64>,
    },
    Redis {
        link: switchboard_sessions::RedisLink,
        prefix: String,
        /// This replica's slices, by budget counter.
        leases: DashMap<String, LeaseRef>,
        /// Spend not yet written, by day and row ([`RECORD_EVERY`]).
        unwritten: Mutex<BTreeMap<(i64, Row), Totals>>,
        /// Wakes the writer when `unwritten` gets its first row.
        wake: Arc<tokio::sync::Notify>,
    },
}

struct Shared {
    backend: Backend,
    keys: KeyStore,
    metrics: SpendMetrics,
    /// Stops the loop that gives idle slices back.
    stop: CancellationToken,
    /// Reservations not yet settled: shutdown waits for their settles (bounded).
    unsettled: TaskTracker,
}

/// Spend totals and budget counters (cheap to clone).
#[derive(Clone)]
pub struct Spend {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Spend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spend").finish_non_exhaustive()
    }
}

/// Runs one script on one key with integer arguments.
async fn eval<T: redis::FromRedisValue + Send>(
    link: &switchboard_sessions::RedisLink,
    script: &'static Script,
    key: &str,
    args: &[i64],
) -> switchboard_sessions::Result<T> {
    link.run(|mut conn| {
        let mut inv = script.prepare_invoke();
        inv.key(key);
        for a in args {
            inv.arg(*a);
        }
        async move { inv.invoke_async(&mut conn).await }
    })
    .await
}

// KEYS[1] counter; ARGV estimate, limit, ttl_ms (0: none), give back, mode (1: a request,
// 2: a refill ahead of need). Gives back what the replica returns (its unused slice, or the
// debt of costs above their estimates when negative), then refuses once the budget is spent;
// otherwise charges a slice when at least SLICE_FLOOR_ESTIMATES estimates are left, or
// (mode 1) the estimate alone. Returns {1 charged | 0 refused | 2 no slice (mode 2), used
// after, slice}.
const TAKE_LUA: &str = r"
if ARGV[4] ~= '0' and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], ARGV[4]) end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[2])
if used >= limit then return {0, used, 0} end
local est = tonumber(ARGV[1])
local slice = '0'
if est > 0 and limit - used >= est * 32 then
  slice = string.format('%d', math.min(math.floor((limit - used) / 16), est * 64))
end
local charge = slice
if slice == '0' then
  if ARGV[5] == '2' then return {2, used, 0} end
  charge = ARGV[1]
end
used = redis.call('INCRBY', KEYS[1], charge)
if ARGV[3] ~= '0' and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, used, slice}
";

// KEYS[1] counter; ARGV delta. Adjusts a counter whose period still exists; returns its value.
const ADJUST_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return 0
";

// KEYS[1] the day's hash; ARGV ttl seconds, then for each row its field prefix and the seven
// values of FIELDS.
const RECORD_LUA: &str = r"
local names = {'cost_nusd','requests','input','output','cache_read','cache_write','cached'}
local at = 2
while at + 7 <= #ARGV do
  for i = 1, 7 do
    local v = tonumber(ARGV[at + i])
    if v ~= 0 then redis.call('HINCRBY', KEYS[1], ARGV[at] .. names[i], v) end
  end
  at = at + 8
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
";

/// The scripts, sent by SHA (`EVALSHA`; loaded once per server on `NOSCRIPT`).
static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE_LUA));
static ADJUST: LazyLock<Script> = LazyLock::new(|| Script::new(ADJUST_LUA));
static RECORD: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_LUA));

/// No slices while fewer than this many request estimates are left in a budget: each
/// request is checked and charged in Redis (`32` in `TAKE_LUA`).
pub const SLICE_FLOOR_ESTIMATES: i64 = 32;
/// A slice is this fraction of what is left (`16` in `TAKE_LUA`) ...
pub const SLICE_DIVISOR: i64 = 16;
/// ... and at most this many estimates of the request that takes it (`64` in `TAKE_LUA`).
pub const SLICE_MAX_ESTIMATES: i64 = 64;
/// A slice no request has drawn on for this long goes back to Redis.
pub const SLICE_IDLE: Duration = Duration::from_secs(1);
/// How often idle slices are looked for.
const REAP_EVERY: Duration = Duration::from_millis(250);
/// Spend records are gathered this long in a replica, then written to Redis together (one
/// script per day's hash): one round trip per interval instead of one per request.
pub const RECORD_EVERY: Duration = Duration::from_millis(25);
/// How long shutdown waits for the settles of the last requests.
const SETTLE_WAIT: Duration = Duration::from_secs(2);
/// A lease with nothing held and idle this long is forgotten.
const LEASE_FORGET: Duration = Duration::from_secs(30);

/// This replica's slice of one budget counter (Redis store only).
///
/// `held` is charged in Redis but reserved by no request here: requests draw their estimate
/// from it without a round trip, settled requests put back what they did not use (a cost
/// above its estimate makes it negative: a debt), and it goes back to Redis when idle, on
/// shutdown, and with the next round trip once the budget is near its limit.
#[derive(Debug)]
struct Lease {
    held: i64,
    /// Refill (in the background) once `held` drops below this: half the last slice.
    refill_below: i64,
    /// A refill is running.
    fetching: bool,
    /// Near the limit (no slice granted): every request goes to Redis, carrying `held` back.
    draining: bool,
    /// Given back for good (shutdown, or forgotten): settles go straight to Redis.
    retired: bool,
    last_use: Instant,
}

impl Lease {
    fn new() -> Self {
        Lease {
            held: 0,
            refill_below: 0,
            fetching: false,
            draining: false,
            retired: false,
            last_use: Instant::now(),
        }
    }

    /// Draws `estimate` from the slice; `Some(refill)` when it could.
    fn draw(&mut self, estimate: i64) -> Option<bool> {
        if self.retired || self.draining || self.held < estimate {
            return None;
        }
        self.held -= estimate;
        self.last_use = Instant::now();
        let refill = !self.fetching && self.held < self.refill_below;
        if refill {
            self.fetching = true;
        }
        Some(refill)
    }
}

type LeaseRef = Arc<Mutex<Lease>>;

fn lock(l: &LeaseRef) -> std::sync::MutexGuard<'_, Lease> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a reservation's estimate was charged.
enum Held {
    /// The counter itself (memory store; near the limit; a store that failed).
    Counter,
    /// This replica's slice of the counter.
    Slice(LeaseRef),
}

/// A budget that is spent.
struct Denied {
    used: i64,
    limit: i64,
    reset: Option<Duration>,
}

/// One budget charged by a reservation.
struct Charge {
    scope: &'static str,
    name: String,
    counter: String,
    budget: Budget,
    held: Held,
}

/// One budget a request is to be charged against.
struct Want {
    scope: &'static str,
    name: String,
    budget: Budget,
}

impl Spend {
    /// Spend kept where `keys` keeps keys (this process, or the fleet's Redis). With Redis,
    /// a task gives idle budget slices back until [`Spend::shutdown`].
    pub fn new(keys: KeyStore, registry: &crate::metrics::Metrics) -> Self {
        let backend = match keys.redis_link() {
            Some((link, prefix)) => Backend::Redis {
                link: link.clone(),
                prefix: prefix.to_string(),
                leases: DashMap::new(),
                unwritten: Mutex::default(),
                wake: Arc::default(),
            },
            None => Backend::Memory {
                rows: Mutex::default(),
                counters: DashMap::new(),
            },
        };
        let spend = Spend {
            shared: Arc::new(Shared {
                backend,
                keys,
                metrics: registry.with_registry(SpendMetrics::new),
                stop: CancellationToken::new(),
                unsettled: TaskTracker::new(),
            }),
        };
        if matches!(spend.shared.backend, Backend::Redis { .. })
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(reap(
                Arc::downgrade(&spend.shared),
                spend.shared.stop.clone(),
            ));
            if let Backend::Redis { wake, .. } = &spend.shared.backend {
                rt.spawn(write_spend(
                    Arc::downgrade(&spend.shared),
                    wake.clone(),
                    spend.shared.stop.clone(),
                ));
            }
        }
        spend
    }

    /// Gives every slice this replica holds back to Redis and stops taking new ones
    /// (graceful shutdown, once the last requests are served; their settles go straight to
    /// the counters).
    pub async fn shutdown(&self) {
        self.shared.stop.cancel();
        // The last requests' settles run in tasks of their own: let them land first.
        self.shared.unsettled.close();
        if tokio::time::timeout(SETTLE_WAIT, self.shared.unsettled.wait())
            .await
            .is_err()
        {
            tracing::warn!("spend of requests still unsettled at shutdown is not recorded");
        }
        let Backend::Redis { link, leases, .. } = &self.shared.backend else {
            return;
        };
        self.shared.write_spend().await;
        let mut back = Vec::new();
        for e in leases.iter() {
            let mut l = lock(e.value());
            l.retired = true;
            let held = std::mem::take(&mut l.held);
            if held != 0 {
                back.push((e.key().clone(), held));
            }
        }
        give_back(link, back).await;
    }

    /// The meter for a caller: spend is recorded for callers with an API key or a team (a
    /// config key, a virtual key); budgets apply to virtual keys and teams that have one.
    pub fn meter(&self, p: Option<&Principal>) -> Option<Arc<dyn SpendMeter>> {
        let p = p?;
        if p.api_key.is_none() && p.team.is_none() {
            return None;
        }
        Some(Arc::new(Meter {
            spend: self.clone(),
            key: p.api_key.clone().unwrap_or_else(|| "-".into()),
            team: p.team.clone(),
            virtual_key: p.virtual_key.clone(),
        }))
    }

    /// What the budget counter `scope:name` holds for the current period, in USD. With
    /// Redis this counts the slices replicas hold as used (reserved).
    pub async fn budget_used(&self, scope: &str, name: &str, b: &Budget) -> Option<f64> {
        let (idx, _) = current(b.period, now_secs());
        let counter = self.counter(scope, name, b.period, idx);
        let used = match &self.shared.backend {
            Backend::Memory { counters, .. } => counters.get(&counter).map_or(0, |v| *v),
            Backend::Redis { link, .. } => link
                .run(|mut conn| {
                    let mut cmd = redis::cmd("GET");
                    cmd.arg(&counter);
                    async move { cmd.query_async::<Option<i64>>(&mut conn).await }
                })
                .await
                .ok()?
                .unwrap_or(0),
        };
        Some(usd(used))
    }

    fn counter(&self, scope: &str, name: &str, period: Period, idx: i64) -> String {
        let prefix = match &self.shared.backend {
            Backend::Redis { prefix, .. } => prefix.as_str(),
            Backend::Memory { .. } => "",
        };
        format!(
            "{prefix}budget:{scope}:{name}:{}:{idx}",
            period_name(period)
        )
    }

    /// Charges `estimate` to the budget `w`: from this replica's slice when it holds enough
    /// (no round trip), otherwise in the store.
    async fn charge(&self, w: &Want, estimate: i64) -> Result<Charge, Denied> {
        let (idx, reset) = current(w.budget.period, now_secs());
        let counter = self.counter(w.scope, &w.name, w.budget.period, idx);
        let limit = nusd(w.budget.usd);
        let charge = |held| Charge {
            scope: w.scope,
            name: w.name.clone(),
            counter: counter.clone(),
            budget: w.budget.clone(),
            held,
        };
        let (link, leases) = match &self.shared.backend {
            Backend::Memory { counters, .. } => {
                let used = {
                    let mut used = counters.entry(counter.clone()).or_insert(0);
                    if *used >= limit {
                        Err(*used)
                    } else {
                        *used += estimate;
                        Ok(*used)
                    }
                };
                let u = used.unwrap_or_else(|u| u);
                self.shared.metrics.budget(w.scope, &w.name, u, &w.budget);
                return match used {
                    Ok(_) => Ok(charge(Held::Counter)),
                    Err(used) => Err(Denied { used, limit, reset }),
                };
            }
            Backend::Redis { link, leases, .. } => (link, leases),
        };
        // Not `match leases.get(..)`: its read guard would live across the `entry` below.
        let found = leases.get(&counter).map(|l| l.value().clone());
        let lease = match found {
            Some(l) => l,
            None => leases
                .entry(counter.clone())
                .or_insert_with(|| Arc::new(Mutex::new(Lease::new())))
                .value()
                .clone(),
        };
        let drawn = lock(&lease).draw(estimate);
        if let Some(refill) = drawn {
            if refill {
                tokio::spawn(self.clone().refill(
                    lease.clone(),
                    counter.clone(),
                    estimate,
                    limit,
                    ttl(reset),
                    (w.scope, w.name.clone(), w.budget.clone()),
                ));
            }
            return Ok(charge(Held::Slice(lease)));
        }
        // Not enough held here: one round trip that gives back what is held, and takes a new
        // slice, or (near the limit) charges the estimate alone.
        let give = std::mem::take(&mut lock(&lease).held);
        let res: switchboard_sessions::Result<Vec<i64>> = eval(
            link,
            &TAKE,
            &counter,
            &[estimate, limit, ttl(reset) as i64, give, 1],
        )
        .await;
        let v = match res {
            Ok(v) => v,
            Err(e) => {
                lock(&lease).held += give;
                tracing::warn!(error = %e, "budget store unavailable; allowing the request");
                return Ok(charge(Held::Counter));
            }
        };
        let (status, used, slice) = take_reply(&v);
        self.shared
            .metrics
            .budget(w.scope, &w.name, used, &w.budget);
        let mut l = lock(&lease);
        l.last_use = Instant::now();
        if status == 1 && slice > 0 {
            l.held += slice - estimate;
            l.refill_below = slice / 2;
            l.draining = false;
            drop(l);
            Ok(charge(Held::Slice(lease)))
        } else {
            l.draining = true;
            drop(l);
            if status == 1 {
                Ok(charge(Held::Counter))
            } else {
                Err(Denied { used, limit, reset })
            }
        }
    }

    /// Takes the next slice of a counter before the one held runs out.
    async fn refill(
        self,
        lease: LeaseRef,
        counter: String,
        estimate: i64,
        limit: i64,
        ttl: u64,
        budget: (&'static str, String, Budget),
    ) {
        let Backend::Redis { link, .. } = &self.shared.backend else {
            return;
        };
        let res: switchboard_sessions::Result<Vec<i64>> =
            eval(link, &TAKE, &counter, &[estimate, limit, ttl as i64, 0, 2]).await;
        let v = match res {
            Ok(v) => v,
            Err(e) => {
                lock(&lease).fetching = false;
                tracing::debug!(error = %e, "budget slice not refilled");
                return;
            }
        };
        let (status, used, slice) = take_reply(&v);
        self.shared
            .metrics
            .budget(budget.0, &budget.1, used, &budget.2);
        let back = {
            let mut l = lock(&lease);
            l.fetching = false;
            if status == 1 && slice > 0 {
                if l.retired {
                    slice
                } else {
                    l.held += slice;
                    l.refill_below = slice / 2;
                    0
                }
            } else {
                // Near the limit: the next request carries what is held back to Redis.
                l.draining = true;
                0
            }
        };
        if back != 0 {
            give_back(link, vec![(counter, back)]).await;
        }
    }

    /// Adds `delta` to a counter in the store; `None` when it could not.
    async fn adjust(&self, c: &Charge, delta: i64) {
        let used = match &self.shared.backend {
            Backend::Memory { counters, .. } => match counters.get_mut(&c.counter) {
                Some(mut v) => {
                    *v += delta;
                    *v
                }
                None => return,
            },
            Backend::Redis { link, .. } => {
                match eval::<i64>(link, &ADJUST, &c.counter, &[delta]).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "budget reconcile failed");
                        return;
                    }
                }
            }
        };
        self.shared
            .metrics
            .budget(c.scope, &c.name, used, &c.budget);
    }

    /// Replaces a charge's estimate with its cost: in the slice it came from (no round trip
    /// unless the slice was given back meanwhile), or in the counter.
    async fn reconcile(&self, c: &Charge, estimate: i64, cost: i64) {
        match &c.held {
            Held::Counter => {
                if cost != estimate {
                    self.adjust(c, cost - estimate).await;
                }
            }
            Held::Slice(lease) => {
                let to_store = {
                    let mut l = lock(lease);
                    l.held += estimate - cost;
                    if l.retired {
                        std::mem::take(&mut l.held)
                    } else {
                        0
                    }
                };
                if to_store != 0 {
                    self.adjust(c, -to_store).await;
                }
            }
        }
    }

    async fn record(&self, row: Row, t: Totals) {
        let m = &self.shared.metrics;
        let labels = SpendLabels {
            key: m.keys.label(&row.key),
            team: m.teams.label(&row.team),
            model: row.model.clone(),
        };
        m.usd.get_or_create(&labels).inc_by(usd(t.cost_nusd));
        m.requests.get_or_create(&labels).inc();
        let day = (now_secs() / 86_400) as i64;
        match &self.shared.backend {
            Backend::Memory { rows, .. } => {
                let mut rows = rows.lock().unwrap_or_else(|p| p.into_inner());
                rows.entry((day, row)).or_default().add(&t);
            }
            Backend::Redis {
                unwritten, wake, ..
            } => {
                // Written with the others of this interval ([`RECORD_EVERY`]).
                let mut rows = unwritten.lock().unwrap_or_else(|p| p.into_inner());
                let first = rows.is_empty();
                rows.entry((day, row)).or_default().add(&t);
                drop(rows);
                if first {
                    wake.notify_one();
                }
            }
        }
    }

    /// Spend matching `q`, per row.
    pub async fn query(&self, q: &Query) -> Result<Vec<(Row, Totals)>, String> {
        let keep = |r: &Row| {
            q.key.as_ref().is_none_or(|k| &r.key == k)
                && q.team.as_ref().is_none_or(|t| &r.team == t)
                && q.model.as_ref().is_none_or(|m| &r.model == m)
        };
        let mut out: BTreeMap<Row, Totals> = BTreeMap::new();
        match &self.shared.backend {
            Backend::Memory { rows, .. } => {
                let rows = rows.lock().unwrap_or_else(|p| p.into_inner());
                for ((day, row), t) in rows.iter() {
                    if (q.from..=q.to).contains(day) && keep(row) {
                        out.entry(row.clone()).or_default().add(t);
                    }
                }
            }
            Backend::Redis { link, prefix, .. } => {
                // This replica's own latest spend first.
                self.shared.write_spend().await;
                for day in q.from..=q.to {
                    let k = format!("{prefix}spend:{}", day_string(day));
                    let raw: HashMap<String, i64> = link
                        .run(|mut conn| {
                            let mut cmd = redis::cmd("HGETALL");
                            cmd.arg(&k);
                            async move { cmd.query_async(&mut conn).await }
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    for (field, v) in raw {
                        if let Some((row, f)) = Row::parse(&field)
                            && keep(&row)
                        {
                            out.entry(row).or_default().add_field(f, v);
                        }
                    }
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The key store budgets are read from.
    pub fn keys(&self) -> &KeyStore {
        &self.shared.keys
    }
}

/// One caller's spend and budgets on one request ([`Spend::meter`]).
struct Meter {
    spend: Spend,
    key: Arc<str>,
    team: Option<Arc<str>>,
    virtual_key: Option<Arc<crate::auth::virtual_keys::VirtualKey>>,
}

#[async_trait::async_trait]
impl SpendMeter for Meter {
    async fn reserve(
        &self,
        estimate_usd: f64,
    ) -> switchboard_core::Result<Box<dyn SpendReservation>> {
        let estimate = nusd(estimate_usd);
        let mut wants = Vec::with_capacity(2);
        if let Some(vk) = &self.virtual_key
            && let Some(b) = &vk.budget
        {
            wants.push(Want {
                scope: "key",
                name: vk.id.to_string(),
                budget: b.clone(),
            });
        }
        if let Some(team) = &self.team
            && let Some(b) = self.spend.shared.keys.team_budget(team).await
        {
            wants.push(Want {
                scope: "team",
                name: team.to_string(),
                budget: b,
            });
        }
        // The key's and the team's counters at once: when both need the store, their round
        // trips overlap.
        let results =
            futures::future::join_all(wants.iter().map(|w| self.spend.charge(w, estimate))).await;
        let mut charges = Vec::with_capacity(results.len());
        let mut denied = None;
        for (w, r) in wants.iter().zip(results) {
            match r {
                Ok(c) => charges.push(c),
                Err(d) if denied.is_none() => denied = Some((w, d)),
                Err(_) => {}
            }
        }
        if let Some((w, d)) = denied {
            futures::future::join_all(charges.iter().map(|c| self.spend.reconcile(c, estimate, 0)))
                .await;
            let name: &str = if w.scope == "key" { &self.key } else { &w.name };
            return Err(refusal(w.scope, name, &w.budget, &d));
        }
        Ok(Box::new(Reservation {
            spend: self.spend.clone(),
            key: self.key.clone(),
            team: self.team.clone(),
            estimate,
            charges,
            _unsettled: self.spend.shared.unsettled.token(),
        }))
    }

    async fn cached(&self, provider: &str, model: &str) {
        let row = Row {
            key: self.key.to_string(),
            team: self.team.as_deref().unwrap_or("-").to_string(),
            provider: provider.to_string(),
            model: model.to_string(),
        };
        let t = Totals {
            requests: 1,
            cached: 1,
            ..Totals::default()
        };
        self.spend.record(row, t).await;
    }
}

fn refusal(scope: &str, name: &str, b: &Budget, d: &Denied) -> switchboard_core::Error {
    let mut h = HeaderMap::new();
    let remaining = usd((d.limit - d.used).max(0));
    if let Ok(v) = HeaderValue::try_from(format!("{remaining:.6}")) {
        h.insert(BUDGET_REMAINING.clone(), v);
    }
    let resets = match d.reset {
        Some(r) => {
            if let Ok(v) = HeaderValue::try_from(r.as_secs().max(1).to_string()) {
                h.insert(http::header::RETRY_AFTER, v);
            }
            format!("; it resets in {}s", r.as_secs().max(1))
        }
        None => "; it does not reset (period: total)".into(),
    };
    switchboard_core::Error::new(
        Cause::RateLimited,
        format!(
            "budget exceeded: {scope} `{name}` has spent {:.6} (requests in flight counted at their estimate) of its {:.6} USD per {}{resets}",
            usd(d.used),
            b.usd,
            period_name(b.period)
        ),
    )
    .with_headers(h)
}

struct Reservation {
    spend: Spend,
    key: Arc<str>,
    team: Option<Arc<str>>,
    estimate: i64,
    charges: Vec<Charge>,
    /// Held until settled (or dropped).
    _unsettled: TaskTrackerToken,
}

#[async_trait::async_trait]
impl SpendReservation for Reservation {
    async fn settle(self: Box<Self>, spent: Option<Spent>) {
        // Without observed usage the estimate stands: under-charging is the worse error.
        let cost = spent.as_ref().map_or(self.estimate, |s| nusd(s.cost_usd));
        let s = spent.unwrap_or_default();
        let row = Row {
            key: self.key.to_string(),
            team: self.team.as_deref().unwrap_or("-").to_string(),
            provider: if s.provider.is_empty() {
                "-".into()
            } else {
                s.provider.clone()
            },
            model: if s.model.is_empty() {
                "-".into()
            } else {
                s.model.clone()
            },
        };
        let t = Totals {
            cost_nusd: cost,
            requests: 1,
            input: s.input as i64,
            output: s.output as i64,
            cache_read: s.cache_read as i64,
            cache_write: s.cache_write as i64,
            cached: 0,
        };
        // The reconciles (none for a charge drawn from a slice) and the record overlap.
        let reconciles = futures::future::join_all(
            self.charges
                .iter()
                .map(|c| self.spend.reconcile(c, self.estimate, cost)),
        );
        futures::join!(reconciles, self.spend.record(row, t));
    }
}

/// `TAKE_LUA`'s reply: status (1: taken), what the counter holds, the slice taken (0: none).
fn take_reply(v: &[i64]) -> (i64, i64, i64) {
    let at = |i: usize| v.get(i).copied().unwrap_or_default();
    (at(0), at(1), at(2))
}

/// The TTL of a budget counter: its period and a day more (0: none).
fn ttl(reset: Option<Duration>) -> u64 {
    reset.map_or(0, |r| r.as_millis() as u64 + 86_400_000)
}

/// Gives amounts held back to their counters (a negative amount is a debt paid).
async fn give_back(link: &switchboard_sessions::RedisLink, back: Vec<(String, i64)>) {
    let calls = back.iter().map(|(counter, held)| async move {
        if let Err(e) = eval::<i64>(link, &ADJUST, counter, &[-held]).await {
            tracing::warn!(error = %e, counter, "budget slice not given back: it counts as used until the period resets");
        }
    });
    futures::future::join_all(calls).await;
}

/// Gives back the slices no request has drawn on for [`SLICE_IDLE`], and forgets leases idle
/// for long, until `stop`.
impl Drop for Shared {
    fn drop(&mut self) {
        // Ends the slice and spend-writing tasks of a gateway that was not shut down.
        self.stop.cancel();
    }
}

impl Shared {
    /// Writes the spend gathered since the last write to Redis: per day, one script with
    /// every row. A write that fails is lost with a warning (as a single record was).
    async fn write_spend(&self) {
        let Backend::Redis {
            link,
            prefix,
            unwritten,
            ..
        } = &self.backend
        else {
            return;
        };
        let rows = std::mem::take(&mut *unwritten.lock().unwrap_or_else(|p| p.into_inner()));
        let mut days: BTreeMap<i64, Vec<(Row, Totals)>> = BTreeMap::new();
        for ((day, row), t) in rows {
            days.entry(day).or_default().push((row, t));
        }
        for (day, rows) in days {
            let k = format!("{prefix}spend:{}", day_string(day));
            let res: switchboard_sessions::Result<i64> = link
                .run(|mut conn| {
                    let mut inv = RECORD.prepare_invoke();
                    inv.key(&k).arg(SPEND_TTL_SECS);
                    for (row, t) in &rows {
                        inv.arg(row.field_prefix());
                        for v in t.values() {
                            inv.arg(v);
                        }
                    }
                    async move { inv.invoke_async(&mut conn).await }
                })
                .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, rows = rows.len(), "spend not recorded: store unavailable");
            }
        }
    }
}

/// Writes gathered spend to Redis every [`RECORD_EVERY`] while there is some, until stopped
/// (shutdown writes the rest).
async fn write_spend(
    shared: std::sync::Weak<Shared>,
    wake: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = wake.notified() => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RECORD_EVERY) => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.write_spend().await;
    }
}

async fn reap(shared: std::sync::Weak<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REAP_EVERY) => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Backend::Redis { link, leases, .. } = &shared.backend else {
            return;
        };
        let mut back = Vec::new();
        leases.retain(|counter, lease| {
            let mut l = lock(lease);
            if l.fetching {
                return true;
            }
            let idle = l.last_use.elapsed();
            if idle >= SLICE_IDLE && l.held != 0 {
                back.push((counter.clone(), std::mem::take(&mut l.held)));
            }
            if idle >= LEASE_FORGET && l.held == 0 {
                l.retired = true;
                return false;
            }
            true
        });
        if !back.is_empty() {
            give_back(link, back).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(parse_day("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        for d in [-1000, 0, 59, 60, 11_016, 19_782, 20_000, 40_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
            assert_eq!(parse_day(&day_string(d)), Some(d));
        }
        assert_eq!(parse_day("2024-13-01"), None);
        // 2026-12-06T12:00:00Z: the month ends at 2027-01-01.
        let t = days_from_civil(2026, 12, 6) as u64 * 86_400 + 43_200;
        let (idx, reset) = current(Period::Month, t);
        assert_eq!(idx, 2026 * 12 + 11);
        assert_eq!(reset, Some(Duration::from_secs(25 * 86_400 + 43_200)));
        assert_eq!(current(Period::Day, t).1, Some(Duration::from_secs(43_200)));
        assert_eq!(current(Period::Total, t), (0, None));
    }

    #[test]
    fn budget_checks() {
        let b = |usd: f64, soft: Option<f64>| Budget {
            usd,
            period: Period::Day,
            soft_limit: soft,
        };
        assert!(b(1.0, None).check().is_ok());
        assert!(b(0.0, None).check().is_err());
        assert!(b(f64::NAN, None).check().is_err());
        assert!(b(1.0, Some(1.5)).check().is_err());
        assert!(
            serde_json::from_value::<Budget>(serde_json::json!({"usd": 1, "period": "week"}))
                .is_err()
        );
    }

    #[tokio::test]
    async fn memory_budget_refuses_once_spent_and_reconciles() {
        let metrics = crate::metrics::Metrics::new();
        let keys = KeyStore::memory();
        let spend = Spend::new(keys.clone(), &metrics);
        let b = Budget {
            usd: 0.001,
            period: Period::Total,
            soft_limit: None,
        };
        let w = Want {
            scope: "key",
            name: "k".into(),
            budget: b.clone(),
        };
        // 0.0006 estimated, 0.0002 real: 0.0008 left.
        let c = spend.charge(&w, nusd(0.0006)).await.ok().unwrap();
        spend.reconcile(&c, nusd(0.0006), nusd(0.0002)).await;
        assert!((spend.budget_used("key", "k", &b).await.unwrap() - 0.0002).abs() < 1e-12);
        // Not yet spent: admitted even though the estimate overshoots.
        assert!(spend.charge(&w, nusd(0.0009)).await.is_ok());
        let d = spend.charge(&w, 1).await.err().unwrap();
        assert_eq!(d.used, nusd(0.0011));
        let e = refusal("key", "k", &b, &d);
        assert_eq!(e.cause(), Cause::RateLimited);
        assert!(
            metrics
                .encode()
                .contains("\nswitchboard_budget_soft_limit_reached{scope=\"key\",name=\"k\"} 1")
        );
    }

    /// A redis-server of the test's own and a link to it (`None`: skipped outside CI).
    async fn redis_link(
        test: &str,
    ) -> Option<(
        switchboard_testing::redis::RedisServer,
        switchboard_sessions::RedisLink,
    )> {
        let redis = switchboard_testing::redis::RedisServer::start_or_skip(test)?;
        let cfg = switchboard_sessions::RedisConfig::standalone(redis.url());
        let link = switchboard_sessions::RedisLink::connect(
            &cfg,
            switchboard_sessions::Metrics::default(),
        )
        .await
        .unwrap();
        Some((redis, link))
    }

    #[tokio::test]
    async fn redis_spend_is_gathered_and_written_in_one_script_and_on_a_graceful_stop() {
        let Some((redis, link)) = redis_link("spend_redis_gathered").await else {
            return;
        };
        let metrics = crate::metrics::Metrics::new();
        let spend = Spend::new(KeyStore::redis(link.clone(), "t:"), &metrics);
        // Script calls Redis has served (`EVALSHA`, and `EVAL` should a client fall back).
        let scripts = || -> u64 {
            redis
                .cli(&["INFO", "commandstats"])
                .lines()
                .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
                .filter_map(|l| {
                    l.split("calls=")
                        .nth(1)?
                        .split(',')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum()
        };
        let row = |i: usize| Row {
            key: format!("k{}", i % 3),
            team: "t".into(),
            provider: "p".into(),
            model: "m".into(),
        };
        let one = Totals {
            cost_nusd: 10,
            requests: 1,
            input: 5,
            ..Totals::default()
        };
        let before = scripts();
        for i in 0..100 {
            spend.record(row(i), one).await;
        }
        // A query on this replica includes its own latest spend: 100 requests, 3 rows,
        // written by one script.
        let today = (now_secs() / 86_400) as i64;
        let q = Query {
            from: today,
            to: today,
            ..Query::default()
        };
        let sum = |rows: &[(Row, Totals)]| {
            let mut t = Totals::default();
            for (_, r) in rows {
                t.add(r);
            }
            t
        };
        let rows = spend.query(&q).await.unwrap();
        assert_eq!(rows.len(), 3, "{rows:?}");
        let t = sum(&rows);
        assert_eq!((t.requests, t.input, t.cost_nusd), (100, 500, 1000));
        let written = scripts() - before;
        assert!(
            (1..=2).contains(&written),
            "100 records took {written} script calls"
        );
        // Spend gathered when the replica stops gracefully is written.
        spend.record(row(0), one).await;
        spend.shutdown().await;
        let other = Spend::new(KeyStore::redis(link, "t:"), &metrics);
        assert_eq!(sum(&other.query(&q).await.unwrap()).requests, 101);
    }

    #[tokio::test]
    async fn redis_slices_are_sized_drawn_locally_and_given_back() {
        let Some((_redis, link)) = redis_link("spend_redis_slices").await else {
            return;
        };
        let metrics = crate::metrics::Metrics::new();
        let spend = Spend::new(KeyStore::redis(link, "t:"), &metrics);
        let want = |usd: f64| Want {
            scope: "key",
            name: format!("k{usd}"),
            budget: Budget {
                usd,
                period: Period::Month,
                soft_limit: None,
            },
        };
        let used = |w: &Want| {
            let spend = spend.clone();
            let (name, b) = (w.name.clone(), w.budget.clone());
            async move { nusd(spend.budget_used("key", &name, &b).await.unwrap()) }
        };
        let est = nusd(0.1);
        // 100 USD, 0.1 estimates: the first request takes a sixteenth of what is left (6.25,
        // under 64 estimates), counted as used at once.
        let w = want(100.0);
        let c1 = spend.charge(&w, est).await.ok().unwrap();
        assert!(matches!(c1.held, Held::Slice(_)));
        assert_eq!(used(&w).await, nusd(6.25));
        // The next one draws on the slice: nothing changes in Redis, nor when the first
        // settles below its estimate.
        let c2 = spend.charge(&w, est).await.ok().unwrap();
        assert!(matches!(c2.held, Held::Slice(_)));
        spend.reconcile(&c1, est, nusd(0.04)).await;
        assert_eq!(used(&w).await, nusd(6.25));
        // 1000 USD: at most 64 estimates.
        let big = want(1000.0);
        let _c = spend.charge(&big, est).await.ok().unwrap();
        assert_eq!(used(&big).await, 64 * est);
        // 3 USD is fewer than 32 estimates: no slice, the estimate alone.
        let small = want(3.0);
        let c3 = spend.charge(&small, est).await.ok().unwrap();
        assert!(matches!(c3.held, Held::Counter));
        assert_eq!(used(&small).await, est);
        // Shutdown gives back what is held: what remains is what was spent or is in flight.
        spend.shutdown().await;
        assert_eq!(used(&w).await, nusd(0.04) + est);
        assert_eq!(used(&big).await, est);
        // A charge settled after that goes straight to the counter.
        spend.reconcile(&c2, est, nusd(0.05)).await;
        assert_eq!(used(&w).await, nusd(0.09));
    }

    #[test]
    fn label_cap_overflows_into_other() {
        let c = LabelCap::default();
        for i in 0..LABEL_CAP {
            assert_eq!(c.label(&format!("k{i}")), format!("k{i}"));
        }
        assert_eq!(c.label("late"), "other");
        assert_eq!(c.label("k0"), "k0");
    }
}
