"""Usage of streamed responses, per dialect, on recorded real streams and on the shared cases.

Expected token counts are read by hand from the recorded files (quoted in each row)."""

from __future__ import annotations

import json
import random

import pytest

from nadir_extproc.dialects import DIALECTS
from nadir_extproc.dialects.base import DROP, TERMINAL, USAGE
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.sse import SSEParser
from tests.conftest import load_case

chat, responses, messages = DIALECTS["openai_chat"], DIALECTS["openai_responses"], DIALECTS["anthropic_messages"]


def run(dialect, data: bytes, cuts=(), injected=False):
    st = dialect.stream_usage(injected)
    p = SSEParser()
    verdicts = []
    prev = 0
    for c in [*cuts, len(data)]:
        events, _ = p.feed(data[prev:c])
        prev = c
        verdicts += [(e, st.on_event(e)) for e in events]
    return st, verdicts


RECORDED = [
    # 03: "usage":{"prompt_tokens":12,"completion_tokens":100,...,"reasoning_tokens":100}
    ("03-openai-chat-stream-include-usage", chat, "gpt-5-nano-2025-08-07", Usage(uncached_input_tokens=12, output_tokens=100, reasoning_tokens=100)),
    # 04: no include_usage -> no usage anywhere in the stream
    ("04-openai-chat-stream-no-usage", chat, "gpt-5-nano-2025-08-07", None),
    ("15-openai-chat-stream-gpt-4o-mini", chat, "gpt-4o-mini-2024-07-18", Usage(uncached_input_tokens=53, output_tokens=15)),
    ("16-openai-chat-stream-gpt-5", chat, "gpt-5-2025-08-07", Usage(uncached_input_tokens=13, output_tokens=11)),
    # 47: OpenAI-compatible router, usage chunk with choices: [] and null details
    ("47-huggingface-router-stream", chat, "meta-llama/llama-3.1-8b-instruct", Usage(uncached_input_tokens=40, output_tokens=2)),
    ("20-openai-responses-stream-gpt-4o", responses, "gpt-4o-2024-08-06", Usage(uncached_input_tokens=255, output_tokens=16)),
    ("21-openai-responses-stream-gpt-5-usage", responses, "gpt-5-2025-08-07", Usage(uncached_input_tokens=53, output_tokens=469, reasoning_tokens=448)),
    # 30: message_start input 20 / output 1, message_delta output 5
    ("30-anthropic-stream-basic", messages, "claude-sonnet-4-5-20250929", Usage(uncached_input_tokens=20, output_tokens=5)),
    ("33-anthropic-stream-tool-search", messages, "claude-sonnet-4-6", Usage(uncached_input_tokens=1007, output_tokens=59)),
]


@pytest.mark.parametrize("rid, dialect, model, expected", RECORDED, ids=[r[0] for r in RECORDED])
def test_recorded_stream_usage_whole_and_rechunked(provider_responses, rid, dialect, model, expected):
    data = (provider_responses / f"{rid}.response.sse").read_bytes()
    st, verdicts = run(dialect, data)
    assert st.usage() == expected and st.model == model and not st.failed
    assert sum(1 for _, v in verdicts if v & TERMINAL) == 1
    rng = random.Random(rid)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), min(30, len(data) - 1)))
        st2, verdicts2 = run(dialect, data, cuts)
        assert st2.usage() == expected and st2.model == model
        assert [(e.raw, v) for e, v in verdicts2] == [(e.raw, v) for e, v in verdicts]


def test_terminal_events_per_dialect(provider_responses):
    def terminal(rid, d):
        _, v = run(d, (provider_responses / f"{rid}.response.sse").read_bytes())
        return [e.event or e.data for e, x in v if x & TERMINAL]
    assert terminal("15-openai-chat-stream-gpt-4o-mini", chat) == ["[DONE]"]
    assert terminal("20-openai-responses-stream-gpt-4o", responses) == ["response.completed"]
    assert terminal("30-anthropic-stream-basic", messages) == ["message_stop"]


@pytest.mark.parametrize("variant", ["A_official_shape_delta_repeats_input_fields", "B_delta_has_only_output_tokens",
                                     "C_compatible_backend_usage_only_on_delta", "D_server_tool_iterations_delta_input_grew"])
