//! Stateful stream translation: provider stream bytes in, caller SSE bytes out, event by event.
//!
//! A [`StreamTranslator`] decodes the provider's framing (SSE, or AWS event-stream for
//! Bedrock), turns each event into OpenAI chunks or Anthropic events, translates between the
//! two when the caller speaks the other format, and writes caller-format SSE. Only the state a
//! translation needs (block ↔ tool-call indexes, stop reason, usage) is kept, never the stream.
//! It also observes usage for accounting and strips the usage chunk the gateway requested when
//! the caller did not ask for it. OpenAI events for an OpenAI caller are not translated: they
//! are passed on as the provider wrote them, after a borrowed read of content, usage and error.
//!
//! This file holds the translator (framing, dispatch, caller-format writing); the event
//! conversions live with their API: `anthropic` (Anthropic ↔ OpenAI, both ways), `gemini`
//! and `bedrock` (→ OpenAI, the pivot).

mod anthropic;
mod bedrock;
mod gemini;

use bytes::BytesMut;
use serde_json::Value;
use serde_json::value::RawValue;

use self::anthropic::{AnthropicToOpenAi, OpenAiToAnthropic};
use self::bedrock::BedrockToOpenAi;
use self::gemini::GeminiToOpenAi;
use crate::eventstream;
use crate::format::anthropic as a;
use crate::format::gemini as g;
use crate::format::openai as o;
use crate::format::{ApiFormat, Extra, Present, Usage};
use crate::sse;
use crate::translate::errors::{broken_stream, provider_stream_error, stream_error};

/// The stream format a provider answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFormat {
    /// OpenAI chat completion chunks over SSE.
    OpenAi,
    /// Anthropic message events over SSE.
    Anthropic,
    /// Gemini `streamGenerateContent?alt=sse`.
    Gemini,
    /// Bedrock ConverseStream (AWS event-stream framing).
    Bedrock,
}

/// An OpenAI-side stream item.
#[derive(Debug)]
enum OItem {
    Chunk(Box<o::ChatChunk>),
    Done,
    /// An error the provider reported in its stream.
    Error(switchboard_core::Error),
}

/// Translates one provider stream into the caller's format.
#[derive(Debug)]
pub struct StreamTranslator {
    client: ApiFormat,
    upstream: UpstreamFormat,
    include_usage: bool,
    sse: sse::Parser,
    es: eventstream::Decoder,
    events: Vec<sse::Event>,
    frames: Vec<eventstream::Message>,
    a2o: AnthropicToOpenAi,
    o2a: OpenAiToAnthropic,
    gem: GeminiToOpenAi,
    bed: BedrockToOpenAi,
    anthropic_usage: a::Usage,
    usage: Option<Usage>,
    complete: bool,
    errored: bool,
    content_seen: bool,
    /// The provider's name, for log lines.
    provider: Box<str>,
}

impl StreamTranslator {
    /// A translator from `upstream` to `client`. `include_usage`: the OpenAI caller asked for
    /// the usage chunk. `model` names the model where the provider stream does not;
    /// `created` is the Unix time put in synthesized OpenAI chunks.
    pub fn new(
        client: ApiFormat,
        upstream: UpstreamFormat,
        include_usage: bool,
        model: &str,
        created: u64,
    ) -> Self {
        StreamTranslator {
            client,
            upstream,
            include_usage,
            sse: sse::Parser::new(),
            es: eventstream::Decoder::new(),
            events: Vec::new(),
            frames: Vec::new(),
            a2o: AnthropicToOpenAi {
                created,
                ..Default::default()
            },
            o2a: OpenAiToAnthropic::default(),
            gem: GeminiToOpenAi::new(model, created),
            bed: BedrockToOpenAi::new(model, created),
            anthropic_usage: a::Usage::default(),
            usage: None,
            complete: false,
            errored: false,
            content_seen: false,
            provider: Box::default(),
        }
    }

    /// Bounds one provider event (an SSE line or event, an event-stream message) to `max`
    /// bytes (`llm.max_event_bytes`); a larger one ends the stream with an error event.
    /// `provider` names the provider in log lines.
    pub fn with_max_event(mut self, max: usize, provider: &str) -> Self {
        self.provider = provider.into();
        self.sse = sse::Parser::with_limit(max);
        self.es = eventstream::Decoder::with_limit(max);
        self
    }

