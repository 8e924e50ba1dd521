"""Drive one real Python client library through a list of cases; print one JSON result per case.

Run inside the client's own virtualenv (``tests/compat/env.py``), never the project's:

    python drive.py CLIENT BASE_URL CASES_JSON

``BASE_URL`` is Envoy's listener (or the emulator itself, to see what the client does without the
sidecar). Each case is ``{"dialect", "stream", "model", "cost_in_body", "headers"}``; each result
is the case plus ``ok``, ``error`` (the exception, ``None`` if none), ``text`` (what the client
returned), ``input``/``output`` (the usage the client reports; ``None`` when it reports none),
``headers`` (the ``x-nadir-*`` response headers the client lets the application read; ``None``
when it exposes none) and ``nadir`` (the in-body cost object where the client exposes it).
This file only uses each library's documented public API, the way an application would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from typing import Any

PROMPT = "Say hi"
# Nothing but loopback traffic: litellm would fetch its model cost map from the internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")


def _nadir(h: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in dict(h or {}).items() if k.lower().startswith("x-nadir-")}


def _sse_lines_text(dialect: str, data: dict, acc: dict) -> None:
    """Text and usage from one parsed SSE ``data`` object of ``dialect`` (raw SSE clients)."""
    if "nadir" in data:
        acc["nadir"] = data["nadir"]
    if dialect == "openai_chat":
        for c in data.get("choices") or []:
            acc["text"] += (c.get("delta") or {}).get("content") or ""
        if data.get("usage"):
            acc["input"], acc["output"] = data["usage"]["prompt_tokens"], data["usage"]["completion_tokens"]
    elif dialect == "openai_responses":
        if data.get("type") == "response.output_text.delta":
            acc["text"] += data["delta"]
        if data.get("type") == "response.completed":
            u = data["response"]["usage"]
            acc["input"], acc["output"] = u["input_tokens"], u["output_tokens"]
            acc["nadir"] = data.get("nadir", acc.get("nadir"))
    elif dialect == "anthropic":
        if data.get("type") == "content_block_delta":
            acc["text"] += data["delta"].get("text", "")
        if data.get("type") == "message_start":
            acc["input"] = data["message"]["usage"]["input_tokens"]
        if data.get("type") == "message_delta":
            acc["output"] = data["usage"]["output_tokens"]
    elif dialect == "gemini":
        for c in data.get("candidates") or []:
            for p in (c.get("content") or {}).get("parts") or []:
                acc["text"] += p.get("text", "")
        if data.get("usageMetadata"):
            acc["input"] = data["usageMetadata"].get("promptTokenCount")
            acc["output"] = data["usageMetadata"].get("candidatesTokenCount")


def _raw_request(base: str, case: dict) -> tuple[str, dict, dict]:
    """(url, JSON body, headers) of a streamed request in ``case["dialect"]``'s wire format."""
    d, m = case["dialect"], case["model"]
    h = {"content-type": "application/json", "authorization": "Bearer sk-compat", "x-api-key": "sk-compat",
         **case["headers"]}
    if d == "openai_chat":
        return f"{base}/v1/chat/completions", {"model": m, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}, h
    if d == "openai_responses":
        return f"{base}/v1/responses", {"model": m, "stream": True, "input": PROMPT}, h
    if d == "anthropic":
        h["anthropic-version"] = "2023-06-01"
        return f"{base}/v1/messages", {"model": m, "stream": True, "max_tokens": 200, "messages": [{"role": "user", "content": PROMPT}]}, h
    return (f"{base}/v1beta/models/{m}:streamGenerateContent?alt=sse",
            {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}, h)


