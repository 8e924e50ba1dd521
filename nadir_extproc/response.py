"""A whole JSON response body, read into what is priced (``pricing.priced.Billed``).

The body is decoded (``httpcodec``), parsed once, and read in one call by its dialect
(``Dialect.response_info``: model, id, finish reasons, usage, served tier, price variants); the
provider's own rules go on top (``Provider.bill``). Anything that cannot be read becomes an
unpriced reason, never an exception: ``unsupported_content_encoding``, ``cut`` (JSON that stops
short), ``response_not_json``, ``no_usage``, ``background_pending``, ``already_priced``.
Streams are read by ``nadir_extproc.stream``, which comes here for a stream that is not SSE.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nadir_extproc.dialects import Dialect
from nadir_extproc.dialects.base import tier_and_batch
from nadir_extproc.httpcodec import decode_body
from nadir_extproc.pricing.priced import Billed
from nadir_extproc.providers.base import Provider
from nadir_extproc.stats import count


@dataclass(frozen=True, slots=True)
class Asked:
    """What the request said that reading its response needs.

    - ``routed``: the model sent upstream (the served model when the response names none).
    - ``error``: the unpriced reason of the response's HTTP status (``None`` below 400).
    - ``tier``: the service tier the request asked for (used when the response is silent).
    - ``body``: the request body, kept only for a provider whose price variants read it.
    - ``first``: ``first(response_id)`` is False when a retrieved response id was priced before.
    """

    routed: str | None
    error: str | None = None
    tier: str | None = None
    body: dict[str, Any] | None = None
    first: Callable[[Any], bool] = lambda _id: True


@dataclass(frozen=True, slots=True)
class JsonRead:
    """A JSON response read: ``billed`` (to price), ``response_id`` / ``finish_reasons``
    (``gen_ai.response.*``) and ``body`` (the parsed object, for opt-in content capture; ``None``
    when there was none)."""

    billed: Billed
    response_id: str | None = None
    finish_reasons: list[str] | None = None
    body: dict[str, Any] | None = None


def read_json(d: Dialect, provider: Provider, raw: bytes | None, asked: Asked, *, encoding: str,
              max_bytes: int) -> JsonRead:
    """``raw`` (the response body as received, ``None`` when there is none) read by ``d`` and
    ``provider``. ``encoding``: its ``content-encoding``; ``max_bytes``: the decoded-size cap.
    A JSON array (Gemini's non-SSE stream) is read from its last element that reports usage."""
    served = asked.routed
    if asked.error is not None:
        return JsonRead(Billed(served, unpriced=asked.error))
    if not raw:
        return JsonRead(Billed(served, unpriced="no_usage"))
    data = decode_body(raw, encoding, max_bytes)
    if data is None:
        count("response_undecodable", encoding)
        return JsonRead(Billed(served, unpriced="unsupported_content_encoding"))
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if isinstance(body, list):
        body = next((x for x in reversed(body) if isinstance(x, dict) and d.usage(x) is not None), None)
        if body is None:
            return JsonRead(Billed(served, unpriced="no_usage"))
    if body is None and data.lstrip()[:1] in (b"{", b"["):
        # JSON that stops short: the body was cut (an upstream reset, a proxy's limit).
        count("response_cut")
        return JsonRead(Billed(served, unpriced="cut"))
    if not isinstance(body, dict):
        count("response_not_json")
        return JsonRead(Billed(served, unpriced="response_not_json"))
    info = d.response_info(body)  # model, id, finish reasons, usage, tier, variants: one call
    served = info.model or served
    usage, reported, extra = provider.bill(info.usage, body, asked.body)
    tier, batch = info.service_tier, info.batch
    if tier is None and not batch:
        # The response is silent about its tier: the tier the request asked for, else standard.
        tier, batch = tier_and_batch(asked.tier)
    unpriced = None
    if usage is not None and d.counts_nothing(usage, body):
        usage = None  # e.g. {"prompt_tokens": null}: unpriced, never a silent $0
    if usage is None:
        unpriced = "background_pending" if d.is_pending(body) else "no_usage"
    elif d.retrievable and not asked.first(body.get("id")):
        usage, unpriced = None, "already_priced"
    billed = Billed(served, usage, unpriced, tier, batch, {**info.variant, **extra}, reported)
    return JsonRead(billed, info.response_id, info.finish_reasons, body)
