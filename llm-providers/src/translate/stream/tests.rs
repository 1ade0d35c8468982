use std::collections::HashMap;

use super::*;
use proptest::prelude::*;

pub(crate) const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":3,\"output_tokens\":1}}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check \u{e9}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":25}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

pub(crate) const OPENAI_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Checking \u{e9}\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":140,\"completion_tokens\":25,\"total_tokens\":165,\"prompt_tokens_details\":{\"cached_tokens\":100}}}\n\n",
    "data: [DONE]\n\n",
);

pub(crate) const GEMINI_STREAM: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Checking\"}]}}],\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":40,\"candidatesTokenCount\":9,\"cachedContentTokenCount\":30},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
);

pub(crate) fn bedrock_stream() -> Vec<u8> {
    let ev = |t: &str, p: &str| {
        eventstream::encode(
            &[
                (":event-type", t),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            p.as_bytes(),
        )
    };
    let mut v = Vec::new();
    for (t, p) in [
        ("messageStart", r#"{"role":"assistant"}"#),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Checking"}}"#,
        ),
        ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        (
            "contentBlockStart",
            r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tu_1","name":"get_weather"}}}"#,
        ),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}}"#,
        ),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}}}"#,
        ),
        ("contentBlockStop", r#"{"contentBlockIndex":1}"#),
        ("messageStop", r#"{"stopReason":"tool_use"}"#),
        (
            "metadata",
            r#"{"usage":{"inputTokens":10,"outputTokens":7,"totalTokens":17,"cacheReadInputTokens":5},"metrics":{"latencyMs":12}}"#,
        ),
    ] {
        v.extend_from_slice(&ev(t, p));
    }
    v
}

fn run(
    client: ApiFormat,
    upstream: UpstreamFormat,
    include_usage: bool,
    chunks: &[&[u8]],
) -> (String, Option<Usage>) {
    let mut t = StreamTranslator::new(client, upstream, include_usage, "model-x", 1_700_000_000);
    let mut out = BytesMut::new();
    for c in chunks {
        t.feed(c, &mut out);
    }
    t.finish(&mut out);
    (String::from_utf8(out.to_vec()).unwrap(), t.usage())
}

/// What an OpenAI SDK would assemble from a stream.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Assembled {
    pub text: String,
    pub tools: Vec<(String, String, String)>,
    pub finish: Option<String>,
    pub usage: Option<(u64, u64, u64)>,
    pub error: Option<String>,
    pub done: bool,
}

pub(crate) fn assemble_openai(s: &str) -> Assembled {
    let mut p = sse::Parser::new();
    let mut evs = Vec::new();
    p.feed(s.as_bytes(), &mut evs);
    p.finish(&mut evs);
    let mut a = Assembled::default();
    for e in evs {
        if e.data == "[DONE]" {
            a.done = true;
            continue;
        }
        let v: Value = serde_json::from_str(&e.data).unwrap();
        if let Some(err) = v.get("error") {
            a.error = Some(err["type"].as_str().unwrap().to_string());
            continue;
        }
        let c: o::ChatChunk = serde_json::from_value(v).unwrap();
        if let Some(u) = c.usage {
            a.usage = Some((
                u.prompt_tokens,
                u.completion_tokens,
                u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            ));
        }
        for ch in c.choices {
            if let Some(t) = ch.delta.content {
                a.text.push_str(&t);
            }
            for tc in ch.delta.tool_calls.into_iter().flatten() {
                let i = tc.index as usize;
                if a.tools.len() <= i {
                    a.tools.resize(i + 1, Default::default());
                }
                if let Some(id) = tc.id {
                    a.tools[i].0 = id;
                }
                if let Some(f) = tc.function {
                    if let Some(n) = f.name {
                        a.tools[i].1 = n;
                    }
                    a.tools[i].2.push_str(&f.arguments.unwrap_or_default());
                }
            }
            if ch.finish_reason.is_some() {
                a.finish = ch.finish_reason;
            }
        }
    }
    a
}

