"""Streamed responses through the real ``RequestProcessor`` (protobuf messages as Envoy sends them),
on recorded provider streams from ``/work/shared/data/provider-responses``:

- ``gen_ai.response.id`` / ``gen_ai.response.finish_reasons`` of a stream reach the ``Outcome``
  and the span (values read by hand from the recordings, written out below);
- a stream whose terminal event went through is ``ok`` even when the client hangs up right after
  it (Envoy closes the gRPC stream before ``end_of_stream``), a stream cut before it is ``cut`` —
  on the span (``nadir.stream.cut``) and in the ledger row (``ok`` / ``cut_stream``).

The through-Envoy versions of these are in ``test_through_envoy.py`` and
``tests/integration/test_allocation.py``; this file pins every dialect on real provider bytes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from nadir_extproc.config import Settings
from nadir_extproc.ledger.schema import from_outcome
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep
from nadir_extproc.server import Context
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.record import Outcome
from nadir_extproc.routing.rules import RuleRouter

DATA = Path("/work/shared/data/provider-responses")
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"recorded provider responses not found at {DATA}")

# (recording, request path, response id, finish reasons, terminal event marker) — read by hand
# from the .sse files: chat 03 ends on "finish_reason":"length"; Responses 20 on
# response.completed (status "completed", incomplete_details null); Anthropic 30's message_delta
# has stop_reason "end_turn"; Gemini 38's last chunk has finishReason "STOP".
CASES = [
    ("03-openai-chat-stream-include-usage", "/v1/chat/completions", "chatcmpl-C4Hq5a6K3RaPMymUv70btQNYv6SvY", ["length"], b"data: [DONE]"),
    ("20-openai-responses-stream-gpt-4o", "/v1/responses", "resp_67e554a155508191900ee113293c4c830794405d35281ae2", ["completed"], b"event: response.completed"),
    ("30-anthropic-stream-basic", "/v1/messages", "msg_018E1hg8GoVTGEKQY3ovMcSJ", ["end_turn"], b"event: message_stop"),
    ("38-gemini-stream-usage", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "ru1garvBEoOiqtsP2fznmQw", ["STOP"], None),
]


def _headers(field: str, h: dict[str, str], eos: bool = False) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in h.items()])
    return ep.ProcessingRequest(**{field: ep.HttpHeaders(headers=hm, end_of_stream=eos)})


def _body(field: str, data: bytes, eos: bool) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(**{field: ep.HttpBody(body=data, end_of_stream=eos)})


def _start(name: str, path: str) -> tuple[RequestProcessor, list[Outcome], bytes]:
    s = Settings()
    pol = s.policy()
    seen: list[Outcome] = []
    proc = RequestProcessor(Context(settings=s, router=RuleRouter(pol), policy=pol, on_complete=seen.append))
    proc.handle(_headers("request_headers", {":method": "POST", ":path": path, "content-type": "application/json"}))
    proc.handle(_body("request_body", (DATA / f"{name}.request.json").read_bytes(), True))
    proc.handle(_headers("response_headers", {":status": "200", "content-type": "text/event-stream"}))
    return proc, seen, (DATA / f"{name}.response.sse").read_bytes()


def _event_end(raw: bytes, start: int = 0) -> int:
    """Offset just past the blank line that ends the event at or after ``start`` (LF or CRLF)."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := raw.find(sep, start)) >= 0]
    return min(ends)


def _pieces(raw: bytes, size: int = 97) -> list[bytes]:
    """The stream in odd-sized chunks (events split across chunks, as the network does)."""
    return [raw[i:i + size] for i in range(0, len(raw), size)]


@pytest.mark.parametrize("name, path, rid, reasons, _terminal", CASES, ids=[c[0][:2] for c in CASES])
def test_stream_response_id_and_finish_reasons_reach_outcome_and_span(mem, name, path, rid, reasons, _terminal):
    proc, seen, raw = _start(name, path)
    chunks = _pieces(raw)
    for i, c in enumerate(chunks):
        proc.handle(_body("response_body", c, i == len(chunks) - 1))
    proc.finish()
    (out,) = seen
    assert (out.response_id, out.finish_reasons, out.result) == (rid, reasons, "ok")
    mem.tel.record(out)
    a = dict(mem.only_span().attributes)
    assert a["gen_ai.response.id"] == rid
    assert list(a["gen_ai.response.finish_reasons"]) == reasons
    assert a["nadir.stream"] is True and a["nadir.stream.cut"] is False


@pytest.mark.parametrize("name, path, rid, reasons, terminal", [c for c in CASES if c[4]], ids=[c[0][:2] for c in CASES if c[4]])
def test_client_hanging_up_right_after_the_terminal_event_is_ok_not_cut(mem, name, path, rid, reasons, terminal):
    proc, seen, raw = _start(name, path)
    end = _event_end(raw, raw.index(terminal))  # through the terminal event, end_of_stream never arrives
    proc.handle(_body("response_body", raw[:end], False))
    proc.finish()  # the gRPC stream closes: Envoy saw the client go away
    (out,) = seen
    assert out.result == "ok"
    assert out.usage is not None and out.cost is not None and out.cost.total_usd is not None
    assert from_outcome(out, datetime.now(timezone.utc), "r").status == "ok"
    mem.tel.record(out)
    a = dict(mem.only_span().attributes)
    assert a["nadir.stream.cut"] is False and "error.type" not in a


@pytest.mark.parametrize("name, path, rid, reasons, _terminal", CASES, ids=[c[0][:2] for c in CASES])
def test_stream_cut_after_its_first_event_is_cut_with_what_is_known(mem, name, path, rid, reasons, _terminal):
    proc, seen, raw = _start(name, path)
    first = _event_end(raw)
    proc.handle(_body("response_body", raw[:first], False))
    proc.finish()
    (out,) = seen
    assert out.result == "cut_stream"
    row = from_outcome(out, datetime.now(timezone.utc), "r")
    assert row.status == "cut_stream"
    mem.tel.record(out)
    a = dict(mem.only_span().attributes)
    assert a["nadir.stream.cut"] is True
    # No event with a finish reason arrived; the id is known only where the first event has it
    # (chat chunk, Responses' response.created is not parsed, message_start, Gemini chunk).
    assert "gen_ai.response.finish_reasons" not in a
    assert a.get("gen_ai.response.id") == (None if name.startswith("20-") else rid)