    /// Usage observed so far (final once the stream completed).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// True once generated content (text or tool call) has been written for the caller.
    pub fn content_seen(&self) -> bool {
        self.content_seen
    }

    /// True once the provider ended the stream properly.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// True once an error was written into the stream.
    pub fn is_errored(&self) -> bool {
        self.errored
    }

    /// Feeds provider bytes; writes caller bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut) {
        if self.complete || self.errored {
            return;
        }
        if self.upstream == UpstreamFormat::Bedrock {
            let mut frames = std::mem::take(&mut self.frames);
            if let Err(e) = self.es.feed(input, &mut frames) {
                tracing::warn!(provider = %self.provider, error = %e, "bedrock stream framing error");
                self.fail(out, broken_stream("malformed upstream stream"));
            }
            for f in frames.drain(..) {
                self.on_bedrock(f, out);
            }
            self.frames = frames;
        } else {
            let mut events = std::mem::take(&mut self.events);
            self.sse.feed(input, &mut events);
            for ev in events.drain(..) {
                self.on_sse(ev, out);
            }
            self.events = events;
            if self.sse.overflowed() {
                tracing::warn!(provider = %self.provider, "provider stream event larger than llm.max_event_bytes");
                self.fail(out, broken_stream("upstream stream event too large"));
            }
        }
    }

    /// The provider stream ended (cleanly or not): writes the closing events, or an error
    /// event when the provider stopped before finishing.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.upstream != UpstreamFormat::Bedrock && !self.complete && !self.errored {
            let mut events = std::mem::take(&mut self.events);
            self.sse.finish(&mut events);
            for ev in events.drain(..) {
                self.on_sse(ev, out);
            }
        }
        if self.complete || self.errored {
            return;
        }
        // Providers that have no end marker of their own finish here.
        let items = match self.upstream {
            UpstreamFormat::Gemini if self.gem.finish.is_some() => self.gem.end(),
            UpstreamFormat::Bedrock if self.bed.stopped => vec![OItem::Done],
            UpstreamFormat::OpenAi if self.o2a.finish.is_some() => vec![OItem::Done],
            _ => Vec::new(),
        };
        for item in items {
            self.on_oitem(item, None, out);
        }
        if !self.complete && !self.errored {
            self.fail(out, broken_stream("upstream stream ended unexpectedly"));
        }
    }

    fn fail(&mut self, out: &mut BytesMut, error: switchboard_core::Error) {
        if !self.errored {
            out.extend_from_slice(&stream_error(self.client, &error));
            self.errored = true;
        }
    }

    fn on_sse(&mut self, ev: sse::Event, out: &mut BytesMut) {
        if self.complete || self.errored {
            return;
        }
        match self.upstream {
            UpstreamFormat::OpenAi => {
                if ev.data.trim() == "[DONE]" {
                    self.on_oitem(OItem::Done, None, out);
                    return;
                }
                if self.client == ApiFormat::OpenAi {
                    self.pass_openai(&ev.data, out);
                    return;
                }
                // For an Anthropic caller: straight into the chunk type (every event pays for
                // this parse); an error event lands in its `extra` keys, or is not
                // chunk-shaped at all.
                match serde_json::from_str::<o::ChatChunk>(&ev.data) {
                    Ok(c) => match c.extra.get("error") {
                        Some(err) => {
                            self.on_oitem(OItem::Error(error_parts(err)), None, out);
                        }
                        None => self.on_oitem(OItem::Chunk(Box::new(c)), Some(&ev.data), out),
                    },
                    Err(e) => match serde_json::from_str::<Value>(&ev.data) {
                        Ok(Value::Object(mut v)) if v.contains_key("error") => {
                            let err = v.remove("error").unwrap_or_default();
                            self.on_oitem(OItem::Error(error_parts(&err)), None, out);
                        }
                        _ => tracing::debug!(error = %e, "skipping unparsable chunk"),
                    },
                }
            }
            UpstreamFormat::Anthropic => {
                let Ok(event) = serde_json::from_str::<a::StreamEvent>(&ev.data) else {
                    // Unknown event types are skipped, as Anthropic asks clients to do.
                    return;
                };
                self.observe_anthropic(&event);
                match self.client {
                    ApiFormat::Anthropic => {
                        if matches!(event, a::StreamEvent::ContentBlockDelta { .. }) {
                            self.content_seen = true;
                        }
                        match &event {
                            a::StreamEvent::MessageStop => self.complete = true,
                            a::StreamEvent::Error { .. } => self.errored = true,
                            _ => {}
                        }
                        sse::write_event(out, event.name(), ev.data.as_bytes());
                    }
                    ApiFormat::OpenAi => {
                        for item in self.a2o.push(event) {
                            self.on_oitem(item, None, out);
                        }
                    }
                }
            }
            UpstreamFormat::Gemini => {
                let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                    return;
                };
                if let Some(err) = v.get("error") {
                    self.on_oitem(OItem::Error(error_parts(err)), None, out);
                    return;
                }
                let Ok(resp) = serde_json::from_value::<g::GenerateContentResponse>(v) else {
                    return;
                };
                for item in self.gem.push(&resp) {
                    self.on_oitem(item, None, out);
                }
            }
            UpstreamFormat::Bedrock => {}
        }
    }

    /// An OpenAI event for an OpenAI caller: passed on as the provider wrote it, after a
    /// borrowed read of what the gateway needs ([`Passed`]). Only a usage chunk the caller did
    /// not ask for changes: dropped, or re-encoded without its usage when it carries choices.
    fn pass_openai(&mut self, data: &str, out: &mut BytesMut) {
        let chunk = match serde_json::from_str::<Passed>(data) {
            Ok(c) => c,
            Err(e) => {
                match serde_json::from_str::<Value>(data) {
                    Ok(Value::Object(mut v)) if v.contains_key("error") => {
                        let err = v.remove("error").unwrap_or_default();
                        self.on_oitem(OItem::Error(error_parts(&err)), None, out);
                    }
                    _ => tracing::debug!(error = %e, "skipping unparsable chunk"),
                }
                return;
            }
        };
        if let Some(err) = chunk.error.0 {
            let err = serde_json::from_str::<Value>(err.get()).unwrap_or_default();
            self.on_oitem(OItem::Error(error_parts(&err)), None, out);
            return;
        }
        if chunk.choices.iter().any(PassedChoice::has_content) {
            self.content_seen = true;
        }
        let Some(usage) = chunk.usage else {
            sse::write_data(out, data.as_bytes());
            return;
        };
        self.usage = Some(usage.normalize());
        if self.include_usage {
            sse::write_data(out, data.as_bytes());
        } else if !chunk.choices.is_empty() {
            // The caller did not ask for usage: the gateway did, so hide it. Rare (providers
            // send usage in a chunk of its own), so the typed tree is fine here.
            if let Ok(mut c) = serde_json::from_str::<o::ChatChunk>(data) {
                c.usage = None;
                write_json(out, None, &c);
            }
        }
    }

    fn on_bedrock(&mut self, f: eventstream::Message, out: &mut BytesMut) {
        if self.complete || self.errored {
            return;
        }
        let payload: Value = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
        if f.header(":message-type") == Some("exception")
            || f.header(":message-type") == Some("error")
        {
            let kind = f
                .header(":exception-type")
                .or(f.header(":error-code"))
                .unwrap_or("");
            let message = payload
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream stream error")
                .to_string();
            self.on_oitem(
                OItem::Error(provider_stream_error(kind, message)),
                None,
                out,
            );
            return;
        }
        let kind = f.header(":event-type").unwrap_or("");
        for item in self.bed.push(kind, &payload) {
            self.on_oitem(item, None, out);
        }
    }

    fn observe_anthropic(&mut self, event: &a::StreamEvent) {
        match event {
            a::StreamEvent::MessageStart { message } => {
                self.anthropic_usage = message.usage.clone();
            }
            a::StreamEvent::MessageDelta { usage, .. } => {
                let u = &mut self.anthropic_usage;
                u.output_tokens = usage.output_tokens;
                if let Some(v) = usage.input_tokens {
                    u.input_tokens = v;
                }
                if let Some(v) = usage.cache_read_input_tokens {
                    u.cache_read_input_tokens = Some(v);
                }
                if let Some(v) = usage.cache_creation_input_tokens {
                    u.cache_creation_input_tokens = Some(v);
                }
            }
            _ => return,
        }
        self.usage = Some(self.anthropic_usage.normalize());
    }

    fn on_oitem(&mut self, item: OItem, raw: Option<&str>, out: &mut BytesMut) {
        if let OItem::Chunk(c) = &item {
            // Anthropic streams were observed in their own terms (with cache writes, which the
            // OpenAI usage shape cannot carry).
            if let (Some(u), false) = (&c.usage, self.upstream == UpstreamFormat::Anthropic) {
                self.usage = Some(u.normalize());
            }
            if c.choices.iter().any(|ch| {
                ch.delta.content.as_deref().is_some_and(|s| !s.is_empty())
                    || ch.delta.tool_calls.is_some()
            }) {
                self.content_seen = true;
            }
        }
        match self.client {
            ApiFormat::OpenAi => match item {
                OItem::Chunk(mut c) => {
                    if self.include_usage || c.usage.is_none() {
                        match raw {
                            Some(raw) => sse::write_data(out, raw.as_bytes()),
                            None => write_json(out, None, &c),
                        }
                    } else if !c.choices.is_empty() {
                        // The caller did not ask for usage: the gateway did, so hide it.
                        c.usage = None;
                        write_json(out, None, &c);
                    }
                }
                OItem::Done => {
                    out.extend_from_slice(&sse::DONE);
                    self.complete = true;
                }
                OItem::Error(e) => self.fail(out, e),
            },
            ApiFormat::Anthropic => {
                let (events, error) = self.o2a.push(item);
                for e in &events {
                    if matches!(e, a::StreamEvent::MessageStop) {
                        self.complete = true;
                    }
                    write_json(out, Some(e.name()), e);
                }
                if let Some(e) = error {
                    self.fail(out, e);
                }
            }
        }
    }
}

