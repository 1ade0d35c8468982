"""Drives the openai / anthropic Python SDKs with a virtual key at Switchboard LLM routes.

Usage:
  virtual_keys.py chat openai|anthropic|openai-stream BASE_URL KEY MODEL
  virtual_keys.py burst BASE_URL[,BASE_URL...] KEY MODEL REQUESTS THREADS
  virtual_keys.py responses|responses-stream|embeddings BASE_URL KEY MODEL

Prints one JSON object. `chat`: the status, the usage the response reported (or the error
body and the x-switchboard-budget-remaining header). `burst`: REQUESTS chat completions with
the openai SDK spread round-robin over the base URLs from THREADS threads at once: how many
were answered and refused, the usage summed over the answered ones, and one refusal.
"""
import json
import sys
from concurrent.futures import ThreadPoolExecutor


def openai_chat(base, key, model):
    import openai

    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    try:
        r = client.chat.completions.create(
            model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    except openai.APIStatusError as e:
        return {
            "status": e.status_code,
            "body": e.body,
            "remaining": e.response.headers.get("x-switchboard-budget-remaining"),
            "retry_after": e.response.headers.get("retry-after"),
        }
    u = r.usage
    cached = (u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0
    return {
        "status": 200,
        "usage": {"input": u.prompt_tokens, "cached": cached, "output": u.completion_tokens},
    }


def anthropic_chat(base, key, model):
    import anthropic

    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    try:
        r = client.messages.create(
            model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    except anthropic.APIStatusError as e:
        return {
            "status": e.status_code,
            "body": e.body,
            "remaining": e.response.headers.get("x-switchboard-budget-remaining"),
        }
    u = r.usage
    cached = u.cache_read_input_tokens or 0
    written = u.cache_creation_input_tokens or 0
    return {
        "status": 200,
        "usage": {
            "input": u.input_tokens + cached + written,
            "cached": cached,
            "output": u.output_tokens,
        },
    }


def openai_stream(base, key, model):
    from openai import OpenAI

    client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    stream = client.chat.completions.create(
        model=model,
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        for ch in chunk.choices:
            if ch.delta.content:
                text += ch.delta.content
        if chunk.usage:
            usage = chunk.usage
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    return {
        "status": 200,
        "text": text,
        "usage": {"input": usage.prompt_tokens, "cached": cached, "output": usage.completion_tokens},
    }


def refused(e):
    return {
        "status": e.status_code,
        "body": e.body,
        "remaining": e.response.headers.get("x-switchboard-budget-remaining"),
    }


def responses(base, key, model, stream):
    import openai

    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    try:
        if stream:
            usage, text = None, ""
            for ev in client.responses.create(model=model, input="hi", max_output_tokens=50, stream=True):
                if ev.type == "response.output_text.delta":
                    text += ev.delta
                if ev.type == "response.completed":
                    usage = ev.response.usage
        else:
            r = client.responses.create(model=model, input="hi", max_output_tokens=50)
            usage, text = r.usage, r.output_text
    except openai.APIStatusError as e:
        return refused(e)
    cached = usage.input_tokens_details.cached_tokens if usage.input_tokens_details else 0
    return {
        "status": 200,
        "text": text,
        "usage": {"input": usage.input_tokens, "cached": cached or 0, "output": usage.output_tokens},
    }


def embeddings(base, key, model):
    import openai

    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    try:
        r = client.embeddings.create(model=model, input="hi")
    except openai.APIStatusError as e:
        return refused(e)
    return {
        "status": 200,
        "dims": len(r.data[0].embedding),
        "usage": {"input": r.usage.prompt_tokens, "cached": 0, "output": 0},
    }


def burst(bases, key, model, n, threads):
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(lambda i: openai_chat(bases[i % len(bases)], key, model), range(n)))
    ok = [r for r in results if r["status"] == 200]
    refused = [r for r in results if r["status"] != 200]
    total = {"input": 0, "cached": 0, "output": 0}
    for r in ok:
        for k in total:
            total[k] += r["usage"][k]
    return {
        "ok": len(ok),
        "refused": len(refused),
        "statuses": sorted({r["status"] for r in results}),
        "usage": total,
        "refusal": refused[0] if refused else None,
    }


def main():
    cmd = sys.argv[1]
    if cmd == "chat":
        fmt, base, key, model = sys.argv[2:6]
        f = {"openai": openai_chat, "anthropic": anthropic_chat, "openai-stream": openai_stream}[fmt]
        out = f(base, key, model)
    elif cmd in ("responses", "responses-stream"):
        base, key, model = sys.argv[2:5]
        out = responses(base, key, model, cmd == "responses-stream")
    elif cmd == "embeddings":
        base, key, model = sys.argv[2:5]
        out = embeddings(base, key, model)
    elif cmd == "burst":
        bases, key, model, n, threads = sys.argv[2:7]
        out = burst(bases.split(","), key, model, int(n), int(threads))
    else:
        raise SystemExit("unknown command " + cmd)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
