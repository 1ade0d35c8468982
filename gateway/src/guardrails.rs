//! Guardrails: content rules on LLM and MCP traffic (`policies.guardrails`).
//!
//! A route's rules are compiled once per config generation into [`Guardrails`]: one
//! [`regex::RegexSet`] over every rule finds, in one pass over a text, which rules may match;
//! only those rules then locate their matches (and a detector's checksum, Luhn or mod-97,
//! confirms each). A match of a `reject` rule refuses the message with an error naming the
//! rule, never the text; `mask` rules replace their matches; `log` rules log the rule's name.
//! Every decision counts in `switchboard_guardrail_decisions_total{route,rule,action}`.
//!
//! Where the rules apply: [`llm`] (prompts, complete answers, and streamed answers through
//! [`stream`], which holds back at most the longest match a rule can have) and [`mcp`]
//! (tool-call arguments, tool results, resource contents, prompt messages).

pub mod llm;
pub mod mcp;
pub mod pins;
pub mod stream;
mod webhook;

use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use regex::{Regex, RegexSet};

const SET_SIZE_LIMIT: usize = 1 << 23;
/// The longest `private_key` match a stream holds back for.
const PRIVATE_KEY_MAX: usize = 4096;
use switchboard_core::Cause;
use switchboard_core::trace::{Attr, Trace};

use crate::config::{
    DEFAULT_MAX_MATCH_BYTES, Detector, Direction, GuardrailAction, GuardrailsPolicy,
    compile_rule_regex,
};
use crate::error::RequestError;

/// Labels of `switchboard_guardrail_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// Route name.
    pub route: String,
    /// Rule name.
    pub rule: String,
    /// `reject`, `mask` or `log`; for webhook rules `allow`, `reject`, `fail_open` or
    /// `fail_closed`.
    pub action: &'static str,
}

/// Every guardrail decision of the process, registered in the gateway's registry by
/// [`crate::metrics::Metrics::new`].
pub static DECISIONS: LazyLock<Family<DecisionLabels, Counter>> = LazyLock::new(Family::default);

/// A detector's pattern, checksum and default replacement.
fn detector(d: Detector) -> (&'static str, fn(&str) -> bool, &'static str, &'static str) {
    match d {
        Detector::Email => (
            r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b",
            any,
            "[EMAIL]",
            "email",
        ),
        Detector::Phone => (
            r"\+[0-9]{1,3}[ .-]?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,4}\b|(?:\([0-9]{3}\)|\b[0-9]{3})[ .-]?[0-9]{3}[ .-][0-9]{4}\b",
            phone_ok,
            "[PHONE]",
            "phone",
        ),
        Detector::CreditCard => (
            r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
            luhn_ok,
            "[CREDIT_CARD]",
            "credit_card",
        ),
        Detector::Iban => (
            r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
            iban_ok,
            "[IBAN]",
            "iban",
        ),
        Detector::UsSsn => (
            r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
            ssn_ok,
            "[US_SSN]",
            "us_ssn",
        ),
        Detector::AwsKey => (
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            any,
            "[AWS_KEY]",
            "aws_key",
        ),
        Detector::GithubToken => (
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})\b",
            any,
            "[GITHUB_TOKEN]",
            "github_token",
        ),
        Detector::OpenaiKey => (
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}",
            any,
            "[OPENAI_KEY]",
            "openai_key",
        ),
        Detector::PrivateKey => (
            r"-----BEGIN (?:[A-Z0-9]{1,10} ){0,2}PRIVATE KEY-----[A-Za-z0-9+/=\s:,.-]*?-----END (?:[A-Z0-9]{1,10} ){0,2}PRIVATE KEY-----",
            any,
            "[PRIVATE_KEY]",
            "private_key",
        ),
    }
}

fn any(_: &str) -> bool {
    true
}

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.chars().filter_map(|c| c.to_digit(10))
}

fn phone_ok(s: &str) -> bool {
    (7..=15).contains(&digits(s).count())
}

