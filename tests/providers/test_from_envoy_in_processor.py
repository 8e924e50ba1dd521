"""The processor takes the provider from Envoy's route facts (``ProcessingRequest.attributes``)."""

from __future__ import annotations

from google.protobuf.struct_pb2 import Struct

from nadir_extproc import protocol as p
from nadir_extproc.config import Settings
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep
from nadir_extproc.server import Context
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.providers.envoy import CLUSTER, FILTER_KEY, ROUTE_PROVIDER
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.stats import COUNTS


def _ctx(seen: list) -> Context:
    s = Settings()
    pol = s.policy()
    return Context(settings=s, router=RuleRouter(pol), policy=pol, on_complete=seen.append)


def _req_headers(path: str, **facts: str) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in
                                     {":method": "POST", ":path": path, "content-type": "application/json"}.items()])
    r = ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=hm))
    if facts:
        st = Struct()
        st.update(facts)
        r.attributes[FILTER_KEY].CopyFrom(st)
    return r


def _provider_header(r: ep.ProcessingResponse) -> bytes | None:
    for o in r.request_body.response.header_mutation.set_headers:
        if o.header.key == "x-nadir-provider":
            return o.header.raw_value
    return None


def _run(path: str, body: bytes, **facts: str):
    seen: list = []
    proc = RequestProcessor(_ctx(seen))
    r1 = proc.handle(_req_headers(path, **facts))
    r2 = proc.handle(ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)))
    proc.finish()
    return r1, r2, seen


def test_route_metadata_names_the_provider_of_a_mounted_api():
    # Envoy mounts OpenAI's API under /eu/ (prefix_rewrite in the route); its metadata says openai.
    _, r2, seen = _run("/eu/v1/chat/completions", b'{"model":"gpt-4o-mini","messages":[]}',
                       **{ROUTE_PROVIDER: "openai", CLUSTER: "openai_eu"})
    assert _provider_header(r2) == b"openai"
    assert (seen[0].dialect, seen[0].provider) == ("openai_chat", "openai")


def test_without_envoy_facts_a_mounted_path_is_not_an_llm_path():
    r1, _, seen = _run("/eu/v1/chat/completions", b'{"model":"gpt-4o-mini","messages":[]}')
    assert r1.mode_override == p.MODE_SKIP_REST
    assert seen == []  # skipped: nothing recorded


def test_cluster_names_the_provider():
    _, r2, seen = _run("/v1/messages", b'{"model":"claude-haiku-4-5","max_tokens":5,"messages":[]}', **{CLUSTER: "anthropic"})
    assert _provider_header(r2) == b"anthropic" and seen[0].provider == "anthropic"


def test_unregistered_provider_named_by_envoy_is_counted_and_the_dialect_decides():
    before = COUNTS.get("provider_unknown", 0)
    _, r2, seen = _run("/v1/chat/completions", b'{"model":"gpt-4o-mini","messages":[]}', **{ROUTE_PROVIDER: "acme-llm"})
    assert COUNTS.get("provider_unknown", 0) == before + 1
    assert seen[0].provider == "openai"


def test_gemini_query_key_moves_to_the_providers_header():
    r1, _, _ = _run("/v1beta/models/gemini-2.5-flash:generateContent?alt=sse&key=AIzaSECRET", b'{"contents":[]}',
                    **{CLUSTER: "google"})
    got = {o.header.key: o.header.raw_value for o in r1.request_headers.response.header_mutation.set_headers}
    assert got[":path"] == b"/v1beta/models/gemini-2.5-flash:generateContent?alt=sse"
    assert got["x-goog-api-key"] == b"AIzaSECRET"
