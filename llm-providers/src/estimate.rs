//! Token estimates made by the gateway itself: for token counting where the provider cannot
//! count (`/v1/messages/count_tokens`, `/v1/responses/input_tokens`) and for routing rules
//! (`llm.prompt_tokens`).

use serde_json::Value;

/// Tokens counted for one image (Anthropic's cost of a ~1.15 megapixel image, its upper bound
/// before resizing).
pub const IMAGE_TOKENS: u64 = 1600;

/// The gateway's token estimate for a counting request's body: the UTF-8 bytes of every string
/// in it except `model`, divided by four and rounded up, plus [`IMAGE_TOKENS`] per image block
/// (`image`, `input_image`, `image_url`; their data is not counted as text).
pub fn estimate_tokens(body: &serde_json::Map<String, Value>) -> u64 {
    fn walk(v: &Value, bytes: &mut u64, images: &mut u64) {
        match v {
            Value::String(s) => *bytes += s.len() as u64,
            Value::Array(a) => a.iter().for_each(|v| walk(v, bytes, images)),
            Value::Object(o) => {
                let kind = o.get("type").and_then(Value::as_str);
                if matches!(kind, Some("image" | "input_image" | "image_url")) {
                    *images += 1;
                    return;
                }
                o.values().for_each(|v| walk(v, bytes, images));
            }
            _ => {}
        }
    }
    let (mut bytes, mut images) = (0, 0);
    for (k, v) in body {
        if k != "model" {
            walk(v, &mut bytes, &mut images);
        }
    }
    bytes.div_ceil(4) + images * IMAGE_TOKENS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_text_bytes_and_images() {
        let body = serde_json::json!({
            "model": "a-very-long-model-name-that-is-not-counted",
            "system": "12345678",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "abcd"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
            ]}]
        });
        let Value::Object(body) = body else {
            unreachable!()
        };
        // "12345678" + "user" + "text" + "abcd" = 20 bytes → 5 tokens, plus one image.
        assert_eq!(estimate_tokens(&body), 5 + IMAGE_TOKENS);
    }
}
