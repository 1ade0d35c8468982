//! `policies.guardrails`: content rules on LLM and MCP traffic (built-in PII and secret
//! detectors, regular expressions), each with an action. Compiled by [`crate::guardrails`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default hold window of a stream for a rule whose longest match is unbounded.
pub const DEFAULT_MAX_MATCH_BYTES: usize = 256;
/// Most rules in one `guardrails` block.
pub const MAX_RULES: usize = 64;

/// `policies.guardrails`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsPolicy {
    /// The rules, applied in this order.
    #[serde(default)]
    pub rules: Vec<GuardrailRule>,
    /// Longest match assumed for a `regex` rule whose matches have no upper length bound: a
    /// stream holds back at most this many bytes for it. Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_match_bytes: Option<usize>,
    /// Tool-poisoning defence on `mcp` routes: what happens when a target changes a tool's
    /// definition after it was first seen and pinned (none: no pinning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_changes: Option<ToolChanges>,
}

/// `tool_changes`: what a changed tool definition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolChanges {
    /// Hide the tool and refuse calls to it until the change is approved.
    Block,
    /// Log and count the change.
    Warn,
    /// Let it through.
    Allow,
}

/// One rule: a `detector`, a `regex` (each with an `action`) or a `webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailRule {
    /// The rule's name in errors, logs and metrics (default: the detector's name, or
    /// `regex_N` / `webhook_N` for the Nth rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A built-in detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<Detector>,
    /// A regular expression (Rust `regex` syntax, unanchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// An external guardrail service asked for a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookGuardrail>,
    /// What a match does (`detector` and `regex` rules; a webhook's verdict decides itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<GuardrailAction>,
    /// Which direction the rule looks at (default both).
    #[serde(default = "both_directions")]
    pub applies_to: Vec<Direction>,
    /// What a masked match becomes (default `[EMAIL]` etc. for detectors, `[REDACTED:name]`
    /// for regex rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

fn both_directions() -> Vec<Direction> {
    vec![Direction::Request, Direction::Response]
}

/// `webhook`: `POST url` with `{"route", "direction", "kind", "texts": [...]}`; the service
/// answers `{"action": "allow"}` or `{"action": "reject", "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookGuardrail {
    /// The service's URL (`http` or `https`).
    pub url: String,
    /// How long to wait for the verdict. Default 1s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<std::time::Duration>,
    /// What happens when the service does not answer in time, fails or answers something
    /// else: `open` lets the text through, `closed` (the default) rejects it.
    #[serde(default)]
    pub fail: FailMode,
}

/// A webhook guardrail's behaviour when no verdict arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let the text through.
    Open,
    /// Reject it.
    #[default]
    Closed,
}

/// A built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// E-mail addresses.
    Email,
    /// Phone numbers (international `+` form and common national groupings).
    Phone,
    /// Payment card numbers (13 to 19 digits, Luhn-checked).
    CreditCard,
    /// IBANs (mod-97 checked).
    Iban,
    /// US social security numbers (`123-45-6789`).
    UsSsn,
    /// AWS access key ids (`AKIA…`, `ASIA…`).
    AwsKey,
    /// GitHub tokens (`ghp_…`, `github_pat_…`).
    GithubToken,
    /// OpenAI-style API keys (`sk-…`).
    OpenaiKey,
    /// PEM private key blocks.
    PrivateKey,
}

/// What a rule does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailAction {
    /// Refuse the request (or response) with an error naming the rule.
    Reject,
    /// Replace each match.
    Mask,
    /// Log the rule's name (never the text) and count it.
    Log,
}

/// Which traffic a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Prompts, tool-call arguments.
    Request,
    /// Completions, tool results, resource contents, prompt messages.
    Response,
}

impl GuardrailsPolicy {
    /// Semantic problems at key path `p`.
    pub fn validate(&self, p: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.rules.len() > MAX_RULES {
            out.push((
                format!("{p}.rules"),
                format!("at most {MAX_RULES} rules, not {}", self.rules.len()),
            ));
        }
        if self.max_match_bytes == Some(0) {
            out.push((format!("{p}.max_match_bytes"), "must be more than 0".into()));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let rp = format!("{p}.rules[{i}]");
            let kinds = [r.detector.is_some(), r.regex.is_some(), r.webhook.is_some()]
                .iter()
                .filter(|k| **k)
                .count();
            if kinds != 1 {
                out.push((
                    rp.clone(),
                    "set exactly one of `detector`, `regex` and `webhook`".into(),
                ));
            }
            if let Some(src) = &r.regex
                && let Err(e) = compile_rule_regex(src)
            {
                out.push((
                    format!("{rp}.regex"),
                    format!("`{src}` is not a valid regular expression: {e}"),
                ));
            }
            match (&r.webhook, r.action) {
                (Some(w), a) => {
                    if r.applies_to.contains(&Direction::Response) {
                        out.push((
                            format!("{rp}.applies_to"),
                            "webhook rules check requests only: set `applies_to: [request]`".into(),
                        ));
                    }
                    if a.is_some() {
                        out.push((
                            format!("{rp}.action"),
                            "a webhook's verdict decides; leave `action` out".into(),
                        ));
                    }
                    let ok = url::Url::parse(&w.url).is_ok_and(|u| {
                        matches!(u.scheme(), "http" | "https") && u.host().is_some()
                    });
                    if !ok {
                        out.push((
                            format!("{rp}.webhook.url"),
                            format!("`{}` is not an http(s) URL", w.url),
                        ));
                    }
                    if w.timeout.is_some_and(|t| t.is_zero()) {
                        out.push((
                            format!("{rp}.webhook.timeout"),
                            "must be more than 0s".into(),
                        ));
                    }
                }
                (None, None) => out.push((
                    format!("{rp}.action"),
                    "required: `reject`, `mask` or `log`".into(),
                )),
                (None, Some(_)) => {}
            }
            if r.applies_to.is_empty() {
                out.push((
                    format!("{rp}.applies_to"),
                    "list `request`, `response` or both".into(),
                ));
            }
            if r.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                out.push((format!("{rp}.name"), "must not be empty".into()));
            }
        }
        out
    }
}

/// Largest `regex` rule source accepted.
pub const MAX_RULE_REGEX_LEN: usize = 4096;
const REGEX_SIZE_LIMIT: usize = 1 << 21;

/// Compiles a `regex` rule (unanchored), within the size limits.
pub fn compile_rule_regex(src: &str) -> Result<regex::Regex, String> {
    if src.len() > MAX_RULE_REGEX_LEN {
        return Err(format!("longer than {MAX_RULE_REGEX_LEN} bytes"));
    }
    regex::RegexBuilder::new(src)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}
