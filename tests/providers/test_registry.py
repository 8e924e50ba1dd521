"""The provider registry: one entry per provider, reached from Envoy's route facts (serve mode)
and from a URL (the ``cost`` command) — never from the model name."""

from __future__ import annotations

import pytest
from google.protobuf.struct_pb2 import Struct
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga

from nadir_extproc import providers
from nadir_extproc.dialects import DIALECTS
from nadir_extproc.pricing import catalogue
from nadir_extproc.providers.envoy import CLUSTER, FILTER_KEY, ROUTE_PROVIDER


def attrs(**fields: str) -> dict[str, Struct]:
    st = Struct()
    st.update(fields)
    return {FILTER_KEY: st}


def test_every_dialect_has_a_main_provider_and_every_provider_speaks_known_dialects():
    assert {d: providers.for_dialect(d).id for d in DIALECTS} == {
        "openai_chat": "openai", "openai_responses": "openai", "anthropic_messages": "anthropic", "gemini": "google",
    }
    for p in providers.PROVIDERS.values():
        assert p.dialects and all(d in DIALECTS for d in p.dialects), p.id
        assert p.error_shape in DIALECTS


def test_every_provider_is_priced_under_a_catalogue_provider():
    for p in providers.PROVIDERS.values():
        assert catalogue.catalogue_provider_id(p.catalogue_id) == p.catalogue_id, p.id


def test_otel_names_are_the_conventions_well_known_values():
    v = ga.GenAiProviderNameValues
    assert providers.otel_name("openai") == v.OPENAI.value == "openai"
    assert providers.otel_name("anthropic") == v.ANTHROPIC.value
    assert providers.otel_name("google") == v.GCP_GEMINI.value == "gcp.gemini"
    assert providers.otel_name("somebody") == "somebody"  # unregistered: the id itself
    assert providers.otel_name(None) is None


def test_envoy_route_metadata_wins_over_the_cluster():
    meta, cluster, unknown = providers.from_envoy(attrs(**{ROUTE_PROVIDER: "anthropic", CLUSTER: "openai"}))
    assert (meta.id, cluster, unknown) == ("anthropic", None, None)
    assert providers.resolve("anthropic_messages", "/v1/messages", attrs(**{ROUTE_PROVIDER: "anthropic", CLUSTER: "openai"}))[0].id == "anthropic"


def test_envoy_cluster_names_the_provider_when_the_route_has_no_metadata():
    assert providers.from_envoy(attrs(**{CLUSTER: "google"}))[1].id == "google"
    assert providers.from_envoy(attrs(**{CLUSTER: "gemini"}))[1].id == "google"
    assert providers.from_envoy(attrs(**{CLUSTER: "some_backend"})) == (None, None, None)


def test_a_path_only_one_provider_uses_beats_a_coarse_cluster():
    # The local stack sends Gemini API and Vertex AI paths to one "google" cluster (case 38).
    vertex = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    assert providers.resolve("gemini", vertex, attrs(**{CLUSTER: "google"}))[0].id == "vertex_ai"
    assert providers.resolve("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", attrs(**{CLUSTER: "google"}))[0].id == "google"
    assert providers.resolve("openai_chat", "/v1/chat/completions", None)[0].id == "openai"  # no Envoy facts


def test_envoy_naming_an_unregistered_provider_is_reported_not_guessed():
    assert providers.from_envoy(attrs(**{ROUTE_PROVIDER: "acme-llm", CLUSTER: "openai"})) == (None, None, "acme-llm")
    assert providers.resolve("openai_chat", "/v1/chat/completions", attrs(**{ROUTE_PROVIDER: "acme-llm"})) == (providers.PROVIDERS["openai"], "acme-llm")


@pytest.mark.parametrize("value", [{}, {FILTER_KEY: Struct()}, {"other.filter": Struct()}])
def test_no_envoy_facts_means_no_provider(value):
    assert providers.from_envoy(value) == (None, None, None)


@pytest.mark.parametrize("url, pid", [
    ("https://api.openai.com/v1/chat/completions", "openai"),
    ("https://api.anthropic.com/v1/messages", "anthropic"),
    ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent", "google"),
    ("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/l/publishers/google/models/x:generateContent", "vertex_ai"),
    ("https://api.groq.com/openai/v1/chat/completions", "groq"),
])
def test_url_host_names_the_provider(url, pid):
    assert providers.from_url(url).id == pid


@pytest.mark.parametrize("url", ["/v1/chat/completions", "https://example.com/v1/chat/completions", ""])
def test_unknown_host_or_bare_path_names_no_provider(url):
    assert providers.from_url(url) is None