pub(crate) fn assemble_anthropic(s: &str) -> Assembled {
    let mut p = sse::Parser::new();
    let mut evs = Vec::new();
    p.feed(s.as_bytes(), &mut evs);
    p.finish(&mut evs);
    let mut a = Assembled::default();
    let mut blocks: HashMap<u32, usize> = HashMap::new();
    let mut usage = a::Usage::default();
    for e in evs {
        let ev: a::StreamEvent = serde_json::from_str(&e.data).unwrap();
        assert_eq!(
            e.event.as_deref(),
            Some(ev.name()),
            "event name matches type"
        );
        match ev {
            a::StreamEvent::MessageStart { message } => usage = message.usage,
            a::StreamEvent::ContentBlockStart {
                index,
                content_block,
            } if content_block.kind == "tool_use" => {
                blocks.insert(index, a.tools.len());
                a.tools.push((
                    content_block.id.unwrap(),
                    content_block.name.unwrap(),
                    String::new(),
                ));
            }
            a::StreamEvent::ContentBlockDelta { index, delta } => match delta.kind.as_str() {
                "text_delta" => a.text.push_str(&delta.text.unwrap()),
                "input_json_delta" => a.tools[blocks[&index]]
                    .2
                    .push_str(&delta.partial_json.unwrap()),
                _ => {}
            },
            a::StreamEvent::MessageDelta { delta, usage: u } => {
                a.finish = delta.stop_reason;
                usage.output_tokens = u.output_tokens;
                if let Some(v) = u.input_tokens {
                    usage.input_tokens = v;
                }
                if let Some(v) = u.cache_read_input_tokens {
                    usage.cache_read_input_tokens = Some(v);
                }
            }
            a::StreamEvent::MessageStop => a.done = true,
            a::StreamEvent::Error { error } => a.error = Some(error.kind),
            _ => {}
        }
    }
    a.usage = Some((
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens.unwrap_or(0),
    ));
    a
}

#[test]
fn anthropic_to_openai_stream() {
    let (out, usage) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::Anthropic,
        true,
        &[ANTHROPIC_STREAM.as_bytes()],
    );
    insta::assert_snapshot!(out);
    let a = assemble_openai(&out);
    assert_eq!(a.text, "Let me check \u{e9}");
    assert_eq!(
        a.tools,
        vec![(
            "toolu_1".into(),
            "get_weather".into(),
            "{\"city\": \"Paris\"}".into()
        )]
    );
    assert_eq!(a.finish.as_deref(), Some("tool_calls"));
    // input 12 + cache read 100 + cache write 3 = 115 prompt tokens on the OpenAI side.
    assert_eq!(a.usage, Some((115, 25, 100)));
    assert!(a.done);
    assert_eq!(
        usage,
        Some(Usage {
            input: 115,
            output: 25,
            cache_read: 100,
            cache_write: 3
        })
    );
}

#[test]
fn openai_to_anthropic_stream() {
    let (out, usage) = run(
        ApiFormat::Anthropic,
        UpstreamFormat::OpenAi,
        false,
        &[OPENAI_STREAM.as_bytes()],
    );
    insta::assert_snapshot!(out);
    let a = assemble_anthropic(&out);
    assert_eq!(a.text, "Checking \u{e9}");
    assert_eq!(
        a.tools,
        vec![(
            "call_1".into(),
            "get_weather".into(),
            "{\"city\":\"Paris\"}".into()
        )]
    );
    assert_eq!(a.finish.as_deref(), Some("tool_use"));
    // OpenAI prompt 140 incl. 100 cached → Anthropic input_tokens 40 + cache read 100.
    assert_eq!(a.usage, Some((40, 25, 100)));
    assert!(a.done);
    assert_eq!(usage.unwrap().input, 140);
}

#[test]
fn usage_chunk_stripped_when_not_requested() {
    let (out, usage) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::OpenAi,
        false,
        &[OPENAI_STREAM.as_bytes()],
    );
    let a = assemble_openai(&out);
    assert_eq!(a.usage, None);
    assert!(!out.contains("prompt_tokens"));
    assert_eq!(
        usage.unwrap().output,
        25,
        "the gateway still observed usage"
    );
    let (out, _) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::OpenAi,
        true,
        &[OPENAI_STREAM.as_bytes()],
    );
    assert_eq!(
        out, OPENAI_STREAM,
        "pass-through with include_usage is byte-identical"
    );
    let (out, _) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::Anthropic,
        false,
        &[ANTHROPIC_STREAM.as_bytes()],
    );
    assert_eq!(assemble_openai(&out).usage, None);
}

#[test]
fn gemini_to_openai_and_anthropic_stream() {
    let (out, usage) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::Gemini,
        true,
        &[GEMINI_STREAM.as_bytes()],
    );
    insta::assert_snapshot!(out);
    let a = assemble_openai(&out);
    assert_eq!(a.text, "Checking");
    assert_eq!(
        a.tools,
        vec![(
            "call_0".into(),
            "get_weather".into(),
            "{\"city\":\"Paris\"}".into()
        )]
    );
    assert_eq!(a.finish.as_deref(), Some("tool_calls"));
    assert_eq!(a.usage, Some((40, 9, 30)));
    assert!(a.done);
    assert_eq!(usage.unwrap().cache_read, 30);
    let (out, _) = run(
        ApiFormat::Anthropic,
        UpstreamFormat::Gemini,
        false,
        &[GEMINI_STREAM.as_bytes()],
    );
    let a = assemble_anthropic(&out);
    assert_eq!(a.finish.as_deref(), Some("tool_use"));
    assert_eq!(a.usage, Some((10, 9, 30)));
}

