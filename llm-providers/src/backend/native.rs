//! The request in a provider's own API, and a provider's complete answer in the caller's.

use bytes::Bytes;

use super::ChatInput;
use crate::format::anthropic as a;
use crate::format::openai as o;
use crate::format::{ApiFormat, Usage, bedrock, gemini};
use crate::provider::Member;
use crate::translate::stream::UpstreamFormat;
use crate::translate::{self, unix_now};
use crate::{Error, Result};

/// The request body in the member's native format.
///
/// A request already in the member's format is changed in place (its model name) rather than
/// copied: the caller's model name has been looked up by then, and what is set is the same for
/// every attempt at a member of this format.
pub(super) fn native_body(input: &mut ChatInput, member: &Member) -> Result<Bytes> {
    let model = &*member.model;
    let native = member.provider.native();
    // A request kept as bytes, for a provider of another API: translated from the tree, which
    // is kept for further attempts.
    if native != UpstreamFormat::OpenAi
        && let ChatInput::Passed(p) = input
    {
        let typed = p.typed().map_err(|e| Error::invalid_body(&e))?;
        *input = ChatInput::OpenAi(typed);
    }
    let v = match (input, native) {
        (ChatInput::OpenAi(r), UpstreamFormat::OpenAi) => {
            r.model = model.to_string();
            if r.stream == Some(true) {
                // Always ask for usage; the translator hides it if the caller did not.
                r.stream_options
                    .get_or_insert_with(Default::default)
                    .include_usage = Some(true);
            }
            serde_json::to_vec(&*r)?
        }
        (ChatInput::OpenAi(r), UpstreamFormat::Anthropic) => {
            serde_json::to_vec(&translate::anthropic::chat_to_messages(r, model))?
        }
        (ChatInput::OpenAi(r), UpstreamFormat::Gemini) => {
            serde_json::to_vec(&translate::gemini::chat_to_generate(r))?
        }
        (ChatInput::OpenAi(r), UpstreamFormat::Bedrock) => {
            serde_json::to_vec(&translate::bedrock::chat_to_converse(r))?
        }
        // OpenAI-compatible providers only (made typed above for the others).
        (ChatInput::Passed(p), _) => return Ok(p.body_for(model)?),
        (ChatInput::Anthropic(r), UpstreamFormat::Anthropic) => {
            r.model = model.to_string();
            serde_json::to_vec(&*r)?
        }
        (ChatInput::Anthropic(r), native) => {
            let chat = translate::anthropic::messages_to_chat(r, model);
            match native {
                UpstreamFormat::Gemini => {
                    serde_json::to_vec(&translate::gemini::chat_to_generate(&chat))?
                }
                UpstreamFormat::Bedrock => {
                    serde_json::to_vec(&translate::bedrock::chat_to_converse(&chat))?
                }
                _ => serde_json::to_vec(&chat)?,
            }
        }
    };
    Ok(Bytes::from(v))
}

/// A complete native response in the caller's format, with its usage.
pub(super) fn translate_body(
    format: ApiFormat,
    native: UpstreamFormat,
    bytes: &Bytes,
    model: &str,
) -> Result<(Bytes, Option<Usage>)> {
    let proto = |e: serde_json::Error| Error::Protocol(e.to_string());
    // `unix_now()` (a translated reply's `created`) is read only where a reply is translated:
    // one clock read fewer for a reply passed on as it came (issue 19).
    let chat: o::ChatResponse = match native {
        UpstreamFormat::Anthropic => {
            let r: a::MessagesResponse = serde_json::from_slice(bytes).map_err(proto)?;
            let usage = Some(r.usage.normalize());
            if format == ApiFormat::Anthropic {
                return Ok((bytes.clone(), usage));
            }
            let chat = translate::anthropic::messages_response_to_chat(&r, unix_now());
            return Ok((Bytes::from(serde_json::to_vec(&chat)?), usage));
        }
        UpstreamFormat::OpenAi => {
            if format == ApiFormat::OpenAi {
                // Passed on as it came: read only its shape and usage (a tree of every field,
                // with `flatten` buffering, was most of this function's cost).
                // UTF-8 checked once for the whole body, not again for each string.
                let text = std::str::from_utf8(bytes)
                    .map_err(|e| Error::Protocol(format!("the reply is not UTF-8: {e}")))?;
                let r: PassedReply<'_> = serde_json::from_str(text).map_err(proto)?;
                return Ok((bytes.clone(), r.usage.map(|u| u.normalize())));
            }
            serde_json::from_slice(bytes).map_err(proto)?
        }
        UpstreamFormat::Gemini => {
            let r: gemini::GenerateContentResponse =
                serde_json::from_slice(bytes).map_err(proto)?;
            translate::gemini::generate_to_chat(&r, model, unix_now())
        }
        UpstreamFormat::Bedrock => {
            let r: bedrock::ConverseResponse = serde_json::from_slice(bytes).map_err(proto)?;
            let usage = r.usage.as_ref().map(bedrock::BedrockUsage::normalize);
            let chat = translate::bedrock::converse_to_chat(&r, model, unix_now());
            let out = match format {
                ApiFormat::OpenAi => serde_json::to_vec(&chat)?,
                ApiFormat::Anthropic => {
                    serde_json::to_vec(&translate::anthropic::chat_response_to_messages(&chat))?
                }
            };
            return Ok((Bytes::from(out), usage));
        }
    };
    let usage = chat.usage.as_ref().map(o::Usage::normalize);
    let out = match format {
        ApiFormat::OpenAi => serde_json::to_vec(&chat)?,
        ApiFormat::Anthropic => {
            serde_json::to_vec(&translate::anthropic::chat_response_to_messages(&chat))?
        }
    };
    Ok((Bytes::from(out), usage))
}