/// The Luhn checksum of a card number (separators ignored).
pub fn luhn_ok(s: &str) -> bool {
    let ds: Vec<u32> = digits(s).collect();
    if !(13..=19).contains(&ds.len()) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The ISO 13616 mod-97 check of an IBAN (spaces ignored).
pub fn iban_ok(s: &str) -> bool {
    let compact: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u64 = 0;
    for c in tail.iter().chain(head) {
        let v = match c.to_digit(36) {
            Some(v) => v as u64,
            None => return false,
        };
        rem = if v < 10 {
            (rem * 10 + v) % 97
        } else {
            (rem * 100 + v) % 97
        };
    }
    rem == 1
}

fn ssn_ok(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(a), Some(g), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    a != "000" && a != "666" && !a.starts_with('9') && g != "00" && n != "0000"
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    regex: Regex,
    check: fn(&str) -> bool,
    action: GuardrailAction,
    request: bool,
    response: bool,
    replacement: String,
    /// Longest match in bytes (the regex's bound, or `max_match_bytes`).
    max_len: usize,
}

impl Rule {
    fn applies(&self, dir: Direction) -> bool {
        match dir {
            Direction::Request => self.request,
            Direction::Response => self.response,
        }
    }
}

/// A route's compiled rules.
#[derive(Debug)]
pub struct Guardrails {
    rules: Vec<Rule>,
    /// All rules in one automaton; `None` when it would exceed its size limit (then each rule
    /// is run on its own: slower, never skipped).
    set: Option<RegexSet>,
    /// The most a stream holds back: the longest match of any response rule.
    hold: usize,
    /// External guardrail services, in rule order.
    webhooks: Vec<webhook::Webhook>,
    /// The webhooks' HTTP client (none without webhooks).
    client: Option<reqwest::Client>,
    /// `tool_changes`, when tool definitions are pinned.
    pub tool_changes: Option<crate::config::ToolChanges>,
}

/// A match of a rule in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset after the end.
    pub end: usize,
    rule: usize,
}

/// A text refused by a `reject` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The rule's name.
    pub rule: Arc<str>,
    /// Which direction was refused.
    pub direction: Direction,
}

impl Rejected {
    /// The error the caller gets, in its route's format: it names the rule, never the text.
    pub fn error(&self) -> RequestError {
        let what = match self.direction {
            Direction::Request => "request",
            Direction::Response => "response",
        };
        RequestError::new(
            Cause::BadRequest,
            format!("the {what} was blocked by guardrail rule `{}`", self.rule),
        )
    }
}

