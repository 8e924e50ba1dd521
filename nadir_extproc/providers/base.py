"""What a provider is: one frozen ``Provider`` entry, everything we know about one upstream.

A *dialect* (``nadir_extproc.dialects``) is an API wire shape — OpenAI Chat Completions, Anthropic
Messages, … — and many providers speak the same one. A *provider* is who serves the request and
bills it: it names the dialect(s) it speaks and says only where it differs from them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - types only
    from nadir_extproc.pricing.usage import Usage


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider (``nadir_extproc.providers.known.ENTRIES`` holds every one).

    - ``id``: our id (``openai``, ``anthropic``, ``google``, ``groq`` …): the ledger's
      ``provider`` column, the ``x-nadir-provider`` value, the settings keys (``tiers``,
      ``baseline_models``) and — by default — the Envoy cluster name and the value of the route
      metadata ``nadir.provider`` that tell the ext_proc a request goes to it.
    - ``catalogue_id``: the genai-prices provider id its models are priced under.
    - ``otel_name``: its ``gen_ai.provider.name`` (OTel GenAI semconv v1.41.1 well-known value,
      else the convention's advice: the lower-case product name).
    - ``hosts``: API hosts (exact, or a suffix when written with a leading ``.`` or ``-``): how
      the ``cost`` command recognises a URL.
    - ``dialects``: names of the dialects it speaks (``openai_chat`` …); the first is its main one.
    - hooks, where it differs from its dialect: ``usage_fix(raw_usage, usage) -> Usage`` (its
      counting rule), ``usage_object(chunk)`` (where a stream chunk's usage sits),
      ``reported_cost(body) -> Decimal | None`` (its own figure, USD), ``price_variant(body,
      request) -> dict`` (price-variant values it reports).
    - ``clusters``: Envoy cluster names that mean this provider (default: ``(id,)``).
    - ``billed_extras``: ``Usage`` fields billed beyond tokens that it reports
      (``web_search_requests`` …), for the docs and tests.
    - ``tier_signal``: where its responses report the service tier that served them (the
      dialect reads it; text for the docs).
    - ``error_dialect``: the dialect whose error body it returns for a 429 (default: its main one).
    - ``key_headers``: the request headers its API key travels in; ``key_query``: a query
      parameter that may carry it instead (Gemini ``key``) — moved into ``key_query_header`` so no
      URL that is logged or traced holds a key.
    - ``path``: request paths only this provider uses; ``models_of``: whose models it serves.
    - ``docs``: where the facts above come from.
    """

    id: str
    catalogue_id: str
    otel_name: str
    hosts: tuple[str, ...]
    dialects: tuple[str, ...] = ("openai_chat",)
    usage_fix: Callable[[Mapping[str, Any], Usage], Usage] | None = field(default=None, compare=False)
    usage_object: Callable[[Mapping[str, Any]], Any] | None = field(default=None, compare=False)
    reported_cost: Callable[[Mapping[str, Any]], Decimal | None] | None = field(default=None, compare=False)
    price_variant: Callable[[Mapping[str, Any], Mapping[str, Any] | None], dict[str, str]] | None = field(default=None, compare=False)
    docs: str = ""
    clusters: tuple[str, ...] = ()
    billed_extras: tuple[str, ...] = ()
    tier_signal: str = "top-level service_tier (OpenAI's field), when reported"
    error_dialect: str | None = None
    key_headers: tuple[str, ...] = ("authorization",)
    key_query: str | None = None
    key_query_header: str | None = None
    #: Request paths that only this provider uses (Vertex AI's ``/projects/…/publishers/…``).
    path: re.Pattern[str] | None = None
    #: The provider whose models it serves (Vertex AI -> google, Azure -> openai): its routing
    #: tiers and savings baseline apply when the settings have none for this provider.
    models_of: str | None = None

    @property
    def dialect(self) -> str:
        """The main dialect's name."""
        return self.dialects[0]

    @property
    def cluster_names(self) -> tuple[str, ...]:
        """Envoy cluster names that mean this provider (``clusters``, else ``(id,)``)."""
        return self.clusters or (self.id,)

    def bill(
        self, usage: Usage | None, body: Mapping[str, Any], request: Mapping[str, Any] | None = None,
    ) -> tuple[Usage | None, Decimal | None, dict[str, str]]:
        """Apply this provider's own rules to what its dialect read from a response:
        ``(usage after usage_fix, the provider's reported cost in USD or None, its price variants)``.

        ``body``: the JSON response body, or ``{"usage": <raw usage>}`` of a stream; ``request``:
        the request body when a variant reads it (Perplexity ``web_search_options``). A response
        without usage gets none of the rules: ``(None, None, {})``."""
        if usage is None:
            return None, None, {}
        raw_usage = body.get("usage")
        if self.usage_fix is not None and isinstance(raw_usage, Mapping):
            usage = self.usage_fix(raw_usage, usage)
        reported = self.reported_cost(body) if self.reported_cost is not None else None
        variant = self.price_variant(body, request) if self.price_variant is not None else {}
        return usage, reported, dict(variant)

    def key_out_of_path(self, path: str, headers: Mapping[str, str]) -> tuple[str, dict[str, str]] | None:
        """A key in the request's query (``key_query``: Gemini ``?key=``) would sit in every URL
        that is logged or traced (Envoy's span ``http.url``, access logs): ``(path without it,
        headers to set)`` — the key goes into ``key_query_header`` unless the request already has
        that header. ``None`` when there is nothing to move."""
        if not (self.key_query and self.key_query_header):
            return None
        from nadir_extproc.httpcodec import take_query_param

        moved = take_query_param(path, self.key_query)
        if moved is None:
            return None
        new_path, key = moved
        set_h = {":path": new_path}
        if self.key_query_header not in headers:
            set_h[self.key_query_header] = key
        return new_path, set_h

    @property
    def error_shape(self) -> str:
        """The dialect whose error body this provider answers with."""
        return self.error_dialect or self.dialects[0]