# ---------------------------------------------------------------------------------- clients
def c_openai(base: str, case: dict) -> dict:
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-compat", max_retries=0, default_headers=case["headers"])
    msgs = [{"role": "user", "content": PROMPT}]
    if case["dialect"] == "openai_responses":
        if not case["stream"]:
            raw = client.responses.with_raw_response.create(model=case["model"], input=PROMPT)
            r = raw.parse()
            return {"text": r.output_text, "input": r.usage.input_tokens, "output": r.usage.output_tokens, "headers": _nadir(raw.headers)}
        text, out = "", {}
        with client.responses.with_streaming_response.create(model=case["model"], input=PROMPT, stream=True) as raw:
            hdrs = _nadir(raw.headers)
            for ev in raw.parse():
                if ev.type == "response.output_text.delta":
                    text += ev.delta
                elif ev.type == "response.completed":
                    out = {"input": ev.response.usage.input_tokens, "output": ev.response.usage.output_tokens,
                           "nadir": (ev.model_extra or {}).get("nadir")}
        return {"text": text, "headers": hdrs, **out}
    if not case["stream"]:
        raw = client.chat.completions.with_raw_response.create(model=case["model"], messages=msgs)
        r = raw.parse()
        return {"text": r.choices[0].message.content, "input": r.usage.prompt_tokens,
                "output": r.usage.completion_tokens, "headers": _nadir(raw.headers)}
    # The most common loop: no stream_options, chunk.choices[0].delta.content on every chunk.
    text, usage, nadir = "", None, None
    with client.chat.completions.with_streaming_response.create(model=case["model"], messages=msgs, stream=True) as raw:
        hdrs = _nadir(raw.headers)
        for chunk in raw.parse():
            text += chunk.choices[0].delta.content or ""
            usage = chunk.usage or usage
            nadir = (chunk.model_extra or {}).get("nadir") or nadir
    return {"text": text, "input": usage and usage.prompt_tokens, "output": usage and usage.completion_tokens,
            "headers": hdrs, "nadir": nadir}


def c_anthropic(base: str, case: dict) -> dict:
    import anthropic

    client = anthropic.Anthropic(base_url=base, api_key="sk-compat", max_retries=0, default_headers=case["headers"])
    kw = dict(model=case["model"], max_tokens=200, messages=[{"role": "user", "content": PROMPT}])
    if not case["stream"]:
        raw = client.messages.with_raw_response.create(**kw)
        m = raw.parse()
        return {"text": m.content[0].text, "input": m.usage.input_tokens, "output": m.usage.output_tokens, "headers": _nadir(raw.headers)}
    with client.messages.stream(**kw) as s:
        text = "".join(s.text_stream)
        m = s.get_final_message()
        hdrs = _nadir(s.response.headers)
    return {"text": text, "input": m.usage.input_tokens, "output": m.usage.output_tokens, "headers": hdrs}


def c_google_genai(base: str, case: dict) -> dict:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="compat-key", http_options=types.HttpOptions(base_url=base, headers=case["headers"]))
    if not case["stream"]:
        r = client.models.generate_content(model=case["model"], contents=PROMPT)
        hdrs = _nadir(r.sdk_http_response.headers) if r.sdk_http_response else None
        return {"text": r.text, "input": r.usage_metadata.prompt_token_count,
                "output": r.usage_metadata.candidates_token_count, "headers": hdrs}
    text, last = "", None
    for chunk in client.models.generate_content_stream(model=case["model"], contents=PROMPT):
        text += chunk.text or ""
        last = chunk
    hdrs = _nadir(last.sdk_http_response.headers) if last.sdk_http_response else None

    async def aio() -> str:  # the aio client failed the same way (issue 13)
        t = ""
        async for ch in await client.aio.models.generate_content_stream(model=case["model"], contents=PROMPT):
            t += ch.text or ""
        return t

    atext = asyncio.run(aio())
    if atext != text:
        raise AssertionError(f"aio client text {atext!r} != sync {text!r}")
    return {"text": text, "input": last.usage_metadata.prompt_token_count,
            "output": last.usage_metadata.candidates_token_count, "headers": hdrs}