impl Guardrails {
    /// Compiles a validated `guardrails` block; `None` when it has no rules. A rule that
    /// does not compile (only possible when validation was skipped) is left out with an
    /// error log.
    pub fn compile(p: &GuardrailsPolicy) -> Option<Arc<Self>> {
        let unbounded = p.max_match_bytes.unwrap_or(DEFAULT_MAX_MATCH_BYTES).max(1);
        let mut rules = Vec::new();
        for (i, r) in p.rules.iter().enumerate() {
            let (src, check, replacement, name) = match (&r.detector, &r.regex) {
                (Some(d), None) => {
                    let (src, check, rep, name) = detector(*d);
                    (src.to_owned(), check, rep.to_owned(), name.to_owned())
                }
                (None, Some(src)) => {
                    let name = r.name.clone().unwrap_or_else(|| format!("regex_{i}"));
                    (
                        src.clone(),
                        any as fn(&str) -> bool,
                        format!("[REDACTED:{name}]"),
                        name,
                    )
                }
                _ => continue,
            };
            let Some(action) = r.action else {
                continue;
            };
            let regex = match compile_rule_regex(&src) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(rule = %name, error = %e, "guardrail rule left out");
                    continue;
                }
            };
            let max_len = match r.detector {
                // A PEM block has no bound in its syntax; 4 KiB covers an RSA-4096 key.
                Some(Detector::PrivateKey) => PRIVATE_KEY_MAX,
                _ => regex_syntax::parse(&src)
                    .ok()
                    .and_then(|h| h.properties().maximum_len())
                    .unwrap_or(unbounded),
            };
            rules.push(Rule {
                name: r.name.clone().unwrap_or(name).into(),
                regex,
                check,
                action,
                request: r.applies_to.contains(&Direction::Request),
                response: r.applies_to.contains(&Direction::Response),
                replacement: r.replacement.clone().unwrap_or(replacement),
                max_len,
            });
        }
        let webhooks: Vec<webhook::Webhook> = p
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| webhook::Webhook::compile(i, r))
            .collect();
        if rules.is_empty() && webhooks.is_empty() && p.tool_changes.is_none() {
            return None;
        }
        let set = match regex::RegexSetBuilder::new(rules.iter().map(|r| r.regex.as_str()))
            .size_limit(SET_SIZE_LIMIT)
            .dfa_size_limit(SET_SIZE_LIMIT)
            .build()
        {
            Ok(set) => Some(set),
            Err(e) => {
                tracing::warn!(error = %e, "guardrail rules too large for one set; checking each rule on its own");
                None
            }
        };
        let hold = rules
            .iter()
            .filter(|r| r.response)
            .map(|r| r.max_len)
            .max()
            .unwrap_or(0);
        let client = (!webhooks.is_empty()).then(|| {
            // The client needs rustls' provider; `main` installs it, a library user may not
            // have.
            crate::install_crypto_provider();
            webhook::client()
        });
        Some(Arc::new(Guardrails {
            rules,
            set,
            hold,
            webhooks,
            client,
            tool_changes: p.tool_changes,
        }))
    }

    /// Whether any rule looks at `dir`.
    pub fn applies(&self, dir: Direction) -> bool {
        self.rules.iter().any(|r| r.applies(dir)) || self.webhooks.iter().any(|w| w.applies(dir))
    }

    /// Whether a webhook rule looks at `dir`.
    pub fn has_webhooks(&self, dir: Direction) -> bool {
        self.webhooks.iter().any(|w| w.applies(dir))
    }

    /// Asks each webhook rule for `dir` about `texts`, in rule order; the first reject wins.
    pub async fn check_webhooks(
        &self,
        at: Site<'_>,
        dir: Direction,
        kind: &str,
        texts: &[String],
    ) -> Result<(), Rejected> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        for w in self.webhooks.iter().filter(|w| w.applies(dir)) {
            w.check(client, at, dir, kind, texts).await?;
        }
        Ok(())
    }

    /// How many bytes a stream holds back at most.
    pub fn hold_bytes(&self) -> usize {
        self.hold
    }

    /// The confirmed matches in `text` of the rules for `dir`, by start, then rule order.
    pub fn find(&self, text: &str, dir: Direction) -> Vec<Hit> {
        let mut hits = Vec::new();
        if text.is_empty() {
            return hits;
        }
        let candidates: Vec<usize> = match &self.set {
            Some(set) => set.matches(text).iter().collect(),
            None => (0..self.rules.len()).collect(),
        };
        for i in candidates {
            let Some(rule) = self.rules.get(i) else {
                continue;
            };
            if !rule.applies(dir) {
                continue;
            }
            for m in rule.regex.find_iter(text) {
                if (rule.check)(m.as_str()) {
                    hits.push(Hit {
                        start: m.start(),
                        end: m.end(),
                        rule: i,
                    });
                }
            }
        }
        hits.sort_by_key(|h| (h.start, h.rule));
        hits
    }

    /// Acts on `hits` of `text` (all of them taken as final): a reject refuses, log rules are
    /// logged, and the text with its mask matches replaced is returned (None: unchanged).
    /// Every rule that matched counts once.
    pub fn decide(
        &self,
        at: Site<'_>,
        dir: Direction,
        text: &str,
        hits: &[Hit],
    ) -> Result<Option<String>, Rejected> {
        if hits.is_empty() {
            return Ok(None);
        }
        let mut seen: Vec<usize> = Vec::new();
        for h in hits {
            if !seen.contains(&h.rule) {
                seen.push(h.rule);
            }
        }
        // A reject wins over everything else in the same text.
        if let Some(r) = seen
            .iter()
            .filter_map(|&i| self.rules.get(i))
            .find(|r| r.action == GuardrailAction::Reject)
        {
            self.count(at, r, dir);
            tracing::info!(route = at.route, rule = %r.name, action = "reject", "guardrail");
            return Err(Rejected {
                rule: r.name.clone(),
                direction: dir,
            });
        }
        for r in seen.iter().filter_map(|&i| self.rules.get(i)) {
            self.count(at, r, dir);
            if r.action == GuardrailAction::Log {
                tracing::info!(route = at.route, rule = %r.name, action = "log", "guardrail");
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut changed = false;
        for h in hits {
            let Some(rule) = self.rules.get(h.rule) else {
                continue;
            };
            if rule.action != GuardrailAction::Mask || h.start < at {
                continue;
            }
            out.push_str(text.get(at..h.start).unwrap_or_default());
            out.push_str(&rule.replacement);
            at = h.end;
            changed = true;
        }
        if !changed {
            return Ok(None);
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Ok(Some(out))
    }

    /// [`Self::find`] then [`Self::decide`] on a whole text.
    pub fn apply(
        &self,
        at: Site<'_>,
        dir: Direction,
        text: &str,
    ) -> Result<Option<String>, Rejected> {
        let hits = self.find(text, dir);
        self.decide(at, dir, text, &hits)
    }

    fn count(&self, at: Site<'_>, r: &Rule, dir: Direction) {
        let action = match r.action {
            GuardrailAction::Reject => "reject",
            GuardrailAction::Mask => "mask",
            GuardrailAction::Log => "log",
        };
        count(at, &r.name, action, dir);
    }
}

/// Where a decision is made: the route (the metric's label) and the request's server span
/// when the request is traced.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    /// The route's name.
    pub route: &'a str,
    /// The request's server span; `None` with tracing off or for an untraced request.
    pub trace: Option<&'a Trace>,
}

impl<'a> Site<'a> {
    /// The site of a request: its route and its server span.
    pub fn of(ctx: &'a switchboard_core::RequestContext) -> Self {
        Site {
            route: &ctx.route,
            trace: ctx.trace.as_ref(),
        }
    }
}

/// A [`Site`] a stream keeps for as long as it runs.
#[derive(Clone)]
pub struct OwnedSite {
    route: String,
    trace: Option<Trace>,
}

impl OwnedSite {
    /// Keeps `at` (the span is shared, not copied).
    pub fn new(at: Site<'_>) -> Self {
        OwnedSite {
            route: at.route.to_owned(),
            trace: at.trace.cloned(),
        }
    }

    /// The site to decide at.
    pub fn site(&self) -> Site<'_> {
        Site {
            route: &self.route,
            trace: self.trace.as_ref(),
        }
    }
}