#[test]
fn bedrock_to_openai_stream() {
    let input = bedrock_stream();
    let (out, usage) = run(ApiFormat::OpenAi, UpstreamFormat::Bedrock, true, &[&input]);
    insta::assert_snapshot!(out);
    let a = assemble_openai(&out);
    assert_eq!(a.text, "Checking");
    assert_eq!(
        a.tools,
        vec![(
            "tu_1".into(),
            "get_weather".into(),
            "{\"city\":\"Paris\"}".into()
        )]
    );
    assert_eq!(a.finish.as_deref(), Some("tool_calls"));
    // Bedrock inputTokens excludes cache reads: 10 + 5.
    assert_eq!(a.usage, Some((15, 7, 5)));
    assert_eq!(usage.unwrap().input, 15);
}

#[test]
fn mid_stream_error_in_callers_format() {
    let upstream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    let (out, _) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::Anthropic,
        false,
        &[upstream.as_bytes()],
    );
    let a = assemble_openai(&out);
    // OpenAI callers get OpenAI's error type for it (the kind is in `code`).
    assert_eq!(a.error.as_deref(), Some("server_error"));
    assert!(!a.done);
    let openai_err = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n";
    let (out, _) = run(
        ApiFormat::Anthropic,
        UpstreamFormat::OpenAi,
        false,
        &[openai_err.as_bytes()],
    );
    let a = assemble_anthropic(&out);
    assert_eq!(a.text, "x");
    assert_eq!(a.error.as_deref(), Some("api_error"));
}

#[test]
fn dropped_stream_becomes_an_error_event() {
    let cut = &OPENAI_STREAM[..OPENAI_STREAM.len() / 2];
    let (out, _) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::OpenAi,
        true,
        &[cut.as_bytes()],
    );
    let a = assemble_openai(&out);
    assert_eq!(a.error.as_deref(), Some("server_error"));
    let cut = &ANTHROPIC_STREAM[..ANTHROPIC_STREAM.len() / 2];
    let (out, _) = run(
        ApiFormat::Anthropic,
        UpstreamFormat::Anthropic,
        false,
        &[cut.as_bytes()],
    );
    assert_eq!(assemble_anthropic(&out).error.as_deref(), Some("api_error"));
}

fn split_matches(
    client: ApiFormat,
    upstream: UpstreamFormat,
    input: &[u8],
    a: usize,
    b: usize,
) -> Result<(), TestCaseError> {
    let a = a % (input.len() + 1);
    let b = (b % (input.len() + 1)).max(a);
    let whole = run(client, upstream, false, &[input]);
    let split = run(
        client,
        upstream,
        false,
        &[&input[..a], &input[a..b], &input[b..]],
    );
    prop_assert_eq!(&whole, &split);
    Ok(())
}

proptest! {
    #[test]
    fn any_split_anthropic_to_openai(a in any::<usize>(), b in any::<usize>()) {
        split_matches(ApiFormat::OpenAi, UpstreamFormat::Anthropic, ANTHROPIC_STREAM.as_bytes(), a, b)?;
    }

    #[test]
    fn any_split_openai_to_anthropic(a in any::<usize>(), b in any::<usize>()) {
        split_matches(ApiFormat::Anthropic, UpstreamFormat::OpenAi, OPENAI_STREAM.as_bytes(), a, b)?;
    }

    #[test]
    fn any_split_gemini(a in any::<usize>(), b in any::<usize>()) {
        split_matches(ApiFormat::OpenAi, UpstreamFormat::Gemini, GEMINI_STREAM.as_bytes(), a, b)?;
    }

    #[test]
    fn any_split_bedrock(a in any::<usize>(), b in any::<usize>()) {
        split_matches(ApiFormat::Anthropic, UpstreamFormat::Bedrock, &bedrock_stream(), a, b)?;
    }
}

