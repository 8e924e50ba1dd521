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


def from_envoy(attributes: Mapping[str, Any]) -> tuple[Provider | None, str | None]:
    """The provider Envoy's matched route names, from ``ProcessingRequest.attributes``:
    ``(provider, None)``; ``(None, name)`` when Envoy named a provider (route metadata) that is not
    in the registry; ``(None, None)`` when Envoy said nothing we know (no attributes, or a cluster
    that is no provider's)."""
    named, cluster = route_facts(attributes)
    if named:
        p = PROVIDERS.get(named.strip().lower())
        return (p, None) if p is not None else (None, named)
    if cluster:
        return _BY_CLUSTER.get(cluster), None
    return None, None


__all__ = ["PROVIDERS", "Provider", "for_dialect", "from_envoy", "from_url", "get", "is_local", "otel_name"]