/// Records one decision: counted, and a `guardrail` event on the request's span when it is
/// traced (rule, action, direction; never the matched text).
fn count(at: Site<'_>, rule: &str, action: &'static str, dir: Direction) {
    DECISIONS
        .get_or_create(&DecisionLabels {
            route: at.route.to_owned(),
            rule: rule.to_owned(),
            action,
        })
        .inc();
    if let Some(t) = at.trace {
        let direction = match dir {
            Direction::Request => "request",
            Direction::Response => "response",
        };
        t.event(
            "guardrail",
            vec![
                Attr::new("switchboard.guardrail.rule", rule.to_owned()),
                Attr::new("switchboard.guardrail.action", action),
                Attr::new("switchboard.guardrail.direction", direction),
            ],
        );
    }
}

/// Applies the rules to every string value in a JSON tree (MCP arguments and results).
/// Object keys are left alone. Returns whether anything changed.
pub fn walk_strings(
    g: &Guardrails,
    at: Site<'_>,
    dir: Direction,
    v: &mut serde_json::Value,
) -> Result<bool, Rejected> {
    use serde_json::Value;
    match v {
        Value::String(s) => match g.apply(at, dir, s)? {
            Some(masked) => {
                *s = masked;
                Ok(true)
            }
            None => Ok(false),
        },
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= walk_strings(g, at, dir, item)?;
            }
            Ok(changed)
        }
        Value::Object(map) => {
            let mut changed = false;
            for (_, item) in map.iter_mut() {
                changed |= walk_strings(g, at, dir, item)?;
            }
            Ok(changed)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GuardrailRule;

    const T: Site<'static> = Site {
        route: "t",
        trace: None,
    };

    fn rule(d: Detector, action: GuardrailAction) -> GuardrailRule {
        GuardrailRule {
            name: None,
            detector: Some(d),
            regex: None,
            webhook: None,
            action: Some(action),
            applies_to: vec![Direction::Request, Direction::Response],
            replacement: None,
        }
    }

    fn masker(ds: &[Detector]) -> Arc<Guardrails> {
        Guardrails::compile(&GuardrailsPolicy {
            rules: ds.iter().map(|d| rule(*d, GuardrailAction::Mask)).collect(),
            max_match_bytes: None,
            tool_changes: None,
        })
        .unwrap()
    }

    fn mask(g: &Guardrails, s: &str) -> String {
        g.apply(T, Direction::Request, s)
            .unwrap()
            .unwrap_or_else(|| s.to_owned())
    }

    #[test]
    fn each_detector_masks_its_kind_and_checks_its_checksum() {
        use Detector::*;
        let g = masker(&[
            PrivateKey,
            Email,
            CreditCard,
            Iban,
            UsSsn,
            AwsKey,
            GithubToken,
            OpenaiKey,
            Phone,
        ]);
        let cases = [
            ("mail bob.smith+x@example.co.uk now", "mail [EMAIL] now"),
            ("card 4111 1111 1111 1111.", "card [CREDIT_CARD]."),
            ("card 4111111111111112", "card 4111111111111112"), // Luhn fails
            ("iban GB82 WEST 1234 5698 7654 32 ok", "iban [IBAN] ok"),
            ("iban GB82WEST12345698765433", "iban GB82WEST12345698765433"), // mod-97 fails
            ("ssn 078-05-1120", "ssn [US_SSN]"),
            ("ssn 000-05-1120", "ssn 000-05-1120"),
            ("key AKIAIOSFODNN7EXAMPLE", "key [AWS_KEY]"),
            (
                "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "gh [GITHUB_TOKEN]",
            ),
            ("sk-proj-abcdefghijklmnopqrstuvwx", "[OPENAI_KEY]"),
            ("call +44 20 7946 0958 now", "call [PHONE] now"),
            ("call (555) 123-4567", "call [PHONE]"),
            (
                "k -----BEGIN RSA PRIVATE KEY-----\nMIIB\nabc=\n-----END RSA PRIVATE KEY----- x",
                "k [PRIVATE_KEY] x",
            ),
            ("nothing here 12345", "nothing here 12345"),
        ];
        for (input, want) in cases {
            assert_eq!(mask(&g, input), want, "{input}");
        }
    }

    #[test]
    fn bounded_rules_hold_their_longest_match_and_unbounded_ones_max_match_bytes() {
        let g = masker(&[Detector::UsSsn]);
        assert_eq!(g.hold_bytes(), 11);
        assert_eq!(masker(&[Detector::Email]).hold_bytes(), 665);
        let p = GuardrailsPolicy {
            rules: vec![GuardrailRule {
                name: Some("tok".into()),
                detector: None,
                regex: Some(r"tok-\w+".into()),
                webhook: None,
                action: Some(GuardrailAction::Mask),
                applies_to: vec![Direction::Response],
                replacement: None,
            }],
            max_match_bytes: Some(64),
            tool_changes: None,
        };
        let g = Guardrails::compile(&p).unwrap();
        assert_eq!(g.hold_bytes(), 64);
        assert!(!g.applies(Direction::Request));
        assert_eq!(
            g.apply(T, Direction::Response, "a tok-123 b")
                .unwrap()
                .unwrap(),
            "a [REDACTED:tok] b"
        );
    }

    #[test]
    fn overlaps_go_to_the_earlier_match_then_the_earlier_rule_and_replacement_overrides() {
        let mut card = rule(Detector::CreditCard, GuardrailAction::Mask);
        card.replacement = Some("<card>".into());
        let digits = GuardrailRule {
            name: Some("digits".into()),
            detector: None,
            regex: Some("[0-9]{4}".into()),
            webhook: None,
            action: Some(GuardrailAction::Mask),
            applies_to: vec![Direction::Request],
            replacement: None,
        };
        let g = Guardrails::compile(&GuardrailsPolicy {
            rules: vec![card.clone(), digits.clone()],
            max_match_bytes: None,
            tool_changes: None,
        })
        .unwrap();
        // Same start: the card rule comes first and takes the whole number.
        assert_eq!(mask(&g, "pay 4111111111111111 x"), "pay <card> x");
        let g = Guardrails::compile(&GuardrailsPolicy {
            rules: vec![digits, card],
            max_match_bytes: None,
            tool_changes: None,
        })
        .unwrap();
        assert_eq!(
            mask(&g, "pay 4111111111111111 x"),
            "pay [REDACTED:digits][REDACTED:digits][REDACTED:digits][REDACTED:digits] x"
        );
    }

    #[test]
    fn reject_names_the_rule_not_the_text() {
        let p = GuardrailsPolicy {
            rules: vec![rule(Detector::CreditCard, GuardrailAction::Reject)],
            max_match_bytes: None,
            tool_changes: None,
        };
        let g = Guardrails::compile(&p).unwrap();
        let e = g
            .apply(T, Direction::Request, "4111-1111-1111-1111")
            .unwrap_err()
            .error();
        assert!(e.message().contains("`credit_card`"), "{}", e.message());
        assert!(!e.message().contains("4111"));
    }
}
