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
}

/// One rule: a `detector` or a `regex`, and what to do with a match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailRule {
    /// The rule's name in errors, logs and metrics (default: the detector's name, or
    /// `regex_N` for the Nth rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A built-in detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<Detector>,
    /// A regular expression (Rust `regex` syntax, unanchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// What a match does.
    pub action: GuardrailAction,
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
            match (&r.detector, &r.regex) {
                (Some(_), Some(_)) | (None, None) => out.push((
                    rp.clone(),
                    "set exactly one of `detector` and `regex`".into(),
                )),
                (None, Some(src)) => {
                    if let Err(e) = compile_rule_regex(src) {
                        out.push((
                            format!("{rp}.regex"),
                            format!("`{src}` is not a valid regular expression: {e}"),
                        ));
                    }
                }
                (Some(_), None) => {}
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
