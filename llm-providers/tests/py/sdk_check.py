"""Drives the real openai / anthropic Python SDKs against a Switchboard LLM route.

Usage: sdk_check.py CHECK BASE_URL [MODEL]. Prints one JSON object with what the SDK assembled;
the Rust test compares it with what the mock provider sent.
"""
import json
import sys

TOOL_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}


def openai_client(base):
    from openai import OpenAI

    # The client's own key must never reach the provider.
    return OpenAI(base_url=base + "/v1", api_key="client-secret-key", max_retries=0)


def anthropic_client(base):
    from anthropic import Anthropic

    return Anthropic(base_url=base, api_key="client-secret-key", max_retries=0)


def openai_stream_tool(base, model):
    c = openai_client(base)
    with c.chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": TOOL_SCHEMA}}],
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    calls = [
        {"id": tc.id, "name": tc.function.name, "arguments": json.loads(tc.function.arguments)}
        for tc in choice.message.tool_calls or []
    ]
    u = final.usage
    return {
        "finish_reason": choice.finish_reason,
        "tool_calls": calls,
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cached_tokens": (u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0),
        },
    }


def openai_stream_text(base, model):
    c = openai_client(base)
    stream = c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], stream=True
    )
    text, usage_seen = "", False
    for chunk in stream:
        if chunk.usage is not None:
            usage_seen = True
        for ch in chunk.choices:
            text += ch.delta.content or ""
    return {"text": text, "usage_seen": usage_seen}


def anthropic_stream_tool(base, model):
    c = anthropic_client(base)
    with c.messages.stream(
        model=model,
        max_tokens=256,
        system="You are a weather bot.",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[{"name": "get_weather", "description": "Weather", "input_schema": TOOL_SCHEMA}],
    ) as stream:
        final = stream.get_final_message()
    calls = [{"id": b.id, "name": b.name, "input": b.input} for b in final.content if b.type == "tool_use"]
    u = final.usage
    return {
        "stop_reason": final.stop_reason,
        "tool_calls": calls,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens or 0,
        },
    }


def embeddings(base, model):
    c = openai_client(base)
    r = c.embeddings.create(model=model, input=["hello world", "switchboard"])
    return {
        "count": len(r.data),
        "dims": [len(d.embedding) for d in r.data],
        "prompt_tokens": r.usage.prompt_tokens,
    }


def openai_rate_limited(base, model):
    import openai

    c = openai_client(base)
    statuses = []
    for _ in range(20):
        try:
            c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=50)
            statuses.append(200)
        except openai.RateLimitError as e:
            return {
                "ok_before": len(statuses),
                "status": e.status_code,
                "retry_after": e.response.headers.get("retry-after"),
                "remaining": e.response.headers.get("x-ratelimit-remaining-tokens"),
                "error_type": e.body.get("type") if isinstance(e.body, dict) else None,
            }
    return {"ok_before": len(statuses), "status": 200}


def anthropic_rate_limited(base, model):
    import anthropic

    c = anthropic_client(base)
    for i in range(20):
        try:
            c.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        except anthropic.RateLimitError as e:
            return {
                "ok_before": i,
                "status": e.status_code,
                "retry_after": e.response.headers.get("retry-after"),
                "error_type": e.body.get("error", {}).get("type") if isinstance(e.body, dict) else None,
            }
    return {"ok_before": 20, "status": 200}


if __name__ == "__main__":
    check, base = sys.argv[1], sys.argv[2]
    model = sys.argv[3] if len(sys.argv) > 3 else "smart"
    print(json.dumps(globals()[check](base, model)))
