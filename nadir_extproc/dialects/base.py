"""What every API dialect knows: how to read a request and a response of its API.

A dialect is pure: it parses already-decoded JSON (``dict``) and returns plain values. Adding a
provider API means adding one module in this package that defines a ``Dialect`` subclass and
listing it in ``nadir_extproc.dialects.DIALECTS``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from nadir_extproc import jsonbody
from nadir_extproc.jsonbody import JsonObject
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.record import RequestInfo, ResponseInfo


@dataclass(frozen=True, slots=True)
class NeedsShape:
    """Where a request body of one API shows that it needs images or tools (routing constraints,
    ``routing.policy.request_needs``).

    - ``roots``: top-level keys holding the conversation (walked to depth 8).
    - ``tool_lists``: top-level keys whose non-empty list declares tools.
    - ``image_types`` / ``tool_types``: content-part ``type`` values meaning an image / tool traffic.
    - ``tool_keys``: keys whose truthy value is tool traffic (``tool_calls``, ``functionCall`` …).
    - ``tool_roles``: message roles that are tool results.
    - ``media_keys``: inline/file media parts; an image unless their MIME type is ``text/*``.
    """

    roots: tuple[str, ...] = ()
    tool_lists: tuple[str, ...] = ("tools",)
    image_types: frozenset[str] = frozenset()
    tool_types: frozenset[str] = frozenset()
    tool_keys: tuple[str, ...] = ()
    tool_roles: tuple[str, ...] = ()
    media_keys: tuple[str, ...] = ()

    def __or__(self, other: NeedsShape) -> NeedsShape:
        """Both shapes at once (for a body whose API is unknown)."""
        def keys(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(a + b))
        return NeedsShape(keys(self.roots, other.roots), keys(self.tool_lists, other.tool_lists),
                          self.image_types | other.image_types, self.tool_types | other.tool_types,
                          keys(self.tool_keys, other.tool_keys), keys(self.tool_roles, other.tool_roles),
                          keys(self.media_keys, other.media_keys))


_NEEDS_DEPTH = 8


def find_needs(body: Any, shape: NeedsShape) -> tuple[bool, bool]:
    """``(images, tools)``: whether ``body`` (a parsed request of the API ``shape`` describes)
    carries an image part or tool declarations / tool traffic. Walks at most 8 levels; never raises."""
    found = {"images": False, "tools": False}
    if isinstance(body, dict):
        for k in shape.tool_lists:
            v = body.get(k)
            if isinstance(v, list) and v:
                found["tools"] = True
        for k in shape.roots:
            v = body.get(k)
            if isinstance(v, (dict, list)):
                _walk_needs(v, found, 1, shape)
    return found["images"], found["tools"]


def _walk_needs(node: Any, found: dict[str, bool], depth: int, shape: NeedsShape) -> None:
    if depth > _NEEDS_DEPTH or (found["images"] and found["tools"]):
        return
    if isinstance(node, list):
        for x in node:
            if isinstance(x, (dict, list)):
                _walk_needs(x, found, depth + 1, shape)
        return
    if not isinstance(node, dict):
        return
    t = node.get("type")
    if isinstance(t, str):
        if t in shape.image_types:
            found["images"] = True
        elif t in shape.tool_types:
            found["tools"] = True
    if shape.tool_roles and node.get("role") in shape.tool_roles:
        found["tools"] = True
    for k in shape.tool_keys:
        if node.get(k):
            found["tools"] = True
    for k in shape.media_keys:
        media = node.get(k)
        if isinstance(media, dict):
            mime = media.get("mime_type") or media.get("mimeType") or ""
            if not (isinstance(mime, str) and mime.startswith("text/")):
                found["images"] = True
    for v in node.values():
        if isinstance(v, (dict, list)):
            _walk_needs(v, found, depth + 1, shape)


class RewriteError(ValueError):
    """The body has no top-level string field to rewrite (raised by ``replace_top_level_string``)."""


def replace_top_level_string(body: bytes, key: str, value: str, parsed: JsonObject | None = None) -> bytes:
    """Return ``body`` with every top-level JSON string field ``key`` set to ``value``.

    Only those values change; every other byte (spacing, key order, number formats, escaped text
    inside messages, a nested ``metadata.model``) stays as the client sent it. A body with the key
    twice gets both rewritten, so the upstream sees the new value whichever duplicate its parser
    keeps (Python's keeps the last, others the first).

    ``parsed``: ``body`` as already parsed by ``nadir_extproc.jsonbody.parse`` (its value spans
    are reused, so the body is not read again); otherwise ``body`` is parsed here (``ValueError``
    if it is not JSON). Raises ``RewriteError`` when the object has no top-level ``key`` whose
    value is a string. Cost: linear, one C-scanner parse at most plus one join (6 MB: ~10 ms).
    """
    obj = parsed if parsed is not None and parsed.raw is body else jsonbody.parse(body)
    if not isinstance(obj, JsonObject):
        raise RewriteError(f"no top-level {key!r} field")
    spans = obj.byte_spans(key)
    if not spans:
        raise RewriteError(f"no top-level {key!r} field")
    if not all(is_str for _, _, is_str in spans):
        raise RewriteError(f"top-level {key!r} is not a string")
    new = json.dumps(value, ensure_ascii=False).encode()
    return jsonbody.replace_values(body, [(a, b) for a, b, _ in spans], new)


def _text_of(content: Any, out: list[str]) -> None:
    """Append the text parts of an OpenAI/Anthropic ``content`` value (str or list of parts)."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                t = part.get("text")
                if isinstance(t, str):
                    out.append(t)
            elif isinstance(part, str):
                out.append(part)


def _messages_text(msgs: Any, out: list[str]) -> None:
    """Append the text of every message's ``content`` in a ``messages`` list (OpenAI chat and
    Anthropic share the shape)."""
    if isinstance(msgs, list):
        for m in msgs:
            if isinstance(m, dict):
                _text_of(m.get("content"), out)


def tier_and_batch(tier: str | None) -> tuple[str | None, bool]:
    """``(service_tier, batch)`` from a raw reported tier string: ``"batch"`` (Anthropic's
    ``usage.service_tier`` of a batch result) means batch rates, anything else is passed on as
    the tier; ``None`` stays ``(None, False)``."""
    if tier is None:
        return None, False
    if tier.strip().lower() == "batch":
        return None, True
    return tier, False


def _nonneg_int(v: Any) -> int | None:
    """``v`` when it is a non-negative int (not a bool), else ``None``."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _has_count(v: Any, depth: int = 0) -> bool:
    """Whether ``v`` holds a non-negative integer token count (not a bool), at most 4 levels deep."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v >= 0
    if depth < 4 and isinstance(v, dict):
        return any(_has_count(x, depth + 1) for x in v.values())
    return False


def str_or_none(v: Any) -> str | None:
    """``v`` when it is a non-empty string, else ``None``."""
    return v if isinstance(v, str) and v else None


def as_int(v: Any) -> int:
    """A token count from JSON: non-negative int, anything else (absent, null, bad) counts as 0."""
    return v if type(v) is int and v > 0 else 0


#: ``StreamUsage.on_event`` verdict flags for one SSE event (combine with ``|``, test with ``&``).
KEEP = 0  # forward the event unchanged
DROP = 1  # remove the event from what the client receives (e.g. a usage chunk we asked for)
TERMINAL = 2  # the stream's terminal event: in-band cost goes right before it
USAGE = 4  # the event that carries the final usage (opt-in cost JSON field goes into it)
#: An event the client expects that may be the last one before a usage event that is ours to DROP
#: (a Chat stream's finish chunk when we injected ``include_usage``): with the opt-in cost field
#: the stream handler (``nadir_extproc.stream``) holds it until the usage is known and adds the field to it
#: (``nadir_extproc.inband``).
CARRIER = 8


class StreamUsage:
    """Usage of one streamed (SSE) response, built event by event.

    Subclasses (one per dialect) look at each ``nadir_extproc.sse.Event`` and parse JSON only for
    events that can hold the model or usage. After the stream: ``usage()`` (``None`` when the
    stream reported none), ``model`` (as the provider reported it), ``failed`` (an error event
    arrived after HTTP 200), ``service_tier`` (the tier the stream says *served* the request, raw
    string as reported — OpenAI ``service_tier``, Anthropic ``usage.service_tier``, Gemini
    ``usageMetadata.serviceTier`` — the latest one seen wins; ``None`` when never reported; for
    ``pricing.cost.price(…, service_tier=)``). Kept current by ``on_event`` itself, read only
    from events the dialect already parses (or regex-matches) for model and usage.
    ``response_id`` / ``finish_reasons`` (``gen_ai.response.id`` / ``.finish_reasons`` for
    telemetry; ``None`` until reported) come from events already parsed, plus at most the one
    event that carries the finish reason.
    """

    def __init__(self) -> None:
        self.model: str | None = None
        self.failed = False
        self.service_tier: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] | None = None

    def note(self, model: Any, response_id: Any) -> None:
        """Record the served model (latest non-empty string wins: Azure's leading content-filter
        chunk has ``"model": ""``, and must not hide the model named by later chunks) and the
        response id (first non-empty string wins) from values read out of an event's JSON;
        anything else is ignored."""
        if isinstance(model, str) and model:
            self.model = model
        if self.response_id is None and isinstance(response_id, str) and response_id:
            self.response_id = response_id

    def on_event(self, ev: Any) -> int:
        """Take one event; return verdict flags (``KEEP``, or ``DROP``/``TERMINAL``/``USAGE`` or-ed)."""
        raise NotImplementedError

    def usage(self) -> Usage | None:
        """Normalised usage known so far (``None`` if none was reported)."""
        raise NotImplementedError

    def info(self) -> ResponseInfo:
        """Everything the stream reported so far, in one ``ResponseInfo``."""
        tier, batch = tier_and_batch(self.service_tier)
        return ResponseInfo(self.model, self.response_id, self.finish_reasons, self.usage(), tier, batch, self.failed,
                            self.price_variant())

    def price_variant(self) -> dict[str, str]:
        """Non-standard price variants the stream reported (``Dialect.price_variant``)."""
        return {}


class Dialect:
    """One client-facing LLM API (request and response formats).

    Class attributes:
    - ``name``: our id for the API (``openai_chat`` …), used in config and logs.
    - ``provider``: provider id (``openai``, ``anthropic``, ``google``), selects the Envoy cluster
      and the price list.
    - ``operation``: the ``gen_ai.operation.name`` value (OTel GenAI semconv v1.41.1).
    - ``paths``: request paths (without query) that this dialect serves by default.
    """

    name: ClassVar[str]
    provider: ClassVar[str]
    operation: ClassVar[str]
    paths: ClassVar[tuple[str, ...]]
    #: Whether this API's streams may carry the in-band SSE comment block (``nadir_extproc.inband``).
    #: False where real clients treat a non-``data:`` line as an error (Gemini).
    sse_comments: ClassVar[bool] = True
    #: The event that ends a whole stream of this API (its reader answers ``TERMINAL`` to it), or
    #: ``None`` where a stream just stops (Gemini). A saved stream without it was cut.
    stream_terminal: ClassVar[str | None] = None

    # --- request ---------------------------------------------------------------------------
    def request_info(self, body: dict[str, Any], path: str = "") -> RequestInfo:
        """Everything the processor reads from a request body (and its ``:path``), in one call."""
        path_model = self.model_from_path(path) if path else None
        return RequestInfo(
            model=path_model or self.request_model(body),
            model_in_path=path_model is not None,
            stream=self.is_stream(body) or (bool(path) and self.is_stream_path(path)),
            user=self.request_user(body),
            message_count=self.message_count(body),
            prompt_of=lambda: self.prompt_text(body),
        )

    def request_model(self, body: dict[str, Any]) -> str | None:
        """The model the client asked for (``None`` when absent or not a string)."""
        m = body.get("model")
        return m if isinstance(m, str) else None

    def rewrite_model(self, raw: bytes, body: dict[str, Any], model: str) -> bytes:
        """The request body with only the top-level ``model`` replaced by ``model``.

        Raises ``RewriteError`` when there is no top-level string ``model``.
        """
        return replace_top_level_string(raw, "model", model, body if isinstance(body, JsonObject) else None)

    def is_stream(self, body: dict[str, Any]) -> bool:
        """True when the client asked for a streamed (SSE) response."""
        return body.get("stream") is True

    def prompt_text(self, body: dict[str, Any]) -> str:
        """All prompt text of the request, joined by newlines (for the router; never logged)."""
        raise NotImplementedError

    #: The request body's list of conversation turns (``messages``, ``input``, ``contents``).
    turns_key: ClassVar[str] = "messages"

    def message_count(self, body: dict[str, Any]) -> int:
        """Number of conversation turns in the request (1 when the body has no list of them)."""
        turns = body.get(self.turns_key)
        return len(turns) if isinstance(turns, list) else 1

    def request_user(self, body: dict[str, Any]) -> Any:
        """The body's own end-user field, raw (``None`` when the API has none or it is absent)."""
        return None

    # --- request parameters, output caps, content (telemetry and budgets read these) ------
    #: ``(body key, parameter, kind)`` of the request parameters telemetry reports, first key
    #: present wins per parameter. Parameters: ``max_tokens``, ``temperature``, ``top_p``,
    #: ``top_k``, ``frequency_penalty``, ``presence_penalty``, ``seed``, ``choice_count``,
    #: ``stop_sequences``; kinds: ``int``, ``float``, ``strs`` (telemetry.extract converts).
    param_keys: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    #: Top-level output-token cap fields, in order of precedence (a hard bound the provider
    #: enforces, reasoning included).
    cap_keys: ClassVar[tuple[str, ...]] = ()

    #: Where its request bodies show images or tools (``find_needs``).
    needs_shape: ClassVar[NeedsShape] = NeedsShape()

    def needs(self, body: Any) -> tuple[bool, bool]:
        """``(images, tools)`` of a request body (``find_needs`` with ``needs_shape``)."""
        return find_needs(body, self.needs_shape)

    def param_sources(self, body: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        """The objects ``param_keys`` are looked up in (the body; Gemini adds ``generationConfig``)."""
        return (body,)

    def output_cap(self, body: dict[str, Any] | None) -> int | None:
        """The request's own output-token cap (non-negative int), ``None`` when it sets none."""
        if not isinstance(body, dict):
            return None
        return next((n for n in (_nonneg_int(body.get(k)) for k in self.cap_keys) if n is not None), None)

    def choice_count(self, body: dict[str, Any] | None) -> int:
        """How many completions the request asks for, each of which may reach the cap (1 unless
        the API has a choice count and the body sets one)."""
        return 1

    def input_turns(self, body: dict[str, Any]) -> list[tuple[str, Any]]:
        """Opt-in content capture: ``(role, raw content)`` of each input message (content is a
        string or a list of parts/blocks)."""
        turns = body.get(self.turns_key)
        if isinstance(turns, str):
            return [("user", turns)]
        if not isinstance(turns, list):
            return []
        return [(str(m.get("role", "user")), m.get("content")) for m in turns if isinstance(m, dict)]

    def system_content(self, body: dict[str, Any]) -> Any:
        """Opt-in content capture: the system instructions outside the messages, raw (``None``)."""
        return None

    def output_turns(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Opt-in content capture: each output message of a JSON response as ``{"role",
        "content" (raw), "finish_reason"? }``."""
        return []

    # --- errors ----------------------------------------------------------------------------
    def error_body(self, message: str) -> bytes:
        """A 429 (rate limit) error body in this API's own error format carrying ``message``, so
        the official SDKs raise their rate-limit error."""
        raise NotImplementedError

    def refusal_body(self, status: int, code: str, message: str) -> bytes:
        """An error body of ours (``nadir_extproc.refusal``: a 413 ``request_too_large``) in this
        API's own error format, with ``code`` and ``message``."""
        raise NotImplementedError

    def error_summary(self, body: Any) -> str | None:
        """``code``/``type``/``status`` of an error response body (never its message, which may
        quote input), ``None`` when ``body`` is not an error. ``{"error": {…}}`` is the shape
        of OpenAI, Gemini (``google.rpc.Status``) and Anthropic (with ``"type": "error"``)."""
        if not isinstance(body, dict):
            return None
        err = body.get("error")
        if isinstance(err, dict):
            bits = [str(err[k]) for k in ("code", "type", "status") if isinstance(err.get(k), (str, int))]
            return " ".join(dict.fromkeys(bits)) or "error"
        if body.get("type") == "error":
            return "error"
        return None

    # --- recorded interactions (the ``cost`` command) -----------------------------------------
    #: Path endings that name this API behind any prefix (``/openai/v1/chat/completions``).
    path_suffixes: ClassVar[tuple[str, ...]] = ()
    #: The ``object`` / ``type`` of its response bodies (a batch result line names its API so).
    object_kinds: ClassVar[tuple[str, ...]] = ()
    #: The path (its end) that fetches a batch's results file (JSONL, one result per line), if any.
    batch_results: ClassVar[re.Pattern[str] | None] = None

    def matches_suffix(self, bare_path: str) -> bool:
        """True when ``bare_path`` (no query, no trailing ``/``) ends like this API's paths."""
        return bare_path.endswith(self.path_suffixes) if self.path_suffixes else False

    def no_usage_hint(self, request: dict[str, Any] | None) -> str:
        """Why a response of this request may carry no usage (text for people), else ``""``."""
        return ""

    # --- response --------------------------------------------------------------------------
    def response_info(self, body: dict[str, Any]) -> ResponseInfo:
        """Everything a JSON response body reports, in one call: served model, id, finish
        reasons, usage, and the service tier that served it."""
        tier, batch = tier_and_batch(self.response_tier(body))
        rid, reasons = self.response_ids(body)
        return ResponseInfo(self.response_model(body), rid, reasons, self.usage(body), tier, batch,
                            variant=self.price_variant(body))

    def response_ids(self, body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
        """``(gen_ai.response.id, gen_ai.response.finish_reasons)`` of a JSON response body."""
        return str_or_none(body.get("id")), None

    def response_tier(self, body: dict[str, Any]) -> str | None:
        """The raw service tier the response says served it (``None`` when not reported)."""
        return None

    def response_model(self, body: dict[str, Any]) -> str | None:
        """The model that served the request, as the provider reports it."""
        m = body.get("model")
        return m if isinstance(m, str) else None

    def usage(self, body: dict[str, Any]) -> Usage | None:
        """Normalised usage of a JSON response body; ``None`` when the body reports none."""
        raise NotImplementedError

    def usage_blocks(self, body: dict[str, Any]) -> tuple[Any, ...]:
        """The raw usage object(s) of a JSON response body, as sent (``usage`` by default), for
        telling a reported zero from a block with no count in it (``counts_nothing``)."""
        return (body.get("usage"),)

    def counts_nothing(self, usage: Usage, body: dict[str, Any]) -> bool:
        """``usage`` read as all zeros from a block with no count in it at all (null, strings,
        garbage): nothing priceable was reported, so it is unpriced, never $0 (issue 18). A real
        zero (``"prompt_tokens": 0``) is a count."""
        if any(getattr(usage, f) for f in usage.__dataclass_fields__):
            return False
        return not any(_has_count(b) for b in self.usage_blocks(body))

    #: Responses can be fetched again by id after the request that made them (OpenAI Responses):
    #: the processor prices each response id once.
    retrievable: ClassVar[bool] = False

    def retrieved_id(self, path: str) -> str | None:
        """The response id a ``GET`` of ``path`` fetches (``GET /v1/responses/{id}``), else ``None``."""
        return None

    def is_pending(self, body: dict[str, Any]) -> bool:
        """The response has not finished (a background response still queued / in progress): its
        usage comes later, with its retrieval."""
        return False

    def requested_tier(self, body: dict[str, Any]) -> str | None:
        """The service tier the request asked for, used when the response does not say which
        tier served it; ``None`` when it asked for none (or for the provider's automatic choice)."""
        return None

    def price_variant(self, body: dict[str, Any]) -> dict[str, str]:
        """Price variants the response reports with a non-standard value (Anthropic
        ``usage.speed`` ``"fast"`` …), for ``pricing.cost.price(variant=)``; ``{}`` by default."""
        return {}

    def stream_usage(self, injected_usage: bool = False, usage_object: Callable[[dict[str, Any]], Any] | None = None) -> StreamUsage:
        """A fresh per-stream usage accumulator. ``injected_usage``: we added
        ``stream_options.include_usage`` to the request, so the usage-only event is ours to drop.
        ``usage_object``: the provider's rule for where a chunk's usage object sits (Groq's
        ``x_groq.usage``; ``providers.base.Provider.usage_object``), for dialects whose providers
        differ there; ignored by the others."""
        raise NotImplementedError

    def read_stream(self, raw: bytes, usage_object: Callable[[dict[str, Any]], Any] | None = None) -> tuple[StreamUsage, bool]:
        """A whole saved SSE body read at once: ``(accumulator, terminal_seen)``; the accumulator
        has ``usage()``, ``model``, ``failed``, ``service_tier``, ``price_variant()``;
        ``terminal_seen``: its ``stream_terminal`` event came (a stream without it was cut).
        ``NotImplementedError`` where the API has no SSE stream reader."""
        from nadir_extproc.sse import SSEParser

        acc = self.stream_usage(False, usage_object=usage_object)
        events, _ = SSEParser(max_event_bytes=len(raw) + 1).feed(raw + (b"" if raw.endswith((b"\n\n", b"\r\n\r\n")) else b"\n\n"))
        terminal = False
        for ev in events:
            terminal = bool(acc.on_event(ev) & TERMINAL) or terminal
        return acc, terminal

    def inject_stream_usage(self, raw: bytes, body: dict[str, Any]) -> bytes | None:
        """The request body changed so a streamed response reports usage, or ``None`` when the API
        needs no change (the default) or the client already asked for it."""
        return None

    # --- model in the URL path (Gemini); other dialects keep the model in the body -----------
    def matches_path(self, path: str) -> bool:
        """True when ``path`` (query removed) belongs to this dialect beyond its exact ``paths``."""
        return False

    def is_stream_path(self, path: str) -> bool:
        """True when the request path itself asks for a stream (Gemini ``:streamGenerateContent``)."""
        return False

    def model_from_path(self, path: str) -> str | None:
        """The model named in the request path, for APIs that put it there (else ``None``)."""
        return None

    def rewrite_path(self, path: str, model: str) -> str:
        """``path`` with the model replaced (APIs that put the model in the path); else unchanged."""
        return path