/// What the gateway reads of an OpenAI chunk it passes on unchanged: whether it carries
/// content, its usage, an error. Borrowed; every other field is skipped unread (and reaches
/// the caller as the provider wrote it, fields the typed [`o::ChatChunk`] does not know
/// included).
#[derive(serde::Deserialize)]
struct Passed<'a> {
    #[serde(default, borrow)]
    choices: Vec<PassedChoice<'a>>,
    #[serde(default)]
    usage: Option<o::Usage>,
    #[serde(default, borrow)]
    error: Present<'a>,
}

#[derive(serde::Deserialize)]
struct PassedChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<PassedDelta<'a>>,
}

#[derive(serde::Deserialize)]
struct PassedDelta<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a RawValue>,
}

impl PassedChoice<'_> {
    /// Generated content: non-empty text or a tool call fragment (as the typed parse counts).
    fn has_content(&self) -> bool {
        self.delta
            .as_ref()
            .is_some_and(|d| d.content.is_some_and(|c| c.get() != "\"\"") || d.tool_calls.is_some())
    }
}

fn write_json<T: serde::Serialize>(out: &mut BytesMut, event: Option<&str>, v: &T) {
    let data = serde_json::to_vec(v).unwrap_or_default();
    match event {
        Some(name) => sse::write_event(out, name, &data),
        None => sse::write_data(out, &data),
    }
}