/// An OpenAI stream as some OpenAI-compatible providers write it: fields the typed chunk does
/// not model, number spellings and escapes a re-encode would normalize, a `null` id and a
/// tool call fragment without `index` (both of which the typed chunk rejects).
const OPENAI_LOOSE_STREAM: &str = concat!(
    "data: {\"id\":null,\"object\":\"chat.completion.chunk\",\"created\":1.7e9,\"model\":\"m\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\\u00e9 \\\"x\\\"\",\"reasoning_content\":\"hm\"}}],\"obfuscation\":\"a1B2\",\"x_extra\":{\"w\":[1.50,1e2,-0.0]}}\n\n",
    "data: {\"id\":\"c1\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
    "data: {\"id\":\"c1\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"c1\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10,\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn openai_events_reach_an_openai_caller_as_the_provider_wrote_them() {
    let (out, usage) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::OpenAi,
        true,
        &[OPENAI_LOOSE_STREAM.as_bytes()],
    );
    assert_eq!(out, OPENAI_LOOSE_STREAM, "passed on byte for byte");
    let usage = usage.expect("usage observed");
    assert_eq!((usage.input, usage.output), (7, 3));
    // Without include_usage only the usage-only chunk is left out; the gateway still saw it.
    let (out, usage) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::OpenAi,
        false,
        &[OPENAI_LOOSE_STREAM.as_bytes()],
    );
    let usage_line = OPENAI_LOOSE_STREAM
        .split_inclusive("\n\n")
        .find(|e| e.contains("\"usage\""))
        .unwrap();
    assert_eq!(out, OPENAI_LOOSE_STREAM.replace(usage_line, ""));
    assert_eq!(usage.map(|u| u.total()), Some(10));
}

#[test]
fn content_is_first_seen_where_the_typed_parse_saw_it() {
    let mut t = StreamTranslator::new(ApiFormat::OpenAi, UpstreamFormat::OpenAi, true, "m", 0);
    let mut out = BytesMut::new();
    let mut events = OPENAI_LOOSE_STREAM.split_inclusive("\n\n");
    t.feed(events.next().unwrap().as_bytes(), &mut out);
    assert!(
        !t.content_seen(),
        "the role preamble's empty content is no content"
    );
    t.feed(events.next().unwrap().as_bytes(), &mut out);
    assert!(t.content_seen());
    let mut t = StreamTranslator::new(ApiFormat::OpenAi, UpstreamFormat::OpenAi, true, "m", 0);
    t.feed(
        OPENAI_LOOSE_STREAM
            .split_inclusive("\n\n")
            .nth(2)
            .unwrap()
            .as_bytes(),
        &mut out,
    );
    assert!(t.content_seen(), "a tool call fragment is content");
}

/// A chunk that carries choices and usage, for a caller that did not ask for usage: it keeps
/// its choices and loses its usage (re-encoded, as before the pass-through).
#[test]
fn usage_riding_on_a_content_chunk_is_hidden_from_a_caller_that_did_not_ask() {
    let ev = "data: {\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1,\"total_tokens\":3}}\n\ndata: [DONE]\n\n";
    let (out, usage) = run(
        ApiFormat::OpenAi,
        UpstreamFormat::OpenAi,
        false,
        &[ev.as_bytes()],
    );
    let a = assemble_openai(&out);
    assert_eq!((a.text.as_str(), a.usage, a.done), ("hi", None, true));
    assert!(!out.contains("prompt_tokens"), "{out}");
    assert_eq!(usage.map(|u| u.total()), Some(3));
}

/// The borrowed read and the typed chunk agree on what the gateway acts on (content, usage,
/// error) for every event the typed chunk accepts.
#[test]
fn the_borrowed_read_agrees_with_the_typed_chunk() {
    let events = [
        r#"{"choices":[{"index":0,"delta":{"content":""}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":null}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"\u0000"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":null}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"role":"assistant"}},{"index":1,"delta":{"content":"b"}}]}"#,
        r#"{"choices":[{"index":0}]}"#,
        r#"{"choices":[],"usage":null}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        r#"{"usage":{"prompt_tokens":1}}"#,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
        r#"{"error":null}"#,
        r#"{"id":"x","error":"overloaded"}"#,
        r#"{}"#,
    ];
    for ev in events {
        let typed: o::ChatChunk = serde_json::from_str(ev).unwrap();
        let passed: Passed = serde_json::from_str(ev).unwrap();
        assert_eq!(
            passed.choices.iter().any(PassedChoice::has_content),
            typed.choices.iter().any(|ch| {
                ch.delta.content.as_deref().is_some_and(|s| !s.is_empty())
                    || ch.delta.tool_calls.is_some()
            }),
            "content of {ev}"
        );
        assert_eq!(passed.usage, typed.usage, "usage of {ev}");
        assert_eq!(
            passed.error.0.map(|r| r.get().to_string()),
            typed.extra.get("error").map(|v| v.to_string()),
            "error of {ev}"
        );
    }
}

proptest! {
    #[test]
    fn any_split_openai_to_openai(a in any::<usize>(), b in any::<usize>()) {
        split_matches(ApiFormat::OpenAi, UpstreamFormat::OpenAi, OPENAI_LOOSE_STREAM.as_bytes(), a, b)?;
        split_matches(ApiFormat::OpenAi, UpstreamFormat::OpenAi, OPENAI_STREAM.as_bytes(), a, b)?;
    }
}
