"""The Router interface: prompt in, tier and concrete model out.

A router scores a prompt and a ``TierPolicy`` turns the tier into a concrete model for the
request's provider. Routers are pure and synchronous (they run inside the ext_proc request-body
phase, well under Envoy's ``message_timeout``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What a router may look at (never logged: it holds prompt text).

    - ``provider``, ``dialect``: ids (``openai``, ``openai_chat`` …).
    - ``prompt``: all prompt text of the request, as the dialect extracts it.
    - ``message_count``: number of messages/input items.
    - ``body``: the parsed JSON request body (read-only), for constraints such as images or tools.
    - ``pinned_tier``: a tier the client pinned with the ``x-nadir-tier`` request header, else ``None``.
    """

    provider: str
    dialect: str
    prompt: str
    message_count: int = 1
    body: Mapping[str, Any] | None = None
    pinned_tier: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing decision.

    - ``model``: concrete model to send upstream.
    - ``tier``: the *routing* tier (``"weak"``, ``"mid"`` or ``"strong"``; ``"default"`` for a
      fallback) — not the provider's *service* tier (flex, priority …), which pricing reads from
      the response (``ResponseInfo.service_tier``).
    - ``score``: P(strong model needed) in [0, 1] where the router has one, else ``None``.
    - ``reason``: short machine-readable reason (``"code_fence"``, ``"long_prompt"``, …).
    - ``router``: which router decided (``"rules"``, ``"onnx"``, ``"fallback"``).
    """

    model: str
    tier: str
    score: float | None
    reason: str
    router: str


class Router(Protocol):
    """Anything that maps a ``RouteRequest`` to a ``Decision``; may raise on internal errors
    (the processor then falls back to the route's default model)."""

    def route(self, request: RouteRequest) -> Decision: ...