def test_anthropic_running_totals_shared_case_04(cases_dir, variant):
    case = load_case(cases_dir, "04-anthropic-stream-cumulative-usage")
    st, _ = run(messages, case["input"][variant].encode())
    # A, B, C: 1200 uncached + 8000 cache read, 87 output (never summed); D: input grew to 2950, output 140.
    if variant.startswith("D"):
        assert st.usage() == Usage(uncached_input_tokens=2950, cache_read_tokens=8000, output_tokens=140)
    else:
        assert st.usage() == Usage(uncached_input_tokens=1200, cache_read_tokens=8000, output_tokens=87)


@pytest.mark.parametrize("variant", ["A_openai_final_usage_chunk", "B_compatible_cumulative_usage_every_chunk"])
def test_openai_usage_chunk_and_cumulative_usage_shared_case_05(cases_dir, variant):
    case = load_case(cases_dir, "05-openai-stream-usage-chunk-empty-choices")
    key = next(k for k in case["input"] if k.startswith(variant[:2]))
    st, verdicts = run(chat, case["input"][key].encode())
    assert st.usage() == Usage(uncached_input_tokens=57, output_tokens=12)  # last, not summed (171/18)
    assert all(not v & DROP for _, v in verdicts)  # the client asked for usage: nothing is removed
    # A has the usage-only chunk (choices: []), B repeats usage on content chunks instead.
    assert sum(1 for _, v in verdicts if v & USAGE) == (1 if variant.startswith("A") else 0)


def test_injected_usage_chunk_is_dropped_only_when_we_asked(provider_responses):
    data = (provider_responses / "15-openai-chat-stream-gpt-4o-mini.response.sse").read_bytes()
    st, verdicts = run(chat, data, injected=True)
    dropped = [e for e, v in verdicts if v & DROP]
    assert len(dropped) == 1 and json.loads(dropped[0].data)["choices"] == []
    assert st.usage() == Usage(uncached_input_tokens=53, output_tokens=15)


def test_responses_usage_only_in_completed_shared_case_25(cases_dir):
    case = load_case(cases_dir, "25-responses-api-usage-shape")
    st, _ = run(responses, case["input"]["streaming"]["sse_body"].encode())
    # 9000 input incl. 6144 cached -> 2856 uncached; 2500 output incl. 1900 reasoning.
    assert st.usage() == Usage(uncached_input_tokens=2856, cache_read_tokens=6144, output_tokens=2500, reasoning_tokens=1900)


def test_anthropic_error_event_after_200_marks_failed_with_what_is_known():
    data = (
        b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-haiku-4-5-20251001",'
        b'"usage":{"input_tokens":31,"output_tokens":1}}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    st, _ = run(messages, data)
    assert st.failed and st.usage() == Usage(uncached_input_tokens=31, output_tokens=1)


def test_injection_keeps_every_other_byte_and_skips_when_not_needed(cases_dir):
    """06-stream-options-include-usage-injection: include_usage added only to streamed Chat
    Completions that did not ask, every other byte kept (B: not streamed, D: Responses API)."""
    case = load_case(cases_dir, "06-stream-options-include-usage-injection")
    a_body = case["input"]["requests"][0]["request_body"]  # request A
    a_raw = json.dumps(a_body).encode()
    assert json.loads(chat.inject_stream_usage(a_raw, a_body)) == case["expected"]["per_request"][0]["expected_upstream_body"]
    raw = b'{"model":"gpt-4o-mini", "stream": true, "messages":[{"role":"user","content":"hi"}]}'
    new = chat.inject_stream_usage(raw, json.loads(raw))
    assert new == raw[:-1] + b',"stream_options":{"include_usage":true}}'
    asked = b'{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
    assert chat.inject_stream_usage(asked, json.loads(asked)) is None
    not_streamed = b'{"model":"m","messages":[]}'
    assert chat.inject_stream_usage(not_streamed, json.loads(not_streamed)) is None  # case 06 B
    other = b'{"model":"m","stream":true,"stream_options":{"foo":1},"messages":[]}'
    assert json.loads(chat.inject_stream_usage(other, json.loads(other)))["stream_options"] == {"foo": 1, "include_usage": True}
    assert responses.inject_stream_usage(b'{"model":"m","stream":true}', {"model": "m", "stream": True}) is None  # case 06 D
