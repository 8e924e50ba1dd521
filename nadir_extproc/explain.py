"""``nadir-extproc cost``: explain the bill of one recorded LLM interaction (the command's engine;
``cli.cost_command`` reads the settings and the files, this module knows neither config nor
routing: the caller passes the baseline candidates).

Given the request URL, the response body (JSON, a gzip-compressed JSON, a batch-result line, or a
raw SSE stream) and optionally the request body, ``explain`` infers the provider (from the URL host,
with genai-prices' ``api_pattern`` of each provider) and the API dialect (from the URL path), reads
the usage the way the request path does (``nadir_extproc.dialects``), prices it (``price``) and
says why when it cannot. The result is a plain ``dict`` (``--json`` prints it):

- ``cost_usd``: plain decimal string (USD), or ``None`` when unpriced;
- ``unpriced_reason`` (``cost.py`` constants, plus ``unsupported_api``, ``response_not_json``,
  ``stream_not_supported``, ``wrong_dialect``: the URL's API reads no usage but another dialect
  does) and ``explanation`` (one sentence for people);
- ``provider`` (the registry id: ``vertex_ai``), ``catalogue_provider`` (the catalogue provider it
  is priced from: ``google``);
- ``served_model``, ``priced_as``, ``dialect``, ``requested_model``,
  ``service_tier``, ``batch``, ``when`` (ISO time whose prices apply), ``price_source``;
- ``usage``: ``input_tokens`` (all input, cache included), ``cache_read_tokens``,
  ``cache_write_5m_tokens``, ``cache_write_1h_tokens``, ``output_tokens`` (reasoning included),
  ``reasoning_tokens``, ``web_search_requests``; ``None`` when the response has none;
- ``rates_usd_per_mtok`` (per class, decimal strings; ``web_search`` is USD per 1000 calls),
  ``long_context_above`` (the threshold crossed, tokens) and ``breakdown_usd``;
- ``baseline_note`` (why there is no baseline, when there is none for a priced answer);
- ``baseline_model``, ``baseline_cost_usd``, ``cost_saved_usd`` (baseline − actual, signed; see
  ``savings.py`` for the definition). This is the what-if for the recorded usage whatever the
  request asked for; the request path's ``x-nadir-cost-saved`` is 0 when the client named the
  model itself, since routing changed nothing.
- ``otel_provider_name`` (``gen_ai.provider.name`` of the endpoint: ``gcp.vertex_ai`` on Vertex AI
  hosts, ``azure.ai.openai`` on Azure …), ``response_id``;
- ``reported_cost_usd`` (the provider's own figure, OpenRouter / Perplexity ``usage.cost``; when
  present it is ``cost_usd``), ``catalogue_cost_usd`` (the catalogue's figure) and
  ``cost_disagrees``; ``price_variant`` (non-standard variants priced, e.g.
  ``{"search_context_size": "low"}``); ``corrections`` (catalogue corrections applied, ids of
  ``corrections.py``, with their sources in the table output);
- for a batch output file (JSONL of batch results): ``requests`` (lines priced) and the sums.

Exit status of the command: 0 priced, ``EXIT_UNPRICED`` (3) unpriced (the JSON/table is still
printed), 2 bad arguments.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from decimal import Decimal as D
from typing import Any
from urllib.parse import urlsplit

from nadir_extproc import dialects
from nadir_extproc.dialects import DIALECTS, Dialect
from nadir_extproc.providers import known
from nadir_extproc.pricing import catalogue
from nadir_extproc.pricing.context import unwrap_batch_result
from nadir_extproc.pricing.cost import PROVIDER_ERROR, Cost, price
from nadir_extproc.pricing.money import format_usd, usd_text
from nadir_extproc.pricing.savings import baseline_cost, cost_saved
from nadir_extproc.pricing.usage import Usage

UNSUPPORTED_API = "unsupported_api"
RESPONSE_NOT_JSON = "response_not_json"
STREAM_NOT_SUPPORTED = "stream_not_supported"
BACKGROUND_PENDING = "background_pending"
WRONG_DIALECT = "wrong_dialect"
#: Names people use for each dialect (messages only).
_DIALECT_TITLES = {"openai_chat": "OpenAI Chat Completions", "openai_responses": "OpenAI Responses",
                   "anthropic_messages": "Anthropic Messages", "gemini": "Gemini generateContent"}


def _title(d: Dialect) -> str:
    return _DIALECT_TITLES.get(d.name, d.name)


def _a(title: str) -> str:
    return ("an " if title[:1] in "AEIOU" else "a ") + title
#: Exit status of ``nadir-extproc cost`` when the answer is unpriced (2 is a usage error).
EXIT_UNPRICED = 3

_WHY = {
    "unknown_provider": "no catalogue provider serves {host}; list the model in a price file "
    "(--price-file FILE with `models: [{{provider: NAME, model: MODEL, input_mtok: .., output_mtok: ..}}]`; "
    "README 'The cost command') or pass --provider (a provider name the README uses, or a genai-prices provider id)",
    "unknown_model": "{source} has no model named {served!r} for provider {provider}; add it to a price file",
    "no_usage": "the response reports no token usage{hint}",
    "wrong_dialect": "the body does not look like a response of {expected}, the API {url_or_dialect} implies{other}",
    "invalid_usage": "the usage is inconsistent (negative counts, or more reasoning than output)",
    "missing_rate": "the catalogue has no rate for a token class this usage has (e.g. 1-hour cache writes)",
    "provider_error": "the provider answered with an error ({error}); nothing was billed",
    "unknown_service_tier": "served under service tier {tier!r}, for which the catalogue has no rates",
    "no_batch_price": "a batch result, and the catalogue has no batch rates for this model at this date",
    UNSUPPORTED_API: "no dialect reads responses of {path} (supported: Chat Completions, Responses, "
    "Messages, Gemini generateContent)",
    RESPONSE_NOT_JSON: "the response is neither JSON nor an SSE stream",
    STREAM_NOT_SUPPORTED: "streamed response: not supported yet",
    BACKGROUND_PENDING: "a background response that has not finished ({status}); it is priced when its "
    "result is fetched (GET /v1/responses/{{id}})",
    "unknown_price_variant": "served under price variant {variant}, for which the catalogue has no rates",
    "stream_error": "the stream ended with an error event: not a complete response",
    "cut_stream": "the stream ends before its terminal event ({terminal}): cut, not a complete response "
    "(usage shows the tokens known so far)",
}


def provider_from_url(url: str) -> str | None:
    """The provider id for ``url``: a registered provider's host (``known.from_url``: its
    catalogue id), else the genai-prices provider whose ``api_pattern`` matches (first in catalogue
    order), else ``None`` (e.g. ``http://localhost:11434``)."""
    entry = known.from_url(url)
    if entry is not None:
        return entry.catalogue_id
    catalogue.load()
    for p in catalogue._all_providers():  # noqa: SLF001 - same package
        if p.api_pattern and re.match(p.api_pattern, url):
            return p.id
    return None


def dialect_from_path(path: str) -> Dialect | None:
    """The dialect of a request path, also behind gateway prefixes (``/openai/v1/chat/completions``,
    ``/api/paas/v4/chat/completions``): each dialect's own paths (``Dialect.matches_path``: Gemini's
    ``/models/{model}:generateContent``), then its path endings (``Dialect.matches_suffix``:
    ``/chat/completions``, ``/responses`` and ``/responses/{id}``, ``/messages``). ``None`` for
    anything else (``/v1/completions``)."""
    bare = path.split("?", 1)[0].rstrip("/")
    for d in DIALECTS.values():
        if d.matches_path(bare):
            return d
    return next((d for d in DIALECTS.values() if d.matches_suffix(bare)), None)


def _read_stream(d: Dialect, raw: bytes, entry: known.Entry | None) -> Any:
    """``(accumulator, terminal_seen)`` after reading a raw SSE body (``Dialect.read_stream``:
    ``usage()``, ``model``, ``failed``, ``service_tier``, ``price_variant()``), or ``None`` when
    streams cannot be read.
    The provider says where a chunk's usage sits (``Entry.usage_object``, Groq)."""
    try:
        return d.read_stream(raw, usage_object=entry.usage_object if entry is not None else None)
    except (NotImplementedError, AttributeError):
        return None


def _usage_json(u: Usage | None) -> dict[str, int] | None:
    if u is None:
        return None
    return {
        "input_tokens": u.input_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_5m_tokens": u.cache_write_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "web_search_requests": u.web_search_requests,
        **{k: getattr(u, k) for k in _EXTRA_USAGE if getattr(u, k)},
    }


_EXTRA_USAGE = ("file_search_calls", "code_interpreter_calls", "input_audio_tokens", "input_image_tokens",
                "input_video_tokens", "output_audio_tokens", "output_image_tokens")


def explain(
    url: str,
    response: bytes,
    request: bytes | None = None,
    *,
    provider: str | None = None,
    dialect: str | None = None,
    status: int | None = None,
    when: datetime | None = None,
    batch: bool | None = None,
    baseline: str | None = None,
    candidates: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The priced breakdown of one interaction as a JSON-ready dict (keys in the module docstring).

    ``url``: the request URL (provider from its host, dialect from its path; ``provider`` /
    ``dialect`` override). ``response``: the response body bytes (gzip is decompressed; SSE is read
    with the dialect's stream reader; a JSONL batch output file is priced line by line and
    summed). ``request``: the request body (optional; supplies the requested model, request-side
    price options and explains a stream without usage). ``status``: HTTP status when known (>= 400
    is a provider error). ``when``: request time (default now, UTC). ``batch``: force batch rates
    (default: detected from a batch-result wrapper or Anthropic ``service_tier: batch``).
    ``baseline``: savings baseline model; else the most expensive of ``candidates[provider]`` at this
    usage (``candidates``: provider -> models, given by the caller — the ``cost`` command passes the
    routing tiers; none: no baseline). Never raises for bad bodies.
    """
    when = when or datetime.now(UTC)
    parts = urlsplit(url)
    raw = gzip.decompress(response) if response[:2] == b"\x1f\x8b" else response
    bare = parts.path.rstrip("/")
    if dialect is None and any(d.batch_results is not None and d.batch_results.search(bare) for d in DIALECTS.values()):
        return _explain_batch_file(url, raw, provider=provider, when=when, batch=batch, baseline=baseline, candidates=candidates)
    d = DIALECTS.get(dialect) if dialect else dialect_from_path(parts.path)
    entry = known.lookup(provider) if provider else known.from_url(url)
    prov = (entry.catalogue_id if entry is not None else provider) if provider else provider_from_url(url)
    out: dict[str, Any] = {
        "url": url,
        "provider": entry.id if entry is not None else prov,
        "catalogue_provider": prov,
        "dialect": d.name if d else None,
        "otel_provider_name": entry.otel_name if entry is not None else (known.otel_name(prov) if prov else None),
        "requested_model": None,
        "served_model": None,
        "priced_as": None,
        "response_id": None,
        "service_tier": None,
        "batch": bool(batch),
        "price_variant": None,
        "when": when.isoformat(),
        "usage": None,
        "rates_usd_per_mtok": None,
        "long_context_above": None,
        "breakdown_usd": None,
        "cost_usd": None,
        "reported_cost_usd": None,
        "catalogue_cost_usd": None,
        "cost_disagrees": False,
        "corrections": [],
        "unpriced_reason": None,
        "explanation": None,
        "price_source": None,
        "baseline_model": None,
        "baseline_note": None,
        "baseline_cost_usd": None,
        "cost_saved_usd": None,
    }

    def unpriced(reason: str, **fmt: Any) -> dict[str, Any]:
        out["unpriced_reason"] = reason
        values = {"host": parts.netloc or url, "path": parts.path, "hint": "", "error": "error", "status": "",
                  "variant": out.get("price_variant"), **fmt}
        out["explanation"] = _WHY.get(reason, reason).format(**values)
        return out

    def wrong_dialect(other: Dialect) -> dict[str, Any]:
        flag = "--dialect" if dialect else "--url"
        return unpriced(WRONG_DIALECT, expected=_title(d), url_or_dialect=flag,
                        other=f"; this looks like {_a(_title(other))} response; check {flag}")

    req_body: Any = None
    if request:
        try:
            req_body = json.loads(request)
        except ValueError:
            req_body = None
    if d is not None:
        out["requested_model"] = d.model_from_path(parts.path) or (
            d.request_model(req_body) if isinstance(req_body, dict) else None
        )
    if d is None:
        return unpriced(UNSUPPORTED_API)

    text = raw.lstrip()
    usage: Usage | None
    body: Any = None
    tier: str | None = None
    is_batch = bool(batch)
    variant: dict[str, str] = {}
    reported: Decimal | None = None
    raw_usage: Any = None
    if text[:5] in (b"data:", b"event") or text[:1] == b":":
        read = _read_stream(d, raw, entry)
        if read is None:
            return unpriced(STREAM_NOT_SUPPORTED)
        acc, terminal = read
        usage, served, failed, tier = acc.usage(), acc.model, acc.failed, acc.service_tier
        out["response_id"] = acc.response_id
        variant = dict(acc.price_variant())
        raw_usage = acc.raw_usage() if hasattr(acc, "raw_usage") else None
        if failed:
            # An error event ends the stream: not a complete response, so no price is its price.
            out["served_model"] = served or out["requested_model"]
            out["usage"] = _usage_json(usage)
            return unpriced("stream_error" if usage is not None else PROVIDER_ERROR, error="error event in the stream")
        if d.stream_terminal is not None and not terminal:
            # Cut before its terminal event (client gone, upstream reset): not a complete response,
            # so its price is not the request's (through Envoy it is recorded ``cut`` with the
            # tokens known so far; here those tokens are shown under usage).
            out["served_model"] = served or out["requested_model"]
            out["usage"] = _usage_json(usage)
            return unpriced("cut_stream", terminal=d.stream_terminal)
        stream_body = {"usage": raw_usage} if isinstance(raw_usage, dict) else {}
    else:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return unpriced(RESPONSE_NOT_JSON)
        wrapped = unwrap_batch_result(body)
        if wrapped is not None:
            body, wrapped_status = wrapped
            is_batch = True if batch is None else batch
            status = status or wrapped_status
        err = d.error_summary(body)
        if (status is not None and status >= 400) or err is not None:
            return unpriced(PROVIDER_ERROR, error=err or f"HTTP {status}")
        named = _named_dialect(d, body)
        if named is not None:
            # The body names another API's object kind: read as this API it could still yield
            # tokens (Anthropic's usage and Responses' both say input_tokens / output_tokens), but
            # that would be another API's counting rule priced as this one's.
            return wrong_dialect(named)
        served = d.response_model(body)
        usage = d.usage(body)
        if isinstance(body, list):  # Gemini's JSON-array stream: the element that reports usage
            body = next((x for x in reversed(body) if isinstance(x, dict) and d.usage(x) is not None), None)
        info = d.response_info(body) if isinstance(body, dict) else None
        tier, batch_tier = (info.service_tier, info.batch) if info is not None else (None, False)
        is_batch = is_batch or (batch_tier and batch is not False)
        if info is not None:
            out["response_id"] = info.response_id
            variant = dict(info.variant)
        stream_body = body if isinstance(body, dict) else {}
    if entry is not None:
        usage, reported, extra = entry.bill(usage, stream_body, req_body if isinstance(req_body, dict) else None)
        variant.update(extra)
    if tier is None and not is_batch and isinstance(req_body, dict):
        tier = d.requested_tier(req_body)  # silent response: the tier the request asked for
    served = served or out["requested_model"]
    out["served_model"] = served
    out["usage"] = _usage_json(usage)
    out["service_tier"] = tier
    out["batch"] = is_batch
    out["price_variant"] = variant or None
    if prov is None and served:
        prov = _price_file_provider(served)  # a self-hosted model the operator's price file prices
        if prov is not None:
            out["provider"] = prov
    if prov is None:
        return unpriced("unknown_provider")
    if usage is None:
        hint = d.no_usage_hint(req_body if isinstance(req_body, dict) else None)
        if isinstance(body, dict) and d.is_pending(body):
            return unpriced(BACKGROUND_PENDING, status=body.get("status"))
        if isinstance(body, dict):
            # Usage in another API's shape: the --url (or --dialect) names the wrong API.
            kind = body.get("object") or body.get("type")
            # The dialect whose object kind the body names first (an Anthropic "message" has usage
            # Responses could read too), then any that reads usage from it.
            others = sorted((o for o in DIALECTS.values() if o is not d), key=lambda o: kind not in o.object_kinds)
            other = next((o for o in others if _reads_usage(o, body)), None)
            if other is not None:
                return wrong_dialect(other)
        return unpriced("no_usage", hint=hint)
    if not served:
        return unpriced("unknown_model", source=catalogue.CATALOGUE, served="", provider=prov)

    cost = price(prov, served, usage, when=when, service_tier=tier, batch=is_batch, variant=variant, reported_usd=reported)
    _cost_fields(out, cost)
    if cost.total_usd is None:
        return unpriced(
            cost.unpriced_reason or "unknown_model",
            source=catalogue.CATALOGUE,
            served=served,
            provider=cost.provider,
            tier=tier,
            variant=cost.variant,
        )
    _baseline(out, prov, cost, usage, when, tier, is_batch, baseline, candidates)
    return out


def _named_dialect(d: Dialect, body: Any) -> Dialect | None:
    """The other dialect whose object kind ``body`` names (``"object": "response"`` for Responses,
    ``"type": "message"`` for Anthropic Messages, ``"object": "chat.completion"`` for Chat
    Completions: ``Dialect.object_kinds``), when ``d`` does not list that kind; else ``None``."""
    if not isinstance(body, dict):
        return None
    kind = body.get("object") or body.get("type")
    if not isinstance(kind, str) or kind in d.object_kinds:
        return None
    return next((o for o in DIALECTS.values() if o is not d and kind in o.object_kinds), None)


def _reads_usage(d: Dialect, body: dict[str, Any]) -> bool:
    """Whether dialect ``d`` reads token usage from ``body`` (never raises)."""
    try:
        return d.usage(body) is not None
    except Exception:  # noqa: BLE001 - a foreign shape may trip another dialect's reader
        return False


def _price_file_provider(model: str) -> str | None:
    """The provider under which the installed price file lists ``model`` (exact name,
    case-insensitive), when exactly one provider does: a self-hosted server at an unknown host
    (``http://localhost:11434``) needs no ``--provider`` then. ``None`` otherwise."""
    pf = catalogue.price_file()
    if pf is None:
        return None
    key = model.strip().lower()
    owners = {p for (p, m) in pf.models if m == key}
    return owners.pop() if len(owners) == 1 else None


def _cost_fields(out: dict[str, Any], cost: Cost) -> None:
    """Fill ``out`` from a ``Cost``: provider, rates, breakdown, totals, corrections."""
    if out.get("provider") in (None, out.get("catalogue_provider")):
        out["provider"] = cost.provider  # no registry name of its own (OpenRouter's x-ai/… models: x-ai)
    out["catalogue_provider"] = cost.provider
    out["price_source"] = cost.catalogue
    out["corrections"] = list(cost.corrections)
    if cost.rates is not None:
        r = cost.rates
        out["rates_usd_per_mtok"] = {
            "input": usd_text(r.input),
            "cache_read": usd_text(r.cache_read),
            "cache_write_5m": usd_text(r.cache_write_5m),
            "cache_write_1h": usd_text(r.cache_write_1h),
            "output": usd_text(r.output),
            "reasoning": usd_text(r.reasoning),
            "web_search_per_1000": usd_text(r.web_search),
            **{k: usd_text(v) for k, v in (
                ("input_audio", r.input_audio), ("output_audio", r.output_audio),
                ("file_search_per_1000", r.file_search), ("code_interpreter_per_1000", r.code_interpreter),
                ("request_fee_per_1000", r.request),
            ) if v is not None and v != r.input and v != r.output},
        }
        out["long_context_above"] = r.tier_start
    if cost.total_usd is None:
        return
    out["priced_as"] = cost.model
    out["breakdown_usd"] = {k: format_usd(v) for k, v in cost.breakdown.items()}
    out["cost_usd"] = format_usd(cost.total_usd)
    out["reported_cost_usd"] = usd_text(cost.reported_usd)
    out["catalogue_cost_usd"] = usd_text(cost.catalogue_usd)
    out["cost_disagrees"] = cost.disagrees


def _explain_batch_file(
    url: str, raw: bytes, *, provider: str | None, when: datetime, batch: bool | None,
    baseline: str | None, candidates: dict[str, list[str]] | None,
) -> dict[str, Any]:
    """A batch output file (JSONL, one batch result per line): each line priced as its own
    response (its dialect from the body's ``object``/``type``), then summed. Unpriced if any line
    is (its reason), so a total is never short."""
    parts = urlsplit(url)
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    results = []
    for ln in lines:
        try:
            obj = json.loads(ln)
        except ValueError:
            obj = None
        inner = unwrap_batch_result(obj)
        body = inner[0] if inner is not None else None
        kind = body.get("object") or body.get("type") if isinstance(body, dict) else None
        # The line's API from its body's object kind (Dialect.object_kinds), else the default one.
        d = next((x for x in DIALECTS.values() if kind in x.object_kinds), None)
        base = f"{parts.scheme}://{parts.netloc}"
        path = (d or dialects.get(None)).paths[0]
        results.append(explain(base + path, ln, provider=provider, dialect=d.name if d else None, when=when,
                               batch=True if batch is None else batch, baseline=baseline, candidates=candidates))
    first = results[0] if results else explain(url, b"", provider=provider, dialect=dialects.DEFAULT, when=when)
    out = dict(first)
    out["url"] = url
    out["requests"] = len(results)
    bad = next((r for r in results if r["cost_usd"] is None), None)
    if bad is not None or not results:
        out.update({k: (bad or first)[k] for k in ("unpriced_reason", "explanation")})
        out["cost_usd"] = None
        return out
    total = sum((D(r["cost_usd"]) for r in results), D(0))
    out["cost_usd"] = format_usd(total)
    classes = dict.fromkeys(k for r in results for k in r["breakdown_usd"])
    out["breakdown_usd"] = {k: format_usd(sum((D(r["breakdown_usd"].get(k, "0")) for r in results), D(0))) for k in classes}
    keys = {k for r in results for k in (r["usage"] or {})}
    out["usage"] = {k: sum((r["usage"] or {}).get(k, 0) for r in results) for k in sorted(keys)}
    for k in ("baseline_cost_usd", "cost_saved_usd", "reported_cost_usd", "catalogue_cost_usd"):
        vals = [r[k] for r in results]
        out[k] = format_usd(sum((D(v) for v in vals), D(0))) if all(v is not None for v in vals) else None
    return out


def _baseline(
    out: dict[str, Any],
    provider: str,
    cost: Cost,
    usage: Usage,
    when: datetime,
    tier: str | None,
    batch: bool,
    configured: str | None,
    candidates: dict[str, list[str]] | None,
) -> None:
    candidates = candidates or {}
    pool = candidates.get(cost.provider) or candidates.get(provider) or []
    base = baseline_cost(provider, usage, pool, configured=configured, when=when, service_tier=tier, batch=batch)
    if base is None:
        if configured:
            out["baseline_note"] = f"the configured baseline {configured} could not be priced"
        elif not pool:
            out["baseline_note"] = (f"no routing tier models for provider {out.get('provider') or provider} "
                                    "(set baseline_models in the settings or pass --baseline)")
        else:
            under = f"service tier {tier}" if tier else ("batch" if batch else "standard rates")
            out["baseline_note"] = (f"the candidate models ({', '.join(dict.fromkeys(pool))}) have no "
                                    f"rates under {under}")
        return
    out["baseline_model"] = base.model
    out["baseline_cost_usd"] = usd_text(base.total_usd)
    out["cost_saved_usd"] = usd_text(cost_saved(cost, base))


def render_table(e: dict[str, Any], sources: bool = True) -> str:
    """``explain``'s result as a plain-text table: one line per token class with its tokens, rate
    (USD per MTok) and cost (USD), then the total, the baseline and the saving."""
    lines = [
        f"provider     {e['provider'] or '-'}    dialect {e['dialect'] or '-'}"
        + (f"    priced from catalogue: {e['catalogue_provider']}"
           if e.get("catalogue_provider") and e["catalogue_provider"] != e["provider"] else ""),
        f"model        {e['served_model'] or '-'}"
        + (f"  (priced as {e['priced_as']}, {e['price_source']})" if e.get("priced_as") else ""),
    ]
    if e.get("service_tier") or e.get("batch"):
        lines.append(f"served       tier {e.get('service_tier') or 'standard'}{', batch' if e.get('batch') else ''}")
    u = e.get("usage")
    r = e.get("rates_usd_per_mtok") or {}
    if u:
        uncached = u["input_tokens"] - u["cache_read_tokens"] - u["cache_write_5m_tokens"] - u["cache_write_1h_tokens"]
        rows = [
            ("input (uncached)", uncached, r.get("input")),
            ("cache read", u["cache_read_tokens"], r.get("cache_read")),
            ("cache write 5m", u["cache_write_5m_tokens"], r.get("cache_write_5m")),
            ("cache write 1h", u["cache_write_1h_tokens"], r.get("cache_write_1h")),
            ("output (excl. reasoning)", u["output_tokens"] - u["reasoning_tokens"], r.get("output")),
            ("reasoning (output)", u["reasoning_tokens"], r.get("reasoning")),
        ]
        # A cache-write class the provider does not bill apart (no write rate of its own: OpenAI,
        # Gemini …) and this usage does not have is not a line of its bill.
        rows = [row for row in rows if not (row[0].startswith("cache write") and row[1] == 0
                                            and (row[2] is None or row[2] == r.get("input")))]
        lines.append(f"{'class':<26}{'tokens':>10}{'USD/MTok':>12}{'USD':>16}")
        for label, n, rate in rows:
            usd = format_usd(Decimal(rate) * n / 1_000_000) if rate is not None and e.get("cost_usd") else ""
            lines.append(f"{label:<26}{n:>10}{(rate or '-'):>12}{usd:>16}")
        if u.get("web_search_requests"):
            rate = r.get("web_search_per_1000")
            usd = format_usd(Decimal(rate) * u["web_search_requests"] / 1000) if rate and e.get("cost_usd") else ""
            lines.append(f"{'web search (calls)':<26}{u['web_search_requests']:>10}{(rate or '-') + '/1k':>12}{usd:>16}")
        lines.append(f"{'all input':<26}{u['input_tokens']:>10}")
        if e.get("long_context_above"):
            lines.append(f"long-context rates: input above {e['long_context_above']} tokens")
    for key, label in (("request_fee", "request fee"), ("file_search", "file search (calls)"),
                       ("code_interpreter", "code interpreter"), ("input_audio", "audio input"),
                       ("output_audio", "audio output"), ("input_image", "image input"), ("input_video", "video input")):
        usd = (e.get("breakdown_usd") or {}).get(key)
        if usd is not None:
            lines.append(f"{label:<48}{usd:>16}")
    if e.get("cost_usd") is not None:
        lines.append(f"{'total':<48}{e['cost_usd']:>16}")
    if e.get("reported_cost_usd") is not None:
        lines.append(f"reported     {e['reported_cost_usd']} USD by the provider (usage.cost); catalogue "
                     f"{e.get('catalogue_cost_usd') or '-'} USD{' - they disagree' if e.get('cost_disagrees') else ''}")
    for cid in e.get("corrections") or []:
        from nadir_extproc.pricing.corrections import by_id

        c = by_id(cid)
        lines.append(f"correction   {cid}" + (f": {c.source}" if sources else ""))
    if e.get("unpriced_reason"):
        lines.append(f"unpriced: {e['unpriced_reason']} - {e['explanation']}")
    if e.get("baseline_model"):
        lines.append(
            f"baseline     {e['baseline_model']} {e['baseline_cost_usd']} USD; saved {e['cost_saved_usd']} USD "
            "(baseline cost at the same usage - actual cost; the request path reports 0 when the "
            "client named the model itself)"
        )
    elif e.get("baseline_note"):
        lines.append(f"baseline     none: {e['baseline_note']}")
    return "\n".join(lines)
