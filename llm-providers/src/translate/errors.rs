//! Errors inside streams in the caller's API format, and reading errors and retry hints out of
//! provider error bodies. (Errors before a response starts are [`crate::Error`]s, rendered by
//! the gateway through [`switchboard_core::Error::render`].)

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::Value;
use switchboard_core::{Cause, Error};

use crate::format::ApiFormat;
use crate::sse;

/// A mid-stream error event in the caller's stream format: the body of `error` as
/// [`switchboard_core::Error::body`] writes it, as an SSE `data:` line for OpenAI callers and an
/// `event: error` for Anthropic callers.
pub fn stream_error(format: ApiFormat, error: &Error) -> Bytes {
    let mut out = BytesMut::new();
    let body = error.body(format.into()).to_string();
    match format {
        ApiFormat::OpenAi => sse::write_data(&mut out, body.as_bytes()),
        ApiFormat::Anthropic => sse::write_event(&mut out, "error", body.as_bytes()),
    }
    out.freeze()
}

/// An error a provider reported inside its stream, by the type it gave (Anthropic's and
/// OpenAI's error types, Gemini's status names, Bedrock's exception names): the status it
/// stands for passes through like a provider's error status before the stream
/// ([`Cause::UpstreamStatus`]), with the provider's message.
pub fn provider_stream_error(kind: &str, message: String) -> Error {
    let status = match kind {
        "RESOURCE_EXHAUSTED"
        | "rate_limit_exceeded"
        | "rate_limit_error"
        | "throttlingException" => 429,
        "overloaded_error" | "UNAVAILABLE" | "serviceUnavailableException" => 529,
        "invalid_request_error" | "INVALID_ARGUMENT" | "validationException" => 400,
        _ => 500,
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Error::new(Cause::UpstreamStatus(status), message)
}

/// The gateway's own verdict on a provider stream it had to cut (unframeable, an event over
/// `llm.max_event_bytes`, ended before its end marker): a bad gateway.
pub fn broken_stream(message: &'static str) -> Error {
    Error::new(Cause::Upstream, message)
}

/// The human-readable message of a provider error body in any of the formats we call
/// (OpenAI, Anthropic, Gemini, Bedrock).
pub fn upstream_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let m = v
        .get("error")
        .and_then(|e| e.get("message").or(Some(e)))
        .and_then(Value::as_str)
        .or_else(|| v.get("message").and_then(Value::as_str))
        .or_else(|| v.get("Message").and_then(Value::as_str))?;
    Some(m.chars().take(500).collect())
}

/// A retry delay found in a provider error body: Gemini's `RetryInfo.retryDelay`, or OpenAI's
/// "Please try again in 1.5s / 20ms" message.
pub fn body_retry_delay(body: &[u8]) -> Option<Duration> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if let Some(details) = v
        .get("error")
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
    {
        for d in details {
            if let Some(delay) = d.get("retryDelay").and_then(Value::as_str)
                && let Ok(d) = humantime::parse_duration(delay)
            {
                return Some(d);
            }
        }
    }
    let msg = upstream_message(body)?;
    let rest = &msg[msg.find("try again in ")? + "try again in ".len()..];
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let value: f64 = num.parse().ok()?;
    let unit = &rest[num.len()..];
    let secs = if unit.starts_with("ms") {
        value / 1000.0
    } else if unit.starts_with('s') {
        value
    } else {
        return None;
    };
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_errors_in_both_formats() {
        let e = provider_stream_error("overloaded_error", "busy".into());
        let openai = String::from_utf8(stream_error(ApiFormat::OpenAi, &e).to_vec()).unwrap();
        assert!(openai.starts_with("data: "), "{openai}");
        let v: Value = serde_json::from_str(openai["data: ".len()..].trim()).unwrap();
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["error"]["code"], "upstream_error");
        assert_eq!(v["error"]["message"], "busy");
        let anthropic = String::from_utf8(stream_error(ApiFormat::Anthropic, &e).to_vec()).unwrap();
        assert!(anthropic.starts_with("event: error\n"), "{anthropic}");
        assert!(
            anthropic.contains(r#""type":"overloaded_error""#),
            "{anthropic}"
        );
        let e = provider_stream_error("RESOURCE_EXHAUSTED", "quota".into());
        assert_eq!(
            e.body(switchboard_core::ApiFormat::Anthropic)["error"]["type"],
            "rate_limit_error"
        );
    }

    #[test]
    fn messages_from_all_shapes() {
        assert_eq!(
            upstream_message(br#"{"error":{"message":"a","type":"x"}}"#).as_deref(),
            Some("a")
        );
        assert_eq!(
            upstream_message(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"b"}}"#
            )
            .as_deref(),
            Some("b")
        );
        assert_eq!(
            upstream_message(br#"{"message":"c"}"#).as_deref(),
            Some("c")
        );
        assert_eq!(upstream_message(b"not json"), None);
    }

    #[test]
    fn retry_delays() {
        assert_eq!(
            body_retry_delay(br#"{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"}]}}"#),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            body_retry_delay(br#"{"error":{"message":"Rate limit reached. Please try again in 1.5s. Visit..."}}"#),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            body_retry_delay(br#"{"error":{"message":"Please try again in 20ms."}}"#),
            Some(Duration::from_millis(20))
        );
        assert_eq!(body_retry_delay(br#"{"error":{"message":"nope"}}"#), None);
    }
}
