"""The real openai / anthropic Python SDKs against a Switchboard LLM route: token counting,
routed and cached requests.

Usage: llm_sdk.py CHECK BASE_URL REQUEST_JSON. Prints one JSON object. In REQUEST_JSON,
`_api_key` (the client's key, default `client-secret-key`) is taken out before the call.
"""
import json
import sys


def anthropic_count(base, req):
    from anthropic import Anthropic

    c = Anthropic(base_url=base, api_key="client-secret-key", max_retries=0)
    raw = c.messages.with_raw_response.count_tokens(**req)
    r = raw.parse()
    return {"input_tokens": r.input_tokens, "how": raw.headers.get("x-switchboard-token-count")}


def openai_input_tokens(base, req):
    from openai import OpenAI

    c = OpenAI(base_url=base + "/v1", api_key="client-secret-key", max_retries=0)
    raw = c.responses.input_tokens.with_raw_response.count(**req)
    r = raw.parse()
    return {"input_tokens": r.input_tokens, "object": r.object, "how": raw.headers.get("x-switchboard-token-count")}


def anthropic_count_error(base, req):
    import anthropic

    c = anthropic.Anthropic(base_url=base, api_key="client-secret-key", max_retries=0)
    try:
        c.messages.count_tokens(**req)
    except anthropic.APIStatusError as e:
        return {"status": e.status_code, "type": e.body.get("error", {}).get("type") if isinstance(e.body, dict) else None}
    return {"status": 200}


SWITCHBOARD_HEADERS = [
    "x-switchboard-model",
    "x-switchboard-provider",
    "x-switchboard-routed-to",
    "x-switchboard-cache",
]


def picked(headers):
    return {h: headers.get(h) for h in SWITCHBOARD_HEADERS if headers.get(h) is not None}


def anthropic_create(base, req):
    """messages.create, streamed or not: the text, stop reason, usage and headers."""
    from anthropic import Anthropic

    key = req.pop("_api_key", "client-secret-key")
    c = Anthropic(base_url=base, api_key=key, max_retries=0)
    raw = c.messages.with_raw_response.create(**req)
    if req.get("stream"):
        text, stop, usage, kinds = "", None, {}, []
        for ev in raw.parse():
            kinds.append(ev.type)
            if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                text += ev.delta.text
            elif ev.type == "message_start":
                usage["input_tokens"] = ev.message.usage.input_tokens
            elif ev.type == "message_delta":
                stop = ev.delta.stop_reason
                usage["output_tokens"] = ev.usage.output_tokens
        return {"text": text, "stop_reason": stop, "usage": usage, "events": kinds, "headers": picked(raw.headers)}
    m = raw.parse()
    text = "".join(b.text for b in m.content if b.type == "text")
    return {"text": text, "stop_reason": m.stop_reason, "usage": {"input_tokens": m.usage.input_tokens, "output_tokens": m.usage.output_tokens}, "headers": picked(raw.headers)}


def openai_create(base, req):
    """chat.completions.create, streamed or not: the text, finish reason, usage and headers."""
    from openai import OpenAI

    key = req.pop("_api_key", "client-secret-key")
    c = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(**req)
    if req.get("stream"):
        text, finish, usage, chunks = "", None, None, 0
        for ch in raw.parse():
            chunks += 1
            if ch.usage is not None:
                usage = {"prompt_tokens": ch.usage.prompt_tokens, "completion_tokens": ch.usage.completion_tokens}
            for choice in ch.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        return {"text": text, "finish_reason": finish, "usage": usage, "chunks": chunks, "headers": picked(raw.headers)}
    r = raw.parse()
    return {"text": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason,
            "usage": {"prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens}, "headers": picked(raw.headers)}


if __name__ == "__main__":
    check, base, req = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    print(json.dumps(globals()[check](base, req)))
