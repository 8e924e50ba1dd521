"""The client-compatibility matrix: which real clients, which cases, and what a pass means.

Every client is driven by ``python/drive.py`` (in its own venv) or ``node/drive.mjs`` through:
non-streaming and streaming, ``model="auto"`` and an explicit model, with and without
``x-nadir-cost-in-body: 1``, for each API dialect it speaks. The emulator reports the fixed usage
``USAGE`` (``x-emulator-usage``), so every client must report exactly 40 input / 12 output tokens
(or nothing, where it did not ask for streamed usage), return the emulator's canned text, and raise
nothing. Explicit-model costs are worked out by hand below.

``python -m tests.compat.matrix [--all] [--direct]`` runs it against a fresh local stack and
prints the results table (README "Client compatibility"); ``--direct`` runs every client straight
at the emulator instead (what the client does without the sidecar).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.compat import env

USAGE = {"input": 40, "output": 12}
TEXT = 'You asked: "Say hi". This is a canned reply from the emulator.'
EXPLICIT = {"openai_chat": "gpt-4o-mini", "openai_responses": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
            "gemini": "gemini-2.5-flash"}
#: Cost of USAGE on the explicit model (USD per 1M tokens x tokens, genai-prices 0.2.3):
#: gpt-4o-mini 0.15/0.60: 40*0.15 + 12*0.60 = 6 + 7.2 = 13.2 -> 0.0000132;
#: claude-haiku-4-5 1/5: 40 + 60 = 100 -> 0.0001; gemini-2.5-flash 0.30/2.50: 12 + 30 = 42 -> 0.000042.
COST = {"openai_chat": "0.0000132", "openai_responses": "0.0000132", "anthropic": "0.0001", "gemini": "0.000042"}
#: instructor's answer: the emulator's tool call fills every field from the schema (string ->
#: "example", integer -> 42; nadir_extproc.emulator.common.example_arguments).
INSTRUCTOR_TEXT = '{"name":"example","age":42}'


@dataclass(frozen=True)
class Client:
    """One client library: ``name`` as its driver knows it, ``package`` and ``version`` as pinned,
    ``runtime`` ``python`` (venv group ``group``) or ``node``, the dialects it speaks, whether it
    has a non-streaming mode, and whether ``make test`` runs it (``ci``)."""

    name: str
    package: str
    version: str
    runtime: str
    group: str
    dialects: tuple[str, ...]
    ci: bool = False
    non_stream: bool = True
    headers_note: str = ""
    #: Its streamed Chat Completions requests ask for usage (``stream_options.include_usage``);
    #: when not, it must report none (the sidecar's own usage request stays invisible).
    chat_stream_usage: bool = True


def _pin(group: str, package: str) -> str:
    for line in (env.HERE / "python" / f"requirements-{group}.txt").read_text().splitlines():
        name, _, ver = line.partition("==")
        if name.split("[")[0].strip() == package:
            return ver.strip()
    raise KeyError(package)


def _npm(package: str) -> str:
    return json.loads((env.NODE_DIR / "package.json").read_text())["dependencies"][package]


OA, AN, GE, RE = "openai_chat", "anthropic", "gemini", "openai_responses"
CLIENTS: tuple[Client, ...] = (
    Client("openai", "openai", _pin("ci", "openai"), "python", "ci", (OA, RE), ci=True,
           chat_stream_usage=False, headers_note="`client.….with_raw_response.create(…).headers`; stream cost via `chunk.model_extra['nadir']`"),
    Client("anthropic", "anthropic", _pin("ci", "anthropic"), "python", "ci", (AN,), ci=True,
           headers_note="`with_raw_response` `.headers`; in a `messages.stream()`: `stream.response.headers`"),
    Client("google-genai", "google-genai", _pin("ci", "google-genai"), "python", "ci", (GE,), ci=True,
           headers_note="`response.sdk_http_response.headers`; drops unknown JSON fields (no `nadir`)"),
    Client("litellm", "litellm", _pin("frameworks", "litellm"), "python", "frameworks", (OA, AN, GE),
           headers_note="`response._hidden_params['additional_headers']` (`llm_provider-x-nadir-…`; OpenAI and Anthropic, not Gemini)"),
    Client("langchain-openai", "langchain-openai", _pin("frameworks", "langchain-openai"), "python", "frameworks", (OA,),
           chat_stream_usage=False, headers_note="`include_response_headers=True` → `response_metadata['headers']`"),
    Client("langchain-anthropic", "langchain-anthropic", _pin("frameworks", "langchain-anthropic"), "python", "frameworks", (AN,),
           headers_note="not in `response_metadata`"),
    Client("langchain-google-genai", "langchain-google-genai", _pin("frameworks", "langchain-google-genai"), "python",
           "frameworks", (GE,), headers_note="not in `response_metadata`"),
    Client("pydantic-ai", "pydantic-ai-slim", _pin("pydantic-ai", "pydantic-ai-slim"), "python", "pydantic-ai", (OA, AN, GE),
           headers_note="not exposed by the agent's results"),
    Client("instructor", "instructor", _pin("instructor", "instructor"), "python", "instructor", (OA, AN),
           chat_stream_usage=False, headers_note="not exposed (`create_with_completion` returns the SDK object, not its headers)"),
    Client("httpx-sse", "httpx-sse", _pin("frameworks", "httpx-sse"), "python", "frameworks", (OA, RE, AN, GE),
           non_stream=False, chat_stream_usage=False, headers_note="`event_source.response.headers`; comments skipped, `nadir` in the JSON"),
    Client("sseclient-py", "sseclient-py", _pin("frameworks", "sseclient-py"), "python", "frameworks", (OA, RE, AN, GE),
           non_stream=False, chat_stream_usage=False, headers_note="the HTTP response's headers; comments skipped, `nadir` in the JSON"),
    Client("openai", "openai", _npm("openai"), "node", "node", (OA, RE), ci=True,
           chat_stream_usage=False, headers_note="`.withResponse()` → `response.headers`; stream cost via `chunk.nadir`"),
    Client("@anthropic-ai/sdk", "@anthropic-ai/sdk", _npm("@anthropic-ai/sdk"), "node", "node", (AN,), ci=True,
           headers_note="`.withResponse()` → `response.headers`"),
    Client("@google/genai", "@google/genai", _npm("@google/genai"), "node", "node", (GE,), ci=True,
           headers_note="`response.sdkHttpResponse.headers`"),
    Client("ai", "ai", _npm("ai"), "node", "node", (OA, RE, AN, GE),
           headers_note="`result.response.headers` (`@ai-sdk/openai` " + _npm("@ai-sdk/openai") + ", `@ai-sdk/anthropic` "
           + _npm("@ai-sdk/anthropic") + ", `@ai-sdk/google` " + _npm("@ai-sdk/google") + ")"),
)


def cases(c: Client, direct: bool = False) -> list[dict]:
    """Every case of client ``c``: dialect x stream x (auto, explicit) x cost-in-body. ``direct``
    (straight at the emulator): explicit models only, as ``auto`` means something only to us."""
    out = []
    for d in c.dialects:
        for stream in ((False, True) if c.non_stream else (True,)):
            for model in ((EXPLICIT[d],) if direct else ("auto", EXPLICIT[d])):
                for cib in (False, True):
                    h = {"x-emulator-usage": json.dumps(USAGE)}
                    if cib:
                        h["x-nadir-cost-in-body"] = "1"
                    out.append({"dialect": d, "stream": stream, "model": model, "cost_in_body": cib, "headers": h})
    return out


def run(c: Client, base_url: str, timeout_s: float = 600, direct: bool = False) -> list[dict]:
    """Run every case of ``c`` (``cases(c, direct)``) against ``base_url``; the driver's results.
    Builds the client's environment first (``tests.compat.env``; raises ``env.EnvError``)."""
    if c.runtime == "node":
        d = env.node_env()
        args = [env.node_bin() or "node", str(d / "drive.mjs")]
    else:
        args = [str(env.python_env(c.group)), str(env.HERE / "python" / "drive.py")]
    p = subprocess.run([*args, c.name, base_url, json.dumps(cases(c, direct))], capture_output=True, text=True,
                       timeout=timeout_s, cwd=str(env.HERE))
    if p.returncode != 0 or not p.stdout.strip():
        raise RuntimeError(f"driver for {c.name} failed ({p.returncode}): {p.stderr[-3000:]}")
    return json.loads(p.stdout)


