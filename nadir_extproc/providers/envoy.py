"""How the ext_proc learns the provider of a request from Envoy (serve mode).

Envoy's route table decides the upstream, so the provider is Envoy's to say — never guessed from
the model name. The ext_proc filter asks Envoy for two request attributes (``request_attributes``
in its config, sent once, on the request-headers message, in ``ProcessingRequest.attributes``
under the key ``envoy.filters.http.ext_proc``):

- ``ROUTE_PROVIDER``: the CEL expression ``xds.route_metadata.filter_metadata['nadir']['provider']``
  — the route's metadata ``{filter_metadata: {nadir: {provider: <id>}}}``, as a string. Absent
  from the message when the matched route has no such metadata.
- ``CLUSTER``: ``xds.cluster_name``, the cluster the matched route points at (a string).

Measured with Envoy 1.40.0 (``docs/envoy-provider-attributes.md``): both arrive as string values
of the filter's ``Struct``; the bare ``xds.route_metadata`` attribute arrives as the *text format*
of the Metadata proto and a map-valued expression as the string ``"CelMap value"``, so we ask for
the leaf value. The route metadata wins; else the cluster name, looked up in the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: Key of our filter's attributes in ``ProcessingRequest.attributes``.
FILTER_KEY: Final = "envoy.filters.http.ext_proc"
#: The route-metadata expression (namespace ``nadir``, key ``provider``).
ROUTE_PROVIDER: Final = "xds.route_metadata.filter_metadata['nadir']['provider']"
#: The upstream cluster of the matched route.
CLUSTER: Final = "xds.cluster_name"
#: What ``envoy/*.yaml`` put in the ext_proc filter's ``request_attributes``.
REQUEST_ATTRIBUTES: Final = (ROUTE_PROVIDER, CLUSTER)


def route_facts(attributes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(route metadata provider, cluster name)`` from ``ProcessingRequest.attributes`` (a map
    of filter name -> ``google.protobuf.Struct``, or plain dicts in tests); ``None`` for what Envoy
    did not send. Never raises."""
    try:
        st = attributes.get(FILTER_KEY) if attributes else None
        if st is None:
            return None, None
        fields = st.fields if hasattr(st, "fields") else st
        return _string(fields.get(ROUTE_PROVIDER)), _string(fields.get(CLUSTER))
    except Exception:  # noqa: BLE001 — a malformed attribute is just absent
        return None, None


def _string(v: Any) -> str | None:
    if v is None:
        return None
    if hasattr(v, "WhichOneof"):
        return v.string_value or None if v.WhichOneof("kind") == "string_value" else None
    return v if isinstance(v, str) and v else None
