//! Errors in the caller's API format, and reading errors and retry hints out of provider
//! error bodies.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::format::ApiFormat;
use crate::sse;

/// The error `type` for a status in the given format.
pub fn error_kind(format: ApiFormat, status: StatusCode) -> &'static str {
    match (format, status.as_u16()) {
        (_, 400 | 422) => "invalid_request_error",
        (_, 401) => "authentication_error",
        (_, 403) => "permission_error",
        (_, 404) => "not_found_error",
        (ApiFormat::Anthropic, 413) => "request_too_large",
        (_, 429) => "rate_limit_error",
        (ApiFormat::Anthropic, 529) => "overloaded_error",
        (ApiFormat::Anthropic, 504) => "timeout_error",
        (ApiFormat::OpenAi, 500..) => "server_error",
        _ => "api_error",
    }
}

/// The JSON body of an error in the caller's format.
pub fn error_json(format: ApiFormat, kind: &str, message: &str) -> Value {
    match format {
        ApiFormat::OpenAi => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        ApiFormat::Anthropic => {
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    }
}

/// A complete error response in the caller's format. OpenAI callers never see Anthropic's
/// non-standard 529; they get 503.
pub fn error_response(
    format: ApiFormat,
    status: StatusCode,
    message: &str,
) -> http::Response<axum::body::Body> {
    let status = if format == ApiFormat::OpenAi && status.as_u16() == 529 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let body = error_json(format, error_kind(format, status), message).to_string();
    let mut resp = http::Response::new(axum::body::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A mid-stream error event in the caller's stream format.
pub fn stream_error(format: ApiFormat, kind: &str, message: &str) -> Bytes {
    let mut out = BytesMut::new();
    let body = error_json(format, kind, message).to_string();
    match format {
        ApiFormat::OpenAi => sse::write_data(&mut out, body.as_bytes()),
        ApiFormat::Anthropic => sse::write_event(&mut out, "error", body.as_bytes()),
    }
    out.freeze()
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
    fn kinds_by_format() {
        assert_eq!(
            error_kind(ApiFormat::Anthropic, StatusCode::from_u16(529).unwrap()),
            "overloaded_error"
        );
        assert_eq!(
            error_kind(ApiFormat::OpenAi, StatusCode::TOO_MANY_REQUESTS),
            "rate_limit_error"
        );
        assert_eq!(
            error_kind(ApiFormat::OpenAi, StatusCode::BAD_GATEWAY),
            "server_error"
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

    #[test]
    fn openai_never_sees_529() {
        let r = error_response(
            ApiFormat::OpenAi,
            StatusCode::from_u16(529).unwrap(),
            "busy",
        );
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
