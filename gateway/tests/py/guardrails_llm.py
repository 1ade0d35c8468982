"""Drives the openai / anthropic Python SDKs at a Switchboard LLM route with guardrails.

Usage: guardrails_llm.py CHECK BASE_URL MODEL PROMPT. Prints one JSON object: the assembled
answer text (and, for streams, how many text pieces arrived), or the error the SDK raised.
"""
import json
import sys


def openai_client(base):
    from openai import OpenAI

    return OpenAI(base_url=base + "/v1", api_key="client-key", max_retries=0)


def anthropic_client(base):
    from anthropic import Anthropic

    return Anthropic(base_url=base, api_key="client-key", max_retries=0)


def openai_chat(base, model, prompt):
    import openai

    try:
        r = openai_client(base).chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
    except openai.APIStatusError as e:
        return {"status": e.status_code, "body": e.body, "message": str(e)}
    return {"status": 200, "text": r.choices[0].message.content}


def anthropic_chat(base, model, prompt):
    import anthropic

    try:
        r = anthropic_client(base).messages.create(
            model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}]
        )
    except anthropic.APIStatusError as e:
        return {"status": e.status_code, "body": e.body, "message": str(e)}
    return {"status": 200, "text": "".join(b.text for b in r.content if b.type == "text")}


def openai_stream(base, model, prompt, seen=None):
    seen = seen if seen is not None else {}
    stream = openai_client(base).chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True
    )
    text, pieces = "", 0
    for chunk in stream:
        for ch in chunk.choices:
            if ch.delta.content:
                text += ch.delta.content
                seen["text"] = text
                pieces += 1
    return {"status": 200, "text": text, "pieces": pieces}


def anthropic_stream(base, model, prompt, seen=None):
    seen = seen if seen is not None else {}
    text, pieces = "", 0
    with anthropic_client(base).messages.stream(
        model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        for t in stream.text_stream:
            if t:
                text += t
                seen["text"] = text
                pieces += 1
    return {"status": 200, "text": text, "pieces": pieces}


def openai_stream_checked(base, model, prompt):
    return stream_until_error(openai_stream)(base, model, prompt)


def anthropic_stream_checked(base, model, prompt):
    return stream_until_error(anthropic_stream)(base, model, prompt)


def openai_stream_timed(base, model, prompt):
    """Seconds from the request to the first text piece and to the end of the stream."""
    import time

    start = time.monotonic()
    stream = openai_client(base).chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True
    )
    first, text = None, ""
    for chunk in stream:
        for ch in chunk.choices:
            if ch.delta.content:
                if first is None:
                    first = time.monotonic() - start
                text += ch.delta.content
    return {"status": 200, "text": text, "first_token_s": first, "total_s": time.monotonic() - start}


def stream_until_error(check):
    """The stream check, reporting an error the SDK raised mid-stream and the text before it."""
    import anthropic
    import openai

    def run(base, model, prompt):
        seen = {"text": ""}
        try:
            return check(base, model, prompt, seen)
        except (openai.APIError, anthropic.APIError) as e:
            return {"status": "stream_error", "message": str(e), "text": seen["text"]}

    return run


if __name__ == "__main__":
    check, base, model, prompt = sys.argv[1:5]
    print(json.dumps(globals()[check](base, model, prompt)))
