"""What a provider is: one frozen ``Provider`` entry, everything we know about one upstream.

A *dialect* (``nadir_extproc.dialects``) is an API wire shape — OpenAI Chat Completions, Anthropic
Messages, … — and many providers speak the same one. A *provider* is who serves the request and
bills it: it names the dialect(s) it speaks and says only where it differs from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - types only
    from nadir_extproc.pricing.usage import Usage


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider (``nadir_extproc.providers.PROVIDERS`` holds every one, by ``id``).

    - ``id``: our id (``openai``, ``anthropic``, ``google``, ``deepseek`` …): the ledger's
      ``provider`` column, the ``x-nadir-provider`` value, the settings keys (``tiers``,
      ``baseline_models``) and — by default — the Envoy cluster name and the value of the route
      metadata ``nadir.provider`` that tell the ext_proc a request goes to it.
    - ``dialects``: names of the dialects it speaks (``openai_chat`` …); the first is its main one.
    - ``catalogue_id``: the genai-prices provider id its models are priced under.
    - ``otel_name``: its ``gen_ai.provider.name`` (OTel GenAI semconv v1.41.1 well-known value,
      else the convention's advice: the lower-case product name).
    - ``hosts``: API host names (``api.openai.com``), how the ``cost`` command recognises a URL.
    - ``clusters``: Envoy cluster names that mean this provider (default: ``(id,)``).
    - ``usage_fix``: where it differs from its dialect's usage rule: called with the raw usage
      object of the response and the dialect's ``Usage``, returns the corrected ``Usage``
      (``None``: the dialect's rule holds).
    - ``billed_extras``: ``Usage`` fields billed beyond tokens that it reports
      (``web_search_requests`` …), for docs and tests.
    - ``tier_signal``: where its responses report the service tier that served them (text for
      the docs; the dialect reads it).
    - ``error_dialect``: the dialect whose error body it returns for a 429 (default: its main one).
    - ``key_headers``: the request headers its API key travels in; ``key_query``: a query
      parameter that may carry it instead (Gemini ``key``) — moved into ``key_query_header``
      so no URL that is logged or traced holds a key.
    - ``docs``: where the facts above come from.
    """

    id: str
    dialects: tuple[str, ...]
    catalogue_id: str
    otel_name: str
    hosts: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    usage_fix: Callable[[Mapping[str, Any], Usage], Usage] | None = field(default=None, compare=False)
    billed_extras: tuple[str, ...] = ()
    tier_signal: str = ""
    error_dialect: str | None = None
    key_headers: tuple[str, ...] = ("authorization",)
    key_query: str | None = None
    key_query_header: str | None = None
    docs: str = ""

    @property
    def dialect(self) -> str:
        """The main dialect's name."""
        return self.dialects[0]

    @property
    def cluster_names(self) -> tuple[str, ...]:
        """Envoy cluster names that mean this provider (``clusters``, else ``(id,)``)."""
        return self.clusters or (self.id,)

    @property
    def error_shape(self) -> str:
        """The dialect whose error body this provider answers with."""
        return self.error_dialect or self.dialects[0]


def openai_compatible(
    id: str,
    *,
    hosts: tuple[str, ...],
    catalogue_id: str | None = None,
    otel_name: str | None = None,
    dialects: tuple[str, ...] = ("openai_chat",),
    docs: str = "",
    **kw: Any,
) -> Provider:
    """An entry for a provider that speaks the OpenAI Chat Completions API with OpenAI's usage
    rule and error shape and a bearer key: only its id, hosts and (when they differ from the id)
    its catalogue id and OTel name are needed."""
    return Provider(
        id=id,
        dialects=dialects,
        catalogue_id=catalogue_id or id,
        otel_name=otel_name or id,
        hosts=hosts,
        tier_signal=kw.pop("tier_signal", "top-level service_tier (OpenAI's field), when echoed"),
        docs=docs,
        **kw,
    )
