//! An OpenAI chat request for an OpenAI-compatible provider, passed on as the caller sent it
//! with only `model` replaced (and, on a stream, `stream_options.include_usage` set), instead
//! of being built into an [`o::ChatRequest`] tree and encoded again.
//!
//! What the gateway refuses must not change: the body is first read by a borrowed parse whose
//! types mirror [`o::ChatRequest`] field by field (same names, same required fields, same
//! `flatten`, so a struct is a JSON object only where the typed one is, a `content` that
//! takes what the untagged one takes, every free-form value checked as [`serde_json::Value`]
//! checks it) but that keeps nothing. A body it does not accept goes to the typed parse, which
//! reports the error it always did (or, should the mirror be stricter somewhere, serves it the
//! old way).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::format::Present;
use crate::format::openai as o;

/// A chat request checked for the shape of [`o::ChatRequest`], kept as the caller's bytes.
#[derive(Debug)]
pub(super) struct PassedChat {
    body: Bytes,
    /// The model asked for: the caller's, or a virtual model's target.
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true`.
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub cap: Option<u64>,
    /// The span of the `model` value.
    model_at: Range<usize>,
    /// `stream_options`: absent, `null`, or an object (its span).
    options: Options,
    /// Just past the body's opening `{`.
    open: usize,
}

#[derive(Debug)]
enum Options {
    Absent,
    Null(Range<usize>),
    Object(Range<usize>),
}

impl PassedChat {
    /// The body as a chat request, or the body back when the typed parse must judge it.
    pub fn parse(body: Bytes) -> Result<PassedChat, Bytes> {
        let Some(passed) = Self::read(&body) else {
            return Err(body);
        };
        Ok(PassedChat { body, ..passed })
    }

    fn read(body: &Bytes) -> Option<PassedChat> {
        // Checked as UTF-8 once here, so the parse does not check each string again.
        let text = std::str::from_utf8(body).ok()?;
        let top: Top<'_> = serde_json::from_str(text).ok()?;
        let at = |raw: &RawValue| -> Option<Range<usize>> {
            let start = (raw.get().as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
            let end = start.checked_add(raw.get().len())?;
            (end <= body.len()).then_some(start..end)
        };
        let model: Cow<'_, str> = serde_json::from_str(top.model.get()).ok()?;
        let (options, include_usage) = match top.stream_options.0 {
            None => (Options::Absent, None),
            Some(raw) => match serde_json::from_str::<Option<StreamOptions>>(raw.get()).ok()? {
                None => (Options::Null(at(raw)?), None),
                Some(o) => (Options::Object(at(raw)?), o.include_usage),
            },
        };
        let open = body.iter().position(|b| !b.is_ascii_whitespace())?;
        if body.get(open) != Some(&b'{') {
            return None;
        }
        Some(PassedChat {
            body: Bytes::new(),
            model: model.into_owned(),
            stream: top.stream == Some(true),
            include_usage: include_usage == Some(true),
            cap: top.max_completion_tokens.or(top.max_tokens),
            model_at: at(top.model)?,
            options,
            open: open + 1,
        })
    }

    /// The caller's body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Length of the caller's body.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// The request as a typed tree (for a provider of another API, or the cache key), with
    /// the model asked for.
    pub fn typed(&self) -> serde_json::Result<o::ChatRequest> {
        let mut r: o::ChatRequest = serde_json::from_slice(&self.body)?;
        r.model.clone_from(&self.model);
        Ok(r)
    }

    /// The body for a provider's `model`: the caller's bytes with the model replaced and, on a
    /// stream, usage asked for (the translator hides it if the caller did not).
    ///
    /// One allocation, of the body's final size when the model name needs no escaping: the
    /// name is written in place, and a `Vec` filled to its capacity becomes [`Bytes`] without
    /// another (issue 19).
    pub fn body_for(&self, model: &str) -> serde_json::Result<Bytes> {
        self.edited(model).map(Bytes::from)
    }

    fn edited(&self, model: &str) -> serde_json::Result<Vec<u8>> {
        let usage = match (&self.options, self.stream) {
            (_, false) => None,
            (Options::Absent, true) => Some((
                self.open..self.open,
                Cow::Borrowed(r#""stream_options":{"include_usage":true},"#),
            )),
            (Options::Null(at), true) => {
                Some((at.clone(), Cow::Borrowed(r#"{"include_usage":true}"#)))
            }
            (Options::Object(_), true) if self.include_usage => None,
            (Options::Object(at), true) => {
                let raw = self.body.get(at.clone()).unwrap_or_default();
                let mut opts: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(raw)?;
                opts.insert("include_usage".into(), true.into());
                Some((at.clone(), Cow::Owned(serde_json::to_string(&opts)?)))
            }
        };
        // The model (`None`: written as JSON) and the usage edit, in the order of the body.
        let model_edit = (self.model_at.clone(), None);
        let edits = match &usage {
            None => [Some(model_edit), None],
            Some((at, text)) if at.start < self.model_at.start => {
                [Some((at.clone(), Some(text.as_ref()))), Some(model_edit)]
            }
            Some((at, text)) => [Some(model_edit), Some((at.clone(), Some(text.as_ref())))],
        };
        let size = edits
            .iter()
            .flatten()
            .fold(self.body.len(), |n, (at, text)| {
                n - at.len() + text.map_or(model.len() + 2, str::len)
            });
        let mut out = Vec::with_capacity(size);
        let mut from = 0;
        for (at, text) in edits.into_iter().flatten() {
            out.extend_from_slice(self.body.get(from..at.start).unwrap_or_default());
            match text {
                None => serde_json::to_writer(&mut out, model)?,
                Some(t) => out.extend_from_slice(t.as_bytes()),
            }
            from = at.end;
        }
        out.extend_from_slice(self.body.get(from..).unwrap_or_default());
        Ok(out)
    }
}

// The mirror of `o::ChatRequest`. Field for field: a change there needs the same change here
// (the tests compare the two parses on malformed bodies).

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    model: &'a RawValue,
    #[allow(dead_code, reason = "read for the shape check only")]
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default, borrow)]
    stream_options: Present<'a>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    #[allow(dead_code, reason = "read for the shape check only")]
    temperature: Option<f64>,
    #[serde(default)]
    #[allow(dead_code, reason = "read for the shape check only")]
    top_p: Option<f64>,
    #[serde(default)]
    #[allow(dead_code, reason = "read for the shape check only")]
    stop: Option<Any>,
    #[serde(default)]
    #[allow(dead_code, reason = "read for the shape check only")]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    #[allow(dead_code, reason = "read for the shape check only")]
    tool_choice: Option<Any>,
    #[serde(default)]
    #[allow(dead_code, reason = "read for the shape check only")]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    #[allow(dead_code, reason = "read for the shape check only")]
    response_format: Option<Any>,
    #[serde(default)]
    #[allow(dead_code, reason = "read for the shape check only")]
    user: Option<Str>,
    #[serde(flatten)]
    #[allow(dead_code, reason = "read for the shape check only")]
    rest: Rest,
}

/// `stream_options`, kept raw in [`Top`] and checked on its own.
#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
    #[serde(flatten)]
    #[allow(dead_code, reason = "read for the shape check only")]
    rest: Rest,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "read for the shape check only")]
struct Message {
    role: Str,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    tool_call_id: Option<Str>,
    #[serde(default)]
    refusal: Option<Str>,
    #[serde(flatten)]
    rest: Rest,
}

/// `content`: a string or an array of [`Part`]s, what the typed parse's untagged
/// [`o::Content`] takes, read straight from the parser. Derived as an untagged enum it
/// buffered every message's value (its text copied) to try the variants on the copy.
struct Content;

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Content, E> {
                Ok(Content)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                while seq.next_element::<Part>()?.is_some() {}
                Ok(Content)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "read for the shape check only")]
struct Part {
    #[serde(rename = "type")]
    kind: Str,
    #[serde(default)]
    text: Option<Str>,
    #[serde(default)]
    image_url: Option<Any>,
    #[serde(flatten)]
    rest: Rest,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "read for the shape check only")]
struct Tool {
    #[serde(rename = "type")]
    kind: Str,
    function: FunctionDef,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "read for the shape check only")]
struct FunctionDef {
    name: Str,
    #[serde(default)]
    description: Option<Str>,
    #[serde(default)]
    parameters: Option<Any>,
    #[serde(flatten)]
    rest: Rest,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "read for the shape check only")]
struct ToolCall {
    id: Str,
    #[serde(rename = "type", default)]
    kind: Str,
    function: FunctionCall,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "read for the shape check only")]
struct FunctionCall {
    #[serde(default)]
    name: Str,
    #[serde(default)]
    arguments: Str,
}

/// A string, as `String` accepts it, not kept.
#[derive(Default)]
struct Str;

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Str, E> {
                Ok(Str)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Str, E> {
                std::str::from_utf8(v)
                    .map(|_| Str)
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))
            }
        }
        d.deserialize_string(V)
    }
}

/// Any JSON value, accepted as [`serde_json::Value`] accepts it (numbers in range included),
/// not kept.
struct Any;

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_str<E>(self, _: &str) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_none<E>(self) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Any, D::Error> {
        Any::deserialize(d)
    }
    fn visit_unit<E>(self) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any, A::Error> {
        while seq.next_element::<Any>()?.is_some() {}
        Ok(Any)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any, A::Error> {
        // Keys as `Value`'s map keys: strings.
        while map.next_key::<Str>()?.is_some() {
            map.next_value::<Any>()?;
        }
        Ok(Any)
    }
}

/// The fields a struct does not name (its `flatten`ed `Extra` map), each checked as a `Value`.
struct Rest;

impl<'de> Deserialize<'de> for Rest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Rest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rest, A::Error> {
                while map.next_key::<Str>()?.is_some() {
                    map.next_value::<Any>()?;
                }
                Ok(Rest)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies the typed parse refuses, one per rule of its shape.
    const REFUSED: &[&str] = &[
        "",
        "nope",
        "[]",
        r#"["m", []]"#,
        r#"{"model":"m"}"#,
        r#"{"messages":[]}"#,
        r#"{"model":5,"messages":[]}"#,
        r#"{"model":"m","model":"n","messages":[]}"#,
        r#"{"model":"m","messages":[],"messages":[]}"#,
        r#"{"model":"m","messages":{}}"#,
        r#"{"model":"m","messages":[{}]}"#,
        r#"{"model":"m","messages":[["user","hi"]]}"#,
        r#"{"model":"m","messages":[{"role":1}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":{"text":"x"}}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[["text","x"]]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":3}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","x":1e400}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","tool_calls":[{"function":{}}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","tool_calls":[{"id":"c","type":null,"function":{}}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","tool_calls":[{"id":"c","function":{"arguments":{}}}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","tool_call_id":7}]}"#,
        r#"{"model":"m","messages":[{"role":"user","refusal":[]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","name":1e999}]}"#,
        r#"{"model":"m","messages":[],"stream":"yes"}"#,
        r#"{"model":"m","messages":[],"stream_options":[]}"#,
        r#"{"model":"m","messages":[],"stream_options":{"include_usage":1}}"#,
        r#"{"model":"m","messages":[],"stream_options":{"x":-1e309}}"#,
        r#"{"model":"m","messages":[],"max_tokens":-1}"#,
        r#"{"model":"m","messages":[],"max_tokens":1.5}"#,
        r#"{"model":"m","messages":[],"max_completion_tokens":"8"}"#,
        r#"{"model":"m","messages":[],"temperature":"hot"}"#,
        r#"{"model":"m","messages":[],"top_p":true}"#,
        r#"{"model":"m","messages":[],"stop":1e400}"#,
        r#"{"model":"m","messages":[],"tools":[{"type":"function"}]}"#,
        r#"{"model":"m","messages":[],"tools":[{"type":"function","function":{}}]}"#,
        r#"{"model":"m","messages":[],"tools":[{"type":"function","function":["f"]}]}"#,
        r#"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f","description":2}}]}"#,
        r#"{"model":"m","messages":[],"tool_choice":-1e400}"#,
        r#"{"model":"m","messages":[],"parallel_tool_calls":0}"#,
        r#"{"model":"m","messages":[],"response_format":[1e500]}"#,
        r#"{"model":"m","messages":[],"user":{}}"#,
        r#"{"model":"m","messages":[],"x":1e400}"#,
        r#"{"model":"m","messages":[],"x":{"y":[1,2,1e400]}}"#,
        r#"{"model":"m","messages":[]} trailing"#,
        r#"{"model":"m","messages":[],}"#,
        r#"{"model":"m","messages":[]"#,
        "{\"model\":\"m\",\"messages\":[],\"x\":\"\\ud800\"}",
        "{\"model\":\"m\",\"messages\":[],\"x\":\"\u{1}\"}",
        r#"{"model":"m","messages":[{"role":"user","content":true}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":["text"]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"},5]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"},null]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"\ud800"}]}"#,
    ];

    /// Bodies the typed parse accepts, however odd.
    const ACCEPTED: &[&str] = &[
        r#"{"model":"m","messages":[]}"#,
        r#" {"messages":[{"role":"user","content":"hi"}],"model":"m"} "#,
        r#"{"model":"m","messages":[{"role":"user","content":null}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"u"}}]}]}"#,
        r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[["c","function",{"name":"f","arguments":"{}"}]]}]}"#,
        r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{}}]}]}"#,
        r#"{"model":"m","messages":[],"tools":[["function",{"name":"f"}]]}"#,
        r#"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f","strict":true},"x":1}]}"#,
        r#"{"model":"m","messages":[],"stream":null,"stream_options":null,"max_tokens":null}"#,
        r#"{"model":"m","messages":[],"temperature":1,"top_p":0.5e0,"stop":["a"],"tool_choice":"auto"}"#,
        r#"{"model":"m","messages":[],"x":1,"x":2,"y":{"z":[null,true,-0.0,1e308]}}"#,
        r#"{"mod\u0065l":"m\u00e9","messages":[]}"#,
        r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"\u00e9\n\"q\""},{"role":"user","content":""}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","x":[1,{"y":null}]}]}]}"#,
    ];

    fn typed(body: &str) -> serde_json::Result<o::ChatRequest> {
        serde_json::from_str(body)
    }

    #[test]
    fn what_the_typed_parse_refuses_is_not_passed() {
        for body in REFUSED {
            assert!(typed(body).is_err(), "the typed parse accepts {body}");
            assert!(
                PassedChat::parse(Bytes::from(body.as_bytes().to_vec())).is_err(),
                "passed: {body}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_utf8_is_not_passed() {
        for body in [
            &b"{\"model\":\"m\",\"messages\":[],\"x\":\"\xff\"}"[..],
            b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xc3\"}]}",
            b"{\"model\":\"m\",\"messages\":[]}\xff",
        ] {
            assert!(serde_json::from_slice::<o::ChatRequest>(body).is_err());
            assert!(PassedChat::parse(Bytes::copy_from_slice(body)).is_err());
        }
    }

    #[test]
    fn what_the_typed_parse_accepts_is_passed_with_its_fields() {
        for body in ACCEPTED {
            let t = typed(body).unwrap_or_else(|e| panic!("{body}: {e}"));
            let p = PassedChat::parse(Bytes::from(body.as_bytes().to_vec()))
                .unwrap_or_else(|_| panic!("not passed: {body}"));
            assert_eq!(p.model, t.model, "{body}");
            assert_eq!(p.stream, t.stream == Some(true), "{body}");
            assert_eq!(
                p.include_usage,
                t.stream_options.as_ref().and_then(|s| s.include_usage) == Some(true),
                "{body}"
            );
            assert_eq!(p.cap, t.output_cap(), "{body}");
            assert_eq!(p.typed().unwrap(), t, "{body}");
        }
    }

    #[test]
    fn only_the_model_changes_and_a_stream_asks_for_usage() {
        let body = r#"{"model":"bench","x":{"b":1.50,"a":"\u00e9"},"messages":[{"role":"user","content":"hi","name":"n"}],"temperature":0.70}"#;
        let p = PassedChat::parse(Bytes::from_static(body.as_bytes())).unwrap();
        let out = p.body_for("up\"stream").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            body.replace(r#""bench""#, r#""up\"stream""#)
        );
        for (body, want) in [
            (
                r#"{"model":"m","stream":true,"messages":[]}"#,
                r#"{"stream_options":{"include_usage":true},"model":"u","stream":true,"messages":[]}"#,
            ),
            (
                r#"{"stream":true,"stream_options":null,"model":"m","messages":[]}"#,
                r#"{"stream":true,"stream_options":{"include_usage":true},"model":"u","messages":[]}"#,
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"x":1,"include_usage":false},"messages":[]}"#,
                r#"{"model":"u","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[]}"#,
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{ "include_usage" : true },"messages":[]}"#,
                r#"{"model":"u","stream":true,"stream_options":{ "include_usage" : true },"messages":[]}"#,
            ),
            (
                r#"{"model":"m","stream":false,"messages":[]}"#,
                r#"{"model":"u","stream":false,"messages":[]}"#,
            ),
        ] {
            let p = PassedChat::parse(Bytes::from_static(body.as_bytes())).unwrap();
            let out = p.body_for("u").unwrap();
            assert_eq!(std::str::from_utf8(&out).unwrap(), want);
            // Allocated at its final size: `Bytes` takes it without another allocation.
            let edited = p.edited("u").unwrap();
            assert_eq!(edited.capacity(), edited.len(), "{body}");
            // What the typed path sent, as a tree.
            let mut t = typed(body).unwrap();
            t.model = "u".into();
            if t.stream == Some(true) {
                t.stream_options
                    .get_or_insert_with(Default::default)
                    .include_usage = Some(true);
            }
            assert_eq!(typed(want).unwrap(), t);
        }
    }
}
