"""Every provider the product claims, one entry each: how it is recognised (API hosts, path
shapes), its catalogue id, its ``gen_ai.provider.name``, and its rule hooks (where it differs from
its dialect). The ``cost`` command and the request path read the same entries.

OTel names: semconv v1.41.1 ``gen_ai.provider.name`` well-known values (``openai``, ``anthropic``,
``gcp.gemini`` for generativelanguage.googleapis.com, ``gcp.vertex_ai`` for
aiplatform.googleapis.com, ``azure.ai.openai``, ``x_ai``, ``groq``, ``deepseek``, ``mistral_ai``,
``perplexity``); for providers outside the list the convention's advice, the lower-case provider
name (``together``, ``fireworks``, ``openrouter``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from nadir_extproc.providers import groq, openrouter, perplexity, xai
from nadir_extproc.providers.base import Provider


#: One provider entry (``providers.base.Provider``; the name ``Entry`` is kept for callers).
Entry = Provider


ENTRIES: tuple[Entry, ...] = (
    Entry("openai", "openai", "openai", ("api.openai.com",), ("openai_chat", "openai_responses"),
          tier_signal="top-level service_tier (default, flex, priority, scale)",
          docs="https://platform.openai.com/docs/api-reference"),
    Entry("anthropic", "anthropic", "anthropic", ("api.anthropic.com",), ("anthropic_messages",),
          billed_extras=("web_search_requests",), tier_signal="usage.service_tier (standard, priority, batch)",
          key_headers=("x-api-key", "authorization"), docs="https://docs.anthropic.com/en/api/messages"),
    # Gemini API keys travel in x-goog-api-key or ?key= (moved to the header: no key in a URL).
    Entry("google", "google", "gcp.gemini", ("generativelanguage.googleapis.com",), ("gemini",),
          clusters=("google", "gemini"), tier_signal="usageMetadata.serviceTier (standard, flex, priority)",
          key_headers=("x-goog-api-key",), key_query="key", key_query_header="x-goog-api-key",
          docs="https://ai.google.dev/api/generate-content"),
    # Vertex AI: Gemini (generateContent) and Anthropic models (rawPredict), one host per region
    # (us-central1-aiplatform.googleapis.com); genai-prices' google provider falls back to
    # anthropic for Claude models.
    Entry("vertex_ai", "google", "gcp.vertex_ai", ("aiplatform.googleapis.com", "-aiplatform.googleapis.com"),
          ("gemini", "anthropic_messages"),
          docs="https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest",
          path=re.compile(r"^/v1(?:beta1)?/projects/[^/]+/locations/[^/]+/publishers/"), models_of="google",
          tier_signal="usageMetadata.trafficType (ON_DEMAND, ON_DEMAND_FLEX, ON_DEMAND_PRIORITY …)"),
    # Azure OpenAI: /openai/deployments/{deployment}/chat/completions?api-version=… on
    # {resource}.openai.azure.com; the body's model is the deployed model's name.
    Entry("azure", "azure", "azure.ai.openai",
          (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com"),
          ("openai_chat", "openai_responses"),
          docs="https://learn.microsoft.com/azure/ai-services/openai/reference",
          path=re.compile(r"^/openai/deployments/"), models_of="openai"),
    Entry("x-ai", "x-ai", "x_ai", ("api.x.ai",), ("openai_chat", "openai_responses"), usage_fix=xai.usage_fix,
          docs="https://docs.x.ai/developers/rate-limits"),
    Entry("groq", "groq", "groq", ("api.groq.com",), usage_object=groq.usage_object,
          docs="https://console.groq.com/docs/api-reference"),
    Entry("deepseek", "deepseek", "deepseek", ("api.deepseek.com",),
          docs="https://api-docs.deepseek.com/quick_start/pricing"),
    Entry("mistral", "mistral", "mistral_ai", ("api.mistral.ai",),
          docs="https://docs.mistral.ai/api/"),
    Entry("together", "together", "together", ("api.together.xyz", "api.together.ai"),
          docs="https://docs.together.ai/reference/chat-completions"),
    Entry("fireworks", "fireworks", "fireworks", ("api.fireworks.ai",),
          docs="https://docs.fireworks.ai/api-reference/post-chatcompletions"),
    Entry("openrouter", "openrouter", "openrouter", ("openrouter.ai", "api.openrouter.ai"),
          reported_cost=openrouter.reported_cost, docs="https://openrouter.ai/docs/use-cases/usage-accounting"),
    # Z.ai (GLM): OpenAI Chat Completions at api.z.ai/api/paas/v4; cached tokens inside prompt_tokens.
    Entry("zai", "zai", "zai", ("api.z.ai",), docs="https://docs.z.ai/api-reference/llm/chat-completion"),
    Entry("perplexity", "perplexity", "perplexity", ("api.perplexity.ai",),
          reported_cost=perplexity.reported_cost, price_variant=perplexity.price_variant,
          docs="https://docs.perplexity.ai/getting-started/pricing"),
)

BY_ID: dict[str, Entry] = {e.id: e for e in ENTRIES}
_LOCAL = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[?::1\]?|0\.0\.0\.0)$")


def get(provider_id: str | None) -> Entry | None:
    """The entry with this id, else the entry whose catalogue id it is (``None`` when unknown)."""
    if not provider_id:
        return None
    key = provider_id.strip().lower()
    return BY_ID.get(key) or next((e for e in ENTRIES if e.catalogue_id == key), None)


#: Names people write for a provider (the README's product names, squashed: lower case, without
#: spaces, dots, hyphens and underscores) -> entry id; ids, catalogue ids and cluster names match too.
_NAMES = {"gemini": "google", "geminiapi": "google", "googleai": "google", "vertex": "vertex_ai",
          "vertexai": "vertex_ai", "azureopenai": "azure", "xai": "x-ai", "grok": "x-ai", "zai": "zai",
          "zhipu": "zai", "mistralai": "mistral", "togetherai": "together", "fireworksai": "fireworks"}


def _squash(name: str) -> str:
    return re.sub(r"[\s._-]+", "", name.strip().lower())


def lookup(name: str | None) -> Entry | None:
    """The entry a person means by ``name``: its id or catalogue id (``get``), one of its Envoy
    cluster names, or a product name as the README writes it, in any case and with or without
    spaces, dots, hyphens and underscores (``Gemini``, ``Vertex AI``, ``xAI``, ``Z.ai``,
    ``Azure OpenAI``). ``None`` when no entry answers to it."""
    if not name or not name.strip():
        return None
    e = get(name)
    if e is not None:
        return e
    key = _squash(name)
    if key in _NAMES:
        return BY_ID[_NAMES[key]]
    return next((e for e in ENTRIES if key in {_squash(e.id), _squash(e.catalogue_id), *map(_squash, e.cluster_names)}), None)


def from_url(url: str) -> Entry | None:
    """The provider whose API host the URL names; regional / resource subdomains match a host
    written with a leading ``.`` or ``-`` (``myres.openai.azure.com``,
    ``us-central1-aiplatform.googleapis.com``). ``None`` for any other host."""
    host = (urlsplit(url).hostname or "").lower()
    for e in ENTRIES:
        for h in e.hosts:
            if host == h or (h[0] in ".-" and host.endswith(h)):
                return e
    return None


def from_path(path: str) -> Entry | None:
    """The provider a request path alone identifies (Vertex AI's project/location paths), else
    ``None`` (most paths are shared by every provider speaking the dialect)."""
    for e in ENTRIES:
        if e.path is not None and e.path.match(path):
            return e
    return None


def is_local(url: str) -> bool:
    """A self-hosted server on this machine (vLLM, Ollama …): priced only through the price file."""
    return bool(_LOCAL.match((urlsplit(url).hostname or "").lower()))


def otel_name(provider_id: str | None) -> str | None:
    """``gen_ai.provider.name`` for a provider id (the id itself when unregistered)."""
    e = get(provider_id)
    return e.otel_name if e is not None else provider_id