def problems(c: Client, r: dict, via_sidecar: bool = True) -> list[str]:
    """What is wrong with one result (empty: it passed). ``via_sidecar``: also check the
    ``x-nadir-*`` fields the client exposes."""
    if not r["ok"]:
        return [f"raised {r['error']}"]
    out = []
    want_text = INSTRUCTOR_TEXT if c.name == "instructor" else TEXT
    if r["text"] != want_text:
        out.append(f"text {r['text']!r}")
    # A client that did not ask for streamed Chat usage must see none; every other usage is the
    # emulator's fixed one (instructor's partial streams expose no usage at all).
    got = (r["input"], r["output"])
    if r["stream"] and (c.name == "instructor" or (r["dialect"] == OA and not c.chat_stream_usage)):
        if got != (None, None):
            out.append(f"reported usage {got} it did not ask for")
    elif got != (USAGE["input"], USAGE["output"]):
        out.append(f"usage {got}")
    if via_sidecar:
        h = r.get("headers")
        if h is not None and r["model"] != "auto" and not r["stream"] and h.get("x-nadir-cost-usd") != COST[r["dialect"]]:
            out.append(f"x-nadir-cost-usd {h.get('x-nadir-cost-usd')!r} != {COST[r['dialect']]}")
        if h is not None and "x-nadir-routed-to" not in h:
            out.append("no x-nadir-routed-to header")
        n = r.get("nadir")
        if n is not None and r["model"] != "auto" and n.get("cost_usd") != COST[r["dialect"]]:
            out.append(f"nadir.cost_usd {n.get('cost_usd')!r} != {COST[r['dialect']]}")
        if n is not None and not r["cost_in_body"]:
            out.append("nadir object without the opt-in header")
    return out


