//! Bedrock ConverseStream events → OpenAI chat completion chunks.

use std::collections::HashMap;

use serde_json::Value;

use super::{OItem, openai_chunk, text_delta, tool_delta, usage_chunk};
use crate::format::openai as o;
use crate::translate::bedrock_stop_to_openai;

/// Bedrock ConverseStream events → OpenAI chunks.
#[derive(Debug, Default)]
pub(super) struct BedrockToOpenAi {
    pub(super) id: String,
    pub(super) model: String,
    pub(super) created: u64,
    pub(super) tools: HashMap<u64, u32>,
    pub(super) next_tool: u32,
    pub(super) stopped: bool,
}

impl BedrockToOpenAi {
    pub(super) fn new(model: &str, created: u64) -> Self {
        BedrockToOpenAi {
            model: model.to_string(),
            created,
            id: format!("bedrock-{created}"),
            ..Default::default()
        }
    }

    pub(super) fn push(&mut self, kind: &str, p: &Value) -> Vec<OItem> {
        let (id, model, created) = (self.id.as_str(), self.model.as_str(), self.created);
        let block = p
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match kind {
            "messageStart" => {
                let delta = o::Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Default::default()
                };
                vec![openai_chunk(id, model, created, delta, None)]
            }
            "contentBlockStart" => match p.get("start").and_then(|s| s.get("toolUse")) {
                Some(tu) => {
                    let tool = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(block, tool);
                    let d = tool_delta(
                        tool,
                        tu.get("toolUseId")
                            .and_then(Value::as_str)
                            .map(String::from),
                        tu.get("name").and_then(Value::as_str).map(String::from),
                        String::new(),
                    );
                    vec![openai_chunk(id, model, created, d, None)]
                }
                None => Vec::new(),
            },
            "contentBlockDelta" => {
                let delta = p.get("delta").unwrap_or(&Value::Null);
                if let Some(t) = delta.get("text").and_then(Value::as_str) {
                    return vec![openai_chunk(
                        id,
                        model,
                        created,
                        text_delta(t.to_string()),
                        None,
                    )];
                }
                if let Some(input) = delta
                    .get("toolUse")
                    .and_then(|t| t.get("input"))
                    .and_then(Value::as_str)
                    && let Some(&tool) = self.tools.get(&block)
                {
                    let d = tool_delta(tool, None, None, input.to_string());
                    return vec![openai_chunk(id, model, created, d, None)];
                }
                Vec::new()
            }
            "messageStop" => {
                self.stopped = true;
                let f = bedrock_stop_to_openai(
                    p.get("stopReason")
                        .and_then(Value::as_str)
                        .unwrap_or("end_turn"),
                );
                vec![openai_chunk(
                    id,
                    model,
                    created,
                    o::Delta::default(),
                    Some(f.into()),
                )]
            }
            "metadata" => {
                let usage = p
                    .get("usage")
                    .and_then(|u| {
                        serde_json::from_value::<crate::format::bedrock::BedrockUsage>(u.clone())
                            .ok()
                    })
                    .map(|u| u.normalize())
                    .unwrap_or_default();
                vec![usage_chunk(id, model, created, usage), OItem::Done]
            }
            _ => Vec::new(),
        }
    }
}