/// An OpenAI chat completion passed on to an OpenAI caller unchanged: checked for the shape
/// [`o::ChatResponse`] requires (an `id` string, `choices` whose `message` has a `role`
/// string), its usage read, the rest skipped without building anything.
#[derive(serde::Deserialize)]
struct PassedReply<'a> {
    #[serde(borrow)]
    #[allow(dead_code, reason = "read for the shape check only")]
    id: std::borrow::Cow<'a, str>,
    #[allow(dead_code, reason = "read for the shape check only")]
    choices: Vec<PassedChoice<'a>>,
    #[serde(default)]
    usage: Option<PassedUsage>,
}

#[derive(serde::Deserialize)]
struct PassedChoice<'a> {
    #[serde(borrow)]
    #[allow(dead_code, reason = "read for the shape check only")]
    message: PassedMessage<'a>,
}

#[derive(serde::Deserialize)]
struct PassedMessage<'a> {
    #[serde(borrow)]
    #[allow(dead_code, reason = "read for the shape check only")]
    role: std::borrow::Cow<'a, str>,
}

/// The fields of [`o::Usage`] that [`o::Usage::normalize`] reads.
#[derive(serde::Deserialize)]
struct PassedUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PassedDetails>,
}

#[derive(serde::Deserialize)]
struct PassedDetails {
    #[serde(default)]
    cached_tokens: u64,
}

impl PassedUsage {
    fn normalize(self) -> Usage {
        Usage {
            input: self.prompt_tokens,
            output: self.completion_tokens,
            cache_read: self.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            cache_write: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openai_reply_to_an_openai_caller_passes_as_it_came_with_its_usage() {
        let reply = Bytes::from_static(
            br#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","x":{"y":[1,2]}},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}},"service_tier":"default"}"#,
        );
        let (out, usage) =
            translate_body(ApiFormat::OpenAi, UpstreamFormat::OpenAi, &reply, "m").unwrap();
        assert_eq!(out, reply);
        let full: o::ChatResponse = serde_json::from_slice(&reply).unwrap();
        assert_eq!(usage, full.usage.as_ref().map(o::Usage::normalize));
        assert_eq!(usage.unwrap().cache_read, 2);
        // No usage at all, or `null`: none.
        for r in [
            &br#"{"id":"c","choices":[]}"#[..],
            br#"{"id":"c","choices":[],"usage":null}"#,
        ] {
            let (_, u) = translate_body(
                ApiFormat::OpenAi,
                UpstreamFormat::OpenAi,
                &Bytes::from_static(r),
                "m",
            )
            .unwrap();
            assert_eq!(u, None);
        }
    }

    #[test]
    fn a_reply_of_another_shape_is_refused_as_the_full_parse_refused_it() {
        for bad in [
            &b"<html>bad gateway</html>"[..],
            br#"{"choices":[]}"#,
            br#"{"id":"c"}"#,
            br#"{"id":"c","choices":[{"message":{"content":"no role"}}]}"#,
            br#"{"id":1,"choices":[]}"#,
            b"{\"id\":\"c\xff\",\"choices\":[]}",
            b"{\"id\":\"c\",\"choices\":[]} \xe9",
        ] {
            assert!(
                serde_json::from_slice::<o::ChatResponse>(bad).is_err(),
                "the full parse accepts {}",
                String::from_utf8_lossy(bad)
            );
            let r = translate_body(
                ApiFormat::OpenAi,
                UpstreamFormat::OpenAi,
                &Bytes::from_static(bad),
                "m",
            );
            assert!(
                matches!(r, Err(Error::Protocol(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