def label(r: dict) -> str:
    return (f"{r['dialect']} {'stream' if r['stream'] else 'json'} model={r['model']}"
            f"{' cost-in-body' if r['cost_in_body'] else ''}")


def main(argv: list[str]) -> int:
    from nadir_extproc.stack import Stack

    chosen = [c for c in CLIENTS if "--all" in argv or c.ci]
    direct = "--direct" in argv
    rows = []
    with Stack(start_extproc=not direct) as s:
        base = s.emulator_url if direct else s.base_url
        for c in chosen:
            try:
                res = run(c, base, direct=direct)
            except Exception as e:  # noqa: BLE001
                rows.append((c, None, str(e)[:300]))
                continue
            bad = [(label(r), p) for r in res for p in problems(c, r, not direct)]
            rows.append((c, res, "; ".join(f"{lbl}: {p}" for lbl, p in bad[:3])))
    print("| client | version | runtime | dialects | streaming | result | x-nadir-* headers |")
    print("|---|---|---|---|---|---|---|")
    for c, res, bad in rows:
        n = len(res or [])
        verdict = f"pass ({n} cases)" if res and not bad else f"FAIL: {bad}"
        print(f"| `{c.package}` | {c.version} | {c.runtime} | {', '.join(c.dialects)} | "
              f"{'yes' if not c.non_stream else 'yes + non-streaming'} | {verdict} | {c.headers_note} |")
    return 0 if all(res and not bad for _, res, bad in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
