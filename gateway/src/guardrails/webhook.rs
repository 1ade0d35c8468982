//! `webhook` guardrail rules: an external service's verdict on the texts of a message.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Rejected, Site, count};
use crate::config::{Direction, FailMode, GuardrailRule};

/// Default time to wait for a verdict.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest verdict read.
const MAX_VERDICT_BYTES: usize = 64 << 10;

/// The client every webhook of a generation shares.
pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// One compiled webhook rule.
#[derive(Debug)]
pub(super) struct Webhook {
    name: Arc<str>,
    url: String,
    timeout: Duration,
    fail: FailMode,
    request: bool,
    response: bool,
}

impl Webhook {
    /// The webhook of rule `i`, if it is one.
    pub(super) fn compile(i: usize, r: &GuardrailRule) -> Option<Self> {
        let w = r.webhook.as_ref()?;
        Some(Webhook {
            name: r
                .name
                .clone()
                .unwrap_or_else(|| format!("webhook_{i}"))
                .into(),
            url: w.url.clone(),
            timeout: w.timeout.unwrap_or(DEFAULT_TIMEOUT),
            fail: w.fail,
            request: r.applies_to.contains(&Direction::Request),
            response: r.applies_to.contains(&Direction::Response),
        })
    }

    pub(super) fn applies(&self, dir: Direction) -> bool {
        match dir {
            Direction::Request => self.request,
            Direction::Response => self.response,
        }
    }

    /// Asks the service; `Err` when it rejects, or when it gives no verdict under
    /// `fail: closed`.
    pub(super) async fn check(
        &self,
        client: &reqwest::Client,
        at: Site<'_>,
        dir: Direction,
        kind: &str,
        texts: &[String],
    ) -> Result<(), Rejected> {
        let route = at.route;
        let direction = match dir {
            Direction::Request => "request",
            Direction::Response => "response",
        };
        let body = json!({"route": route, "direction": direction, "kind": kind, "texts": texts});
        let verdict = tokio::time::timeout(self.timeout, async {
            let resp = client.post(&self.url).json(&body).send().await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let bytes = resp.bytes().await.ok()?;
            if bytes.len() > MAX_VERDICT_BYTES {
                return None;
            }
            let v: Value = serde_json::from_slice(&bytes).ok()?;
            v.get("action").and_then(Value::as_str).map(str::to_owned)
        })
        .await
        .ok()
        .flatten();
        let rejected = Rejected {
            rule: self.name.clone(),
            direction: dir,
        };
        match verdict.as_deref() {
            Some("allow") => {
                count(at, &self.name, "allow", dir);
                Ok(())
            }
            Some("reject") => {
                count(at, &self.name, "reject", dir);
                tracing::info!(route, rule = %self.name, action = "reject", "guardrail webhook");
                Err(rejected)
            }
            _ => match self.fail {
                FailMode::Open => {
                    count(at, &self.name, "fail_open", dir);
                    tracing::warn!(route, rule = %self.name, "guardrail webhook gave no verdict; failing open");
                    Ok(())
                }
                FailMode::Closed => {
                    count(at, &self.name, "fail_closed", dir);
                    tracing::warn!(route, rule = %self.name, "guardrail webhook gave no verdict; failing closed");
                    Err(rejected)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's defaults: a `1s` timeout, `fail: closed`, a derived name.
    #[test]
    fn defaults_are_one_second_and_fail_closed() {
        let rule: GuardrailRule = serde_json::from_value(json!({
            "webhook": {"url": "http://127.0.0.1:3040/check"}, "applies_to": ["request"]
        }))
        .expect("a webhook rule");
        let w = Webhook::compile(2, &rule).expect("compiled");
        assert_eq!(w.timeout, Duration::from_secs(1));
        assert_eq!(w.fail, FailMode::Closed);
        assert_eq!(&*w.name, "webhook_2");
        assert!(w.applies(Direction::Request) && !w.applies(Direction::Response));
    }
}
