//! Anthropic message events ↔ OpenAI chat completion chunks, both ways.

use std::collections::HashMap;

use serde_json::json;

use super::{Extra, OItem, openai_chunk, text_delta, tool_delta, usage_chunk};
use crate::format::Usage;
use crate::format::anthropic as a;
use crate::format::openai as o;
use crate::translate::errors::provider_stream_error;
use crate::translate::{anthropic_stop_to_openai, openai_finish_to_anthropic};

/// Anthropic events → OpenAI chunks.
#[derive(Debug, Default)]
pub(super) struct AnthropicToOpenAi {
    pub(super) id: String,
    pub(super) model: String,
    pub(super) created: u64,
    pub(super) tools: HashMap<u32, u32>,
    pub(super) next_tool: u32,
    pub(super) usage: a::Usage,
}

impl AnthropicToOpenAi {
    pub(super) fn push(&mut self, event: a::StreamEvent) -> Vec<OItem> {
        let (id, model, created) = (self.id.as_str(), self.model.as_str(), self.created);
        match event {
            a::StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage = message.usage;
                let delta = o::Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Default::default()
                };
                vec![openai_chunk(&self.id, &self.model, created, delta, None)]
            }
            a::StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block.kind.as_str() {
                "tool_use" => {
                    let tool = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(index, tool);
                    let delta =
                        tool_delta(tool, content_block.id, content_block.name, String::new());
                    vec![openai_chunk(id, model, created, delta, None)]
                }
                "text" => match content_block.text.filter(|t| !t.is_empty()) {
                    Some(t) => vec![openai_chunk(id, model, created, text_delta(t), None)],
                    None => Vec::new(),
                },
                _ => Vec::new(),
            },
            a::StreamEvent::ContentBlockDelta { index, delta } => match delta.kind.as_str() {
                "text_delta" => vec![openai_chunk(
                    id,
                    model,
                    created,
                    text_delta(delta.text.unwrap_or_default()),
                    None,
                )],
                "input_json_delta" => match self.tools.get(&index) {
                    Some(&tool) => {
                        let d =
                            tool_delta(tool, None, None, delta.partial_json.unwrap_or_default());
                        vec![openai_chunk(id, model, created, d, None)]
                    }
                    None => Vec::new(),
                },
                _ => Vec::new(),
            },
            a::StreamEvent::MessageDelta { delta, usage } => {
                self.usage.output_tokens = usage.output_tokens;
                if let Some(v) = usage.input_tokens {
                    self.usage.input_tokens = v;
                }
                if let Some(v) = usage.cache_read_input_tokens {
                    self.usage.cache_read_input_tokens = Some(v);
                }
                if let Some(v) = usage.cache_creation_input_tokens {
                    self.usage.cache_creation_input_tokens = Some(v);
                }
                let finish =
                    anthropic_stop_to_openai(delta.stop_reason.as_deref().unwrap_or("end_turn"));
                vec![openai_chunk(
                    id,
                    model,
                    created,
                    o::Delta::default(),
                    Some(finish.into()),
                )]
            }
            a::StreamEvent::MessageStop => {
                vec![
                    usage_chunk(id, model, created, self.usage.normalize()),
                    OItem::Done,
                ]
            }
            a::StreamEvent::Error { error } => {
                vec![OItem::Error(provider_stream_error(
                    &error.kind,
                    error.message,
                ))]
            }
            a::StreamEvent::ContentBlockStop { .. } | a::StreamEvent::Ping => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum OpenBlock {
    Text(u32),
    Tool(u32),
}

/// OpenAI chunks → Anthropic events.
#[derive(Debug, Default)]
pub(super) struct OpenAiToAnthropic {
    pub(super) started: bool,
    pub(super) open: Option<OpenBlock>,
    pub(super) next_block: u32,
    pub(super) tools: HashMap<u32, u32>,
    pub(super) finish: Option<String>,
    pub(super) refused: bool,
    pub(super) usage: Option<Usage>,
}

impl OpenAiToAnthropic {
    pub(super) fn start(&mut self, id: &str, model: &str, events: &mut Vec<a::StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        events.push(a::StreamEvent::MessageStart {
            message: a::MessagesResponse {
                id: id.to_string(),
                kind: "message".into(),
                role: "assistant".into(),
                model: model.to_string(),
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: a::Usage {
                    input_tokens: 0,
                    output_tokens: 0,
                    ..Default::default()
                },
                extra: Extra::new(),
            },
        });
    }

