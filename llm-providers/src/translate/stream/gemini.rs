//! Gemini `streamGenerateContent` responses → OpenAI chat completion chunks.

use super::{OItem, openai_chunk, text_delta, tool_delta, usage_chunk};
use crate::format::Usage;
use crate::format::gemini as g;
use crate::format::openai as o;
use crate::translate::gemini_finish_to_openai;

/// Gemini stream responses → OpenAI chunks.
#[derive(Debug, Default)]
pub(super) struct GeminiToOpenAi {
    pub(super) id: String,
    pub(super) model: String,
    pub(super) created: u64,
    pub(super) started: bool,
    pub(super) next_tool: usize,
    pub(super) finish: Option<String>,
    pub(super) usage: Option<Usage>,
}

impl GeminiToOpenAi {
    pub(super) fn new(model: &str, created: u64) -> Self {
        GeminiToOpenAi {
            model: model.to_string(),
            created,
            id: format!("gemini-{created}"),
            ..Default::default()
        }
    }

    pub(super) fn push(&mut self, r: &g::GenerateContentResponse) -> Vec<OItem> {
        let mut items = Vec::new();
        if !self.started {
            self.started = true;
            if let Some(id) = &r.response_id {
                self.id = id.clone();
            }
            if let Some(m) = &r.model_version {
                self.model = m.clone();
            }
            let delta = o::Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Default::default()
            };
            items.push(openai_chunk(
                &self.id,
                &self.model,
                self.created,
                delta,
                None,
            ));
        }
        if let Some(u) = &r.usage_metadata {
            self.usage = Some(u.normalize());
        }
        let Some(cand) = r.candidates.first() else {
            return items;
        };
        let parts = cand
            .content
            .as_ref()
            .map(|c| c.parts.as_slice())
            .unwrap_or(&[]);
        let (text, calls) = crate::translate::gemini::split_parts(parts, self.next_tool);
        if !text.is_empty() {
            items.push(openai_chunk(
                &self.id,
                &self.model,
                self.created,
                text_delta(text),
                None,
            ));
        }
        for call in calls {
            let index = self.next_tool as u32;
            self.next_tool += 1;
            let d = tool_delta(
                index,
                Some(call.id),
                Some(call.function.name),
                call.function.arguments,
            );
            items.push(openai_chunk(&self.id, &self.model, self.created, d, None));
        }
        if let Some(f) = &cand.finish_reason {
            let f = gemini_finish_to_openai(f, self.next_tool > 0).to_string();
            self.finish = Some(f.clone());
            items.push(openai_chunk(
                &self.id,
                &self.model,
                self.created,
                o::Delta::default(),
                Some(f),
            ));
        }
        items
    }

    pub(super) fn end(&mut self) -> Vec<OItem> {
        vec![
            usage_chunk(
                &self.id,
                &self.model,
                self.created,
                self.usage.unwrap_or_default(),
            ),
            OItem::Done,
        ]
    }
}
