"""The provider registry: one entry per provider, one module each (or one entry in
``compatible.py`` for an OpenAI-compatible one). See ``docs/adding-a-provider.md``.

Two ways in, one registry:
- serve mode: Envoy says (``from_envoy``: route metadata ``nadir.provider``, else the cluster
  name — ``nadir_extproc.providers.envoy``); when Envoy sends neither (an older Envoy config), the
  dialect's main provider;
- the ``cost`` command: the URL's host (``from_url``).
Never from the model name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from nadir_extproc.providers import anthropic, compatible, google, openai
from nadir_extproc.providers.base import Provider, openai_compatible
from nadir_extproc.providers.envoy import route_facts

#: Every provider, by id. Order: the first provider speaking a dialect is its main provider.
PROVIDERS: dict[str, Provider] = {
    p.id: p for p in (openai.PROVIDER, anthropic.PROVIDER, google.PROVIDER, *compatible.ENTRIES)
}
_BY_CLUSTER: dict[str, Provider] = {c: p for p in PROVIDERS.values() for c in p.cluster_names}
_BY_HOST: dict[str, Provider] = {h: p for p in PROVIDERS.values() for h in p.hosts}
_BY_DIALECT: dict[str, Provider] = {}
for _p in PROVIDERS.values():
    for _d in _p.dialects:
        _BY_DIALECT.setdefault(_d, _p)


def get(provider_id: str | None) -> Provider | None:
    """The provider with this id (case-insensitive), ``None`` when unknown."""
    return PROVIDERS.get(provider_id.strip().lower()) if provider_id else None


def for_dialect(dialect: str) -> Provider | None:
    """The main provider of a dialect (``openai_chat`` -> openai): the fallback when Envoy does not
    name the provider. ``None`` for an unknown dialect."""
    return _BY_DIALECT.get(dialect)


def from_envoy(attributes: Mapping[str, Any]) -> tuple[Provider | None, str | None]:
    """The provider Envoy's matched route names, from ``ProcessingRequest.attributes``:
    ``(provider, None)``; ``(None, name)`` when Envoy named a provider (route metadata) that is not
    in the registry; ``(None, None)`` when Envoy said nothing we know (no attributes, or a cluster
    that is no provider's)."""
    named, cluster = route_facts(attributes)
    if named:
        p = get(named)
        return (p, None) if p is not None else (None, named)
    if cluster:
        return _BY_CLUSTER.get(cluster), None
    return None, None


def from_url(url: str) -> Provider | None:
    """The provider whose API host the URL names (``https://api.openai.com/v1/...`` -> openai);
    ``None`` for another host or a bare path."""
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return None
    p = _BY_HOST.get(host)
    if p is None:  # regional/vendor subdomains: us-central1-aiplatform.googleapis.com
        p = next((q for h, q in _BY_HOST.items() if host.endswith("-" + h) or host.endswith("." + h)), None)
    return p


def otel_name(provider_id: str | None) -> str | None:
    """``gen_ai.provider.name`` of a provider id (the id itself when it is not registered)."""
    if not provider_id:
        return None
    p = PROVIDERS.get(provider_id)
    return p.otel_name if p is not None else provider_id


__all__ = ["PROVIDERS", "Provider", "for_dialect", "from_envoy", "from_url", "get", "openai_compatible", "otel_name"]