    pub(super) fn close(&mut self, events: &mut Vec<a::StreamEvent>) {
        if let Some(b) = self.open.take() {
            let index = match b {
                OpenBlock::Text(i) | OpenBlock::Tool(i) => i,
            };
            events.push(a::StreamEvent::ContentBlockStop { index });
        }
    }

    pub(super) fn text(&mut self, text: String, events: &mut Vec<a::StreamEvent>) {
        let index = match self.open {
            Some(OpenBlock::Text(i)) => i,
            _ => {
                self.close(events);
                let i = self.next_block;
                self.next_block += 1;
                self.open = Some(OpenBlock::Text(i));
                events.push(a::StreamEvent::ContentBlockStart {
                    index: i,
                    content_block: a::Block::text(""),
                });
                i
            }
        };
        events.push(a::StreamEvent::ContentBlockDelta {
            index,
            delta: a::BlockDelta {
                kind: "text_delta".into(),
                text: Some(text),
                ..Default::default()
            },
        });
    }

    /// Returns the events plus an error to write in the caller's format.
    pub(super) fn push(
        &mut self,
        item: OItem,
    ) -> (Vec<a::StreamEvent>, Option<switchboard_core::Error>) {
        let mut events = Vec::new();
        match item {
            OItem::Chunk(c) => {
                self.start(&c.id, &c.model, &mut events);
                if let Some(u) = &c.usage {
                    self.usage = Some(u.normalize());
                }
                for choice in c.choices.into_iter().filter(|c| c.index == 0) {
                    let d = choice.delta;
                    if let Some(r) = d.refusal.filter(|s| !s.is_empty()) {
                        self.refused = true;
                        self.text(r, &mut events);
                    }
                    if let Some(t) = d.content.filter(|s| !s.is_empty()) {
                        self.text(t, &mut events);
                    }
                    for tc in d.tool_calls.into_iter().flatten() {
                        let f = tc.function.unwrap_or_default();
                        let index = match self.tools.get(&tc.index) {
                            Some(&i) if tc.id.is_none() => i,
                            _ => {
                                self.close(&mut events);
                                let i = self.next_block;
                                self.next_block += 1;
                                self.tools.insert(tc.index, i);
                                self.open = Some(OpenBlock::Tool(i));
                                events.push(a::StreamEvent::ContentBlockStart {
                                    index: i,
                                    content_block: a::Block {
                                        kind: "tool_use".into(),
                                        id: Some(
                                            tc.id.unwrap_or_else(|| format!("toolu_{}", tc.index)),
                                        ),
                                        name: Some(f.name.clone().unwrap_or_default()),
                                        input: Some(json!({})),
                                        ..Default::default()
                                    },
                                });
                                i
                            }
                        };
                        if let Some(args) = f.arguments.filter(|s| !s.is_empty()) {
                            events.push(a::StreamEvent::ContentBlockDelta {
                                index,
                                delta: a::BlockDelta {
                                    kind: "input_json_delta".into(),
                                    partial_json: Some(args),
                                    ..Default::default()
                                },
                            });
                        }
                    }
                    if let Some(f) = choice.finish_reason {
                        self.finish = Some(f);
                    }
                }
                (events, None)
            }
            OItem::Done => {
                self.start("msg_gateway", "", &mut events);
                self.close(&mut events);
                let stop = if self.refused {
                    "refusal"
                } else {
                    openai_finish_to_anthropic(self.finish.as_deref().unwrap_or("stop"))
                };
                let u = self.usage.unwrap_or_default();
                events.push(a::StreamEvent::MessageDelta {
                    delta: a::MessageDeltaBody {
                        stop_reason: Some(stop.into()),
                        stop_sequence: None,
                    },
                    usage: a::DeltaUsage {
                        output_tokens: u.output,
                        input_tokens: Some(u.uncached_input()),
                        cache_creation_input_tokens: Some(u.cache_write),
                        cache_read_input_tokens: Some(u.cache_read),
                    },
                });
                events.push(a::StreamEvent::MessageStop);
                (events, None)
            }
            OItem::Error(e) => (events, Some(e)),
        }
    }
}
