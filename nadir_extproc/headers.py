"""Every ``x-nadir-*`` HTTP header name, in one place (request headers the client may send, and
response headers / in-band fields we add). Pure constants and two pure helpers; imports nothing of ours.

Upstream-supplied ``x-nadir-*`` response headers are removed (``PREFIX``), so a provider cannot
spoof ours.
"""

from __future__ import annotations

import re
from typing import Final

#: Every header of ours starts with this.
PREFIX: Final = "x-nadir-"

# ---------------------------------------------------------------- request headers (client -> us)
#: Pins a routing tier (``weak``/``mid``/``strong``, any case). Removed before upstream.
TIER: Final = "x-nadir-tier"
#: Opt-in: the cost fields also as a JSON object ``"nadir"`` inside a stream event the client
#: expects anyway (per dialect: ``nadir_extproc.inband``). Removed before upstream.
COST_IN_BODY: Final = "x-nadir-cost-in-body"
#: Tag headers (``tags.headers`` default) and the generic ``x-nadir-tag-<name>`` form.
TAG_USER: Final = "x-nadir-user"
TAG_FEATURE: Final = "x-nadir-feature"
TAG_TEAM: Final = "x-nadir-team"
TAG_ENV: Final = "x-nadir-env"
TAG_SESSION: Final = "x-nadir-session"
TAG_PREFIX: Final = "x-nadir-tag-"
DEFAULT_TAG_HEADERS: Final[dict[str, str]] = {
    "user": TAG_USER, "feature": TAG_FEATURE, "team": TAG_TEAM, "env": TAG_ENV, "session": TAG_SESSION,
}

# ---------------------------------------------------------------- us -> Envoy (request)
#: The provider id of the request, set with ``clear_route_cache`` so Envoy's route table picks
#: the upstream cluster. Removed by Envoy's route config before upstream.
PROVIDER: Final = "x-nadir-provider"

# ---------------------------------------------------------------- response headers / in-band fields
ROUTED_TO: Final = "x-nadir-routed-to"
COST: Final = "x-nadir-cost-usd"
SAVED: Final = "x-nadir-cost-saved"
LATENCY: Final = "x-nadir-latency-ms"
UNPRICED: Final = "x-nadir-unpriced-reason"
PRICE_SOURCE: Final = "x-nadir-price-source"
#: Least remaining budget (USD) over the rules that apply to the request.
BUDGET_REMAINING: Final = "x-nadir-budget-remaining"
#: On a budget 429: the rule that blocked.
BUDGET_RULE: Final = "x-nadir-budget-rule"


def json_field(header: str) -> str:
    """The in-body JSON key of a cost header: without ``x-nadir-``, ``_`` for ``-``
    (``x-nadir-cost-usd`` -> ``cost_usd``)."""
    return header[len(PREFIX):].replace("-", "_") if header.startswith(PREFIX) else header


#: Model names we reflect into headers must match this (shared case 12: no header injection).
_SAFE_MODEL: Final = re.compile(r"[A-Za-z0-9._:/@-]{1,128}")


def safe_model(model: str | None) -> str | None:
    """``model`` when it is safe to reflect into a header (1-128 of ``A-Za-z0-9._:/@-``: no
    CR/LF, no spaces), else ``None``."""
    return model if model is not None and _SAFE_MODEL.fullmatch(model) else None