def c_litellm(base: str, case: dict) -> dict:
    import litellm

    d = case["dialect"]
    prefix = {"openai_chat": "openai", "anthropic": "anthropic", "gemini": "gemini"}[d]
    api_base = {"openai_chat": f"{base}/v1", "anthropic": base, "gemini": f"{base}/v1beta"}[d]
    kw = dict(model=f"{prefix}/{case['model']}", api_base=api_base, api_key="sk-compat", max_tokens=200,
              messages=[{"role": "user", "content": PROMPT}], extra_headers=case["headers"], num_retries=0)
    if not case["stream"]:
        r = litellm.completion(**kw)
        hp = getattr(r, "_hidden_params", {}) or {}
        # litellm hands the provider's response headers on for some providers only (not Gemini).
        hdrs = {k.removeprefix("llm_provider-"): v for k, v in (hp.get("additional_headers") or {}).items()}
        return {"text": r.choices[0].message.content, "input": r.usage.prompt_tokens,
                "output": r.usage.completion_tokens, "headers": _nadir(hdrs) if hdrs else None}
    text, usage = "", None
    for chunk in litellm.completion(stream=True, stream_options={"include_usage": True}, **kw):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = getattr(chunk, "usage", None) or usage
    return {"text": text, "input": usage and usage.prompt_tokens, "output": usage and usage.completion_tokens}


def _lc_result(model: Any, stream: bool) -> dict:
    if not stream:
        m = model.invoke(PROMPT)
        u = m.usage_metadata or {}
        hdrs = (m.response_metadata or {}).get("headers")
        return {"text": m.content if isinstance(m.content, str) else m.text, "input": u.get("input_tokens"),
                "output": u.get("output_tokens"), "headers": _nadir(hdrs) if hdrs else None}
    text, usage = "", None
    agg = None
    for ch in model.stream(PROMPT):
        agg = ch if agg is None else agg + ch
    text = agg.content if isinstance(agg.content, str) else agg.text
    u = agg.usage_metadata
    return {"text": text, "input": u and u.get("input_tokens"), "output": u and u.get("output_tokens")}


def c_langchain_openai(base: str, case: dict) -> dict:
    from langchain_openai import ChatOpenAI

    # stream_usage=False: the client asks for no streamed usage and must get none (issue 13).
    m = ChatOpenAI(model=case["model"], base_url=f"{base}/v1", api_key="sk-compat", max_retries=0,
                   default_headers=case["headers"], stream_usage=False, include_response_headers=True)
    return _lc_result(m, case["stream"])


def c_langchain_anthropic(base: str, case: dict) -> dict:
    from langchain_anthropic import ChatAnthropic

    m = ChatAnthropic(model=case["model"], base_url=base, api_key="sk-compat", max_retries=0, max_tokens=200,
                      default_headers=case["headers"])
    return _lc_result(m, case["stream"])


def c_langchain_google_genai(base: str, case: dict) -> dict:
    from langchain_google_genai import ChatGoogleGenerativeAI

    m = ChatGoogleGenerativeAI(model=case["model"], google_api_key="compat-key", base_url=base,
                               additional_headers=case["headers"], max_retries=0)
    return _lc_result(m, case["stream"])


def c_pydantic_ai(base: str, case: dict) -> dict:
    try:  # the SDKs pydantic-ai wraps moved to httpx2; older releases take an httpx client
        import httpx2 as httpx
    except ImportError:
        import httpx
    from pydantic_ai import Agent

    http = httpx.AsyncClient(headers=case["headers"], timeout=60)
    d = case["dialect"]
    if d == "openai_chat":
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        model = OpenAIChatModel(case["model"], provider=OpenAIProvider(base_url=f"{base}/v1", api_key="sk-compat", http_client=http))
    elif d == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        model = AnthropicModel(case["model"], provider=AnthropicProvider(base_url=base, api_key="sk-compat", http_client=http))
    else:
        from pydantic_ai.models.google import GoogleModel
        from pydantic_ai.providers.google import GoogleProvider

        model = GoogleModel(case["model"], provider=GoogleProvider(api_key="compat-key", base_url=base, http_client=http))
    agent = Agent(model)
    if not case["stream"]:
        r = agent.run_sync(PROMPT)
        u = r.usage() if callable(r.usage) else r.usage
        return {"text": r.output, "input": u.input_tokens, "output": u.output_tokens}

    async def run() -> dict:
        async with agent.run_stream(PROMPT) as s:
            text = ""
            async for t in s.stream_text(delta=True):
                text += t
            u = s.usage() if callable(s.usage) else s.usage
        return {"text": text, "input": u.input_tokens or None, "output": u.output_tokens or None}

    return asyncio.run(run())


