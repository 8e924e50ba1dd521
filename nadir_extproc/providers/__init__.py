"""The provider registry: one entry per provider (``known.ENTRIES``; a module of its own only for
a provider's rule hooks: ``groq.py``, ``xai.py`` …). See ``docs/adding-a-provider.md``.

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

from nadir_extproc.providers import known
from nadir_extproc.providers.base import Provider
from nadir_extproc.providers.envoy import route_facts
from nadir_extproc.providers.known import from_url, get, is_local, otel_name

#: Every provider, by id. Order: the first provider speaking a dialect is its main provider.
PROVIDERS: dict[str, Provider] = dict(known.BY_ID)
_BY_CLUSTER: dict[str, Provider] = {}
_BY_DIALECT: dict[str, Provider] = {}
for _p in known.ENTRIES:
    for _c in _p.cluster_names:
        _BY_CLUSTER.setdefault(_c, _p)
    for _d in _p.dialects:
        _BY_DIALECT.setdefault(_d, _p)


def for_dialect(dialect: str) -> Provider | None:
    """The main provider of a dialect (``openai_chat`` -> openai): the fallback when Envoy does not
    name the provider. ``None`` for an unknown dialect."""
    return _BY_DIALECT.get(dialect)


def from_envoy(attributes: Mapping[str, Any]) -> tuple[Provider | None, Provider | None, str | None]:
    """What Envoy's matched route says about the provider, from ``ProcessingRequest.attributes``:
    ``(named by the route's metadata, named by its cluster, an unregistered name)``.

    The route metadata is the operator's explicit word and wins everywhere. A cluster is coarser
    (the local stack sends Gemini API and Vertex AI paths to one ``google`` cluster), so a request
    path that only one provider uses (``known.from_path``: Vertex AI, Azure) comes before it.
    Never raises; ``(None, None, None)`` when Envoy sent nothing."""
    named, cluster = route_facts(attributes)
    if named:
        p = PROVIDERS.get(named.strip().lower())
        if p is None:
            return None, None, named
        return p, None, None
    return None, _BY_CLUSTER.get(cluster) if cluster else None, None


def resolve(dialect: str, path: str, attributes: Mapping[str, Any] | None) -> tuple[Provider | None, str | None]:
    """The provider of a request speaking ``dialect`` at ``path``: the route metadata's provider,
    else the one the path alone identifies (Vertex AI, Azure), else the cluster's, else the
    dialect's main provider — each only if it speaks ``dialect``. Returns ``(provider, an
    unregistered name Envoy gave)``; never guesses from the model name."""
    meta, cluster, unknown = from_envoy(attributes) if attributes else (None, None, None)
    for p in (meta, known.from_path(path), cluster):
        if p is not None and dialect in p.dialects:
            return p, unknown
    return for_dialect(dialect), unknown


__all__ = ["PROVIDERS", "Provider", "for_dialect", "from_envoy", "resolve", "from_url", "get", "is_local", "otel_name"]
