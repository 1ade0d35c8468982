//! Guardrails on a streamed answer (OpenAI chat chunks, Anthropic message events), applied to
//! the text across event boundaries.
//!
//! Each text channel (an OpenAI choice, an Anthropic content block) keeps the text not yet
//! sent. After each delta, everything but the last [`Guardrails::hold_bytes`] bytes is final:
//! no match can start there and still grow (a match is at most that long), so it is checked,
//! masked and sent in the same event; a match that starts before the cut moves the cut to its
//! end. The held tail is sent, checked, when the channel ends (`finish_reason`,
//! `content_block_stop`, `[DONE]`, or the end of the stream). A `reject` match ends the
//! stream with an error event in the caller's format.

use std::collections::BTreeMap;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{Response, header};
use serde_json::{Value, json};
use switchboard_core::ApiFormat;
use switchboard_core::sse::{Event, Parser, write_data, write_event};

use super::{Guardrails, OwnedSite, Rejected, Site};
use crate::config::Direction;

/// Wraps a streamed answer in the caller's `format`.
pub fn wrap(
    g: &std::sync::Arc<Guardrails>,
    at: Site<'_>,
    format: ApiFormat,
    resp: Response<Body>,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let state = StreamState {
        g: g.clone(),
        at: OwnedSite::new(at),
        format,
        pending: BTreeMap::new(),
        template: None,
        parser: Parser::new(),
        done: false,
    };
    let frames = body.into_data_stream();
    let out = futures::stream::unfold(
        (frames, Some(()), state),
        |(mut frames, live, mut st)| async move {
            live?;
            loop {
                match frames.next().await {
                    Some(Ok(chunk)) => {
                        let out = st.feed(&chunk);
                        if st.done {
                            return Some((Ok::<Bytes, axum::Error>(out), (frames, None, st)));
                        }
                        if !out.is_empty() {
                            return Some((Ok(out), (frames, Some(()), st)));
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), (frames, None, st))),
                    None => {
                        let out = st.finish();
                        return Some((Ok(out), (frames, None, st)));
                    }
                }
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(out))
}

struct StreamState {
    g: std::sync::Arc<Guardrails>,
    at: OwnedSite,
    format: ApiFormat,
    /// Text not yet sent, per channel.
    pending: BTreeMap<u64, String>,
    /// The last OpenAI chunk, the shape for a chunk that carries a flushed tail.
    template: Option<Value>,
    parser: Parser,
    /// A reject ended the stream.
    done: bool,
}

impl StreamState {
    fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let mut events = Vec::new();
        self.parser.feed(chunk, &mut events);
        let mut out = BytesMut::new();
        for e in events {
            if let Err(r) = self.event(e, &mut out) {
                self.reject(&r, &mut out);
                break;
            }
        }
        out.freeze()
    }

    fn finish(&mut self) -> Bytes {
        let mut events = Vec::new();
        self.parser.finish(&mut events);
        let mut out = BytesMut::new();
        for e in events {
            if let Err(r) = self.event(e, &mut out) {
                self.reject(&r, &mut out);
                return out.freeze();
            }
        }
        if let Err(r) = self.flush_all(&mut out) {
            self.reject(&r, &mut out);
        }
        out.freeze()
    }

    fn reject(&mut self, r: &Rejected, out: &mut BytesMut) {
        self.done = true;
        let body = r.error().body(self.format);
        let data = serde_json::to_vec(&body).unwrap_or_default();
        match self.format {
            ApiFormat::Anthropic => write_event(out, "error", &data),
            _ => write_data(out, &data),
        }
    }

    /// Text of channel `idx` after `delta`, as far as it is final (or all of it at the end).
    fn step(&mut self, idx: u64, delta: &str, end: bool) -> Result<String, Rejected> {
        let hold = self.g.hold_bytes();
        let pending = self.pending.entry(idx).or_default();
        pending.push_str(delta);
        let len = pending.len();
        let mut cut = if end { len } else { len.saturating_sub(hold) };
        while !pending.is_char_boundary(cut) {
            cut -= 1;
        }
        let hits = self.g.find(pending, Direction::Response);
        // A match that starts before the cut cannot grow (it is at most `hold` long): it goes
        // out whole.
        loop {
            let next = hits
                .iter()
                .filter(|h| h.start < cut && h.end > cut)
                .map(|h| h.end)
                .max();
            match next {
                Some(e) => cut = e,
                None => break,
            }
        }
        if cut == 0 {
            return Ok(String::new());
        }
        let head: String = pending.drain(..cut).collect();
        let final_hits: Vec<_> = hits.into_iter().filter(|h| h.end <= cut).collect();
        let masked = self
            .g
            .decide(self.at.site(), Direction::Response, &head, &final_hits)?;
        Ok(masked.unwrap_or(head))
    }

    fn event(&mut self, e: Event, out: &mut BytesMut) -> Result<(), Rejected> {
        match self.format {
            ApiFormat::Anthropic => self.anthropic(e, out),
            _ => self.openai(e, out),
        }
    }

    fn openai(&mut self, e: Event, out: &mut BytesMut) -> Result<(), Rejected> {
        if e.data.trim() == "[DONE]" {
            self.flush_all(out)?;
            write_data(out, e.data.as_bytes());
            return Ok(());
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&e.data) else {
            return pass(e, out);
        };
        if let Some(Value::Array(choices)) = v.get_mut("choices") {
            for c in choices.iter_mut() {
                let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
                let ends = c.get("finish_reason").is_some_and(|f| !f.is_null());
                let delta_text = c
                    .get("delta")
                    .and_then(|d| d.get("content"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if delta_text.is_none() && !ends {
                    continue;
                }
                let text = self.step(idx, delta_text.as_deref().unwrap_or(""), ends)?;
                if ends {
                    self.pending.remove(&idx);
                }
                if let Some(d) = c.get_mut("delta").and_then(Value::as_object_mut) {
                    if delta_text.is_some() || !text.is_empty() {
                        d.insert("content".into(), Value::String(text));
                    }
                } else if !text.is_empty()
                    && let Some(obj) = c.as_object_mut()
                {
                    obj.insert("delta".into(), json!({"content": text}));
                }
            }
        }
        self.template = Some(v.clone());
        write_event_like(&e, &v, out);
        Ok(())
    }

    fn anthropic(&mut self, e: Event, out: &mut BytesMut) -> Result<(), Rejected> {
        let kind = e.event.clone().unwrap_or_default();
        let Ok(mut v) = serde_json::from_str::<Value>(&e.data) else {
            return pass(e, out);
        };
        let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "content_block_delta" => {
                let Some(delta) = v.get_mut("delta") else {
                    return pass(e, out);
                };
                if delta.get("type").and_then(Value::as_str) != Some("text_delta") {
                    return pass(e, out);
                }
                let t = delta
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let text = self.step(idx, &t, false)?;
                if let Some(d) = delta.as_object_mut() {
                    d.insert("text".into(), Value::String(text));
                }
                write_event_like(&e, &v, out);
                Ok(())
            }
            "content_block_stop" => {
                self.flush_one(idx, out)?;
                pass(e, out)
            }
            "message_stop" | "message_delta" => {
                self.flush_all(out)?;
                pass(e, out)
            }
            _ => pass(e, out),
        }
    }

    /// Sends the held text of one channel in an event of its own.
    fn flush_one(&mut self, idx: u64, out: &mut BytesMut) -> Result<(), Rejected> {
        if !self.pending.contains_key(&idx) {
            return Ok(());
        }
        let text = self.step(idx, "", true)?;
        self.pending.remove(&idx);
        if text.is_empty() {
            return Ok(());
        }
        match self.format {
            ApiFormat::Anthropic => {
                let v = json!({"type": "content_block_delta", "index": idx,
                    "delta": {"type": "text_delta", "text": text}});
                write_event(out, "content_block_delta", v.to_string().as_bytes());
            }
            _ => {
                let mut v = self.template.clone().unwrap_or_else(|| json!({}));
                if let Some(obj) = v.as_object_mut() {
                    obj.insert(
                        "choices".into(),
                        json!([{"index": idx, "delta": {"content": text}, "finish_reason": null}]),
                    );
                    obj.remove("usage");
                }
                write_data(out, v.to_string().as_bytes());
            }
        }
        Ok(())
    }

    fn flush_all(&mut self, out: &mut BytesMut) -> Result<(), Rejected> {
        let keys: Vec<u64> = self.pending.keys().copied().collect();
        for k in keys {
            self.flush_one(k, out)?;
        }
        Ok(())
    }
}

fn pass(e: Event, out: &mut BytesMut) -> Result<(), Rejected> {
    match &e.event {
        Some(name) => write_event(out, name, e.data.as_bytes()),
        None => write_data(out, e.data.as_bytes()),
    }
    Ok(())
}

fn write_event_like(e: &Event, v: &Value, out: &mut BytesMut) {
    let data = v.to_string();
    match &e.event {
        Some(name) => write_event(out, name, data.as_bytes()),
        None => write_data(out, data.as_bytes()),
    }
}