/// The error in a provider's stream error object (OpenAI's and Gemini's shapes).
fn error_parts(err: &Value) -> switchboard_core::Error {
    let kind = err
        .get("type")
        .and_then(Value::as_str)
        .or(err.get("status").and_then(Value::as_str))
        .unwrap_or("api_error");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("upstream stream error");
    provider_stream_error(kind, message.to_string())
}

fn openai_chunk(
    id: &str,
    model: &str,
    created: u64,
    delta: o::Delta,
    finish: Option<String>,
) -> OItem {
    OItem::Chunk(Box::new(o::ChatChunk {
        id: id.to_string(),
        object: "chat.completion.chunk".into(),
        created,
        model: model.to_string(),
        choices: vec![o::ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
            extra: Extra::new(),
        }],
        usage: None,
        extra: Extra::new(),
    }))
}

fn usage_chunk(id: &str, model: &str, created: u64, usage: Usage) -> OItem {
    OItem::Chunk(Box::new(o::ChatChunk {
        id: id.to_string(),
        object: "chat.completion.chunk".into(),
        created,
        model: model.to_string(),
        choices: Vec::new(),
        usage: Some(o::Usage::from_norm(usage)),
        extra: Extra::new(),
    }))
}

fn text_delta(text: String) -> o::Delta {
    o::Delta {
        content: Some(text),
        ..Default::default()
    }
}

fn tool_delta(index: u32, id: Option<String>, name: Option<String>, args: String) -> o::Delta {
    o::Delta {
        tool_calls: Some(vec![o::ToolCallDelta {
            index,
            kind: id.as_ref().map(|_| "function".to_string()),
            id,
            function: Some(o::FunctionCallDelta {
                name,
                arguments: Some(args),
            }),
        }]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