def c_instructor(base: str, case: dict) -> dict:
    import instructor
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    msgs = [{"role": "user", "content": PROMPT}]
    if case["dialect"] == "anthropic":
        import anthropic

        client = instructor.from_anthropic(anthropic.Anthropic(base_url=base, api_key="sk-compat", max_retries=0,
                                                               default_headers=case["headers"]))
        kw = dict(model=case["model"], max_tokens=200, messages=msgs, response_model=Person)
    else:
        import openai

        client = instructor.from_openai(openai.OpenAI(base_url=f"{base}/v1", api_key="sk-compat", max_retries=0,
                                                      default_headers=case["headers"]))
        kw = dict(model=case["model"], messages=msgs, response_model=Person)
    if not case["stream"]:
        p, raw = client.create_with_completion(**kw)
        u = raw.usage
        inp = getattr(u, "prompt_tokens", None) or getattr(u, "input_tokens", None)
        out = getattr(u, "completion_tokens", None) or getattr(u, "output_tokens", None)
        return {"text": p.model_dump_json(), "input": inp, "output": out}
    last = None
    for partial in client.create_partial(**kw):
        last = partial
    return {"text": last.model_dump_json(), "input": None, "output": None}


def c_httpx_sse(base: str, case: dict) -> dict:
    import httpx
    from httpx_sse import connect_sse

    url, body, h = _raw_request(base, case)
    acc: dict = {"text": "", "input": None, "output": None}
    with httpx.Client(timeout=20) as c, connect_sse(c, "POST", url, json=body, headers=h) as es:
        es.response.raise_for_status()
        acc["headers"] = _nadir(es.response.headers)
        for sse in es.iter_sse():
            if sse.data and sse.data != "[DONE]":
                _sse_lines_text(case["dialect"], json.loads(sse.data), acc)
    return acc


def c_sseclient_py(base: str, case: dict) -> dict:
    import urllib.request

    import sseclient

    url, body, h = _raw_request(base, case)
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=h, method="POST")
    acc: dict = {"text": "", "input": None, "output": None}
    with urllib.request.urlopen(req, timeout=20) as r:
        acc["headers"] = _nadir(r.headers)
        for ev in sseclient.SSEClient(iter(lambda: r.read1(65536), b"")).events():
            if ev.data and ev.data != "[DONE]":
                _sse_lines_text(case["dialect"], json.loads(ev.data), acc)
    return acc


CLIENTS = {
    "openai": c_openai, "anthropic": c_anthropic, "google-genai": c_google_genai, "litellm": c_litellm,
    "langchain-openai": c_langchain_openai, "langchain-anthropic": c_langchain_anthropic,
    "langchain-google-genai": c_langchain_google_genai, "pydantic-ai": c_pydantic_ai,
    "instructor": c_instructor, "httpx-sse": c_httpx_sse, "sseclient-py": c_sseclient_py,
}


def main() -> int:
    client, base, cases = sys.argv[1], sys.argv[2].rstrip("/"), json.loads(sys.argv[3])
    fn = CLIENTS[client]
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # libraries that print must not mix in
    out = []
    for case in cases:
        res = {**case, "ok": False, "error": None, "text": None, "input": None, "output": None, "headers": None, "nadir": None}
        try:
            res.update(fn(base, case))
            res["ok"] = True
        except BaseException as e:  # noqa: BLE001 — every failure is a result
            res["error"] = f"{type(e).__module__}.{type(e).__name__}: {e}"[:1500]
            res["traceback"] = traceback.format_exc()[-3000:]
        out.append(res)
    json.dump(out, real_stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
