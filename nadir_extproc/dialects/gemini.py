"""Google Gemini ``generateContent`` / ``streamGenerateContent`` (Gemini API and Vertex AI paths).

The model is in the URL path, not the body: ``/v1beta/models/{model}:generateContent``,
``/v1/models/{model}:streamGenerateContent?alt=sse``, Vertex
``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent``. A path model
of ``auto`` is rewritten in the path (``rewrite_path``), like the body field of the other dialects.
Streaming is chosen by the method in the path (``:streamGenerateContent``), not by the body.

Usage counting rule (Gemini API reference, ``GenerateContentResponse.UsageMetadata``):

- ``promptTokenCount`` is the whole prompt and *includes* ``cachedContentTokenCount`` (the cache
  read subset; "when cachedContent is set, this is still the total effective prompt size");
- ``toolUsePromptTokenCount`` (prompt of tool-use, e.g. grounding results) is *not* inside
  ``promptTokenCount`` and is billed as input;
- ``thoughtsTokenCount`` is *not* inside ``candidatesTokenCount`` and is billed as output
  (``totalTokenCount`` = prompt + toolUsePrompt + candidates + thoughts, recording 35:
  9 + 9 + 34 = 52).

So: input = prompt + toolUsePrompt, of which cache read = cachedContent; output = candidates +
thoughts, of which reasoning = thoughts. Gemini reports no cache writes (explicit cache creation
is billed per storage hour, outside a request). Streamed chunks each carry cumulative
``usageMetadata``; the last one holds the final counts.

Modalities: ``promptTokensDetails`` / ``toolUsePromptTokensDetails`` (and ``cacheTokensDetails`` for
the cached part) list ``{modality, tokenCount}`` per ``TEXT`` / ``IMAGE`` / ``AUDIO`` / ``VIDEO``;
``candidatesTokensDetails`` the same for output. Uncached audio/image/video input and audio/image
output are billed at their own rates (Gemini API pricing: gemini-2.5-flash audio input $1.00 vs
$0.30 text per MTok).

The tier that served the request: ``usageMetadata.serviceTier`` (Gemini API) or, on Vertex AI,
``usageMetadata.trafficType`` (Vertex AI reference, ``UsageMetadata.TrafficType``: ``ON_DEMAND``,
``ON_DEMAND_FLEX``, ``ON_DEMAND_PRIORITY``, ``PROVISIONED_THROUGHPUT``) -> ``served_tier``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from nadir_extproc.dialects.base import KEEP, USAGE, Dialect, NeedsShape, StreamUsage, as_int, str_or_none
from nadir_extproc.pricing.usage import Usage

# ".../models/{model}:{method}" with the model as one path segment (no "/", ":" or "?").
_PATH = re.compile(r"^(?P<head>/[^?]*?/models/)(?P<model>[^/:?]+)(?P<method>:(?:generateContent|streamGenerateContent))(?P<tail>(?:\?.*)?)$")


def gemini_usage(u: Any) -> Usage | None:
    """Normalise a Gemini ``usageMetadata`` object (see the module docstring for the rule).

    Returns ``None`` when ``u`` is not a usage object (no prompt or candidate count at all).
    """
    if not isinstance(u, dict) or not any(
        k in u for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount")
    ):
        return None
    prompt = as_int(u.get("promptTokenCount"))
    tool_prompt = as_int(u.get("toolUsePromptTokenCount"))
    cached = min(as_int(u.get("cachedContentTokenCount")), prompt)
    thoughts = as_int(u.get("thoughtsTokenCount"))
    candidates = as_int(u.get("candidatesTokenCount"))
    uncached = prompt - cached + tool_prompt
    p_in, t_in, c_in = (_by_modality(u.get(k)) for k in ("promptTokensDetails", "toolUsePromptTokensDetails", "cacheTokensDetails"))
    out = _by_modality(u.get("candidatesTokensDetails"))
    parts: dict[str, int] = {}
    left = uncached
    for modality, field in (("AUDIO", "input_audio_tokens"), ("IMAGE", "input_image_tokens"), ("VIDEO", "input_video_tokens")):
        n = min(max(p_in.get(modality, 0) - c_in.get(modality, 0), 0) + t_in.get(modality, 0), left)
        if n:
            parts[field] = n
            left -= n
    left = candidates
    for modality, field in (("AUDIO", "output_audio_tokens"), ("IMAGE", "output_image_tokens")):
        n = min(out.get(modality, 0), left)
        if n:
            parts[field] = n
            left -= n
    return Usage(
        uncached_input_tokens=uncached,
        cache_read_tokens=cached,
        output_tokens=candidates + thoughts,
        reasoning_tokens=thoughts,
        **parts,
    )


def _by_modality(details: Any) -> dict[str, int]:
    """``{"AUDIO": n, …}`` from a Gemini ``ModalityTokenCount`` list (absent or bad: ``{}``)."""
    out: dict[str, int] = {}
    if isinstance(details, list):
        for d in details:
            if isinstance(d, dict) and isinstance(d.get("modality"), str):
                out[d["modality"].upper()] = out.get(d["modality"].upper(), 0) + as_int(d.get("tokenCount"))
    return out


#: Vertex AI ``trafficType`` -> the service tier it means (``None``: standard pay-as-you-go).
#: Provisioned Throughput is paid by subscription, not per token: a tier no per-token rate prices.
TRAFFIC_TIERS = {
    "ON_DEMAND": None,
    "TRAFFIC_TYPE_UNSPECIFIED": None,
    "ON_DEMAND_FLEX": "flex",
    "ON_DEMAND_PRIORITY": "priority",
    "PROVISIONED_THROUGHPUT": "provisioned_throughput",
}


def served_tier(meta: Any) -> str | None:
    """The tier a ``usageMetadata`` says served the request: ``serviceTier`` (Gemini API), else
    the tier of Vertex's ``trafficType`` (``TRAFFIC_TIERS``; an unknown value is passed on as
    itself, lower-cased, so it cannot be priced as standard); ``None`` when silent."""
    if not isinstance(meta, dict):
        return None
    t = meta.get("serviceTier")
    if isinstance(t, str) and t:
        return t
    tt = meta.get("trafficType")
    if isinstance(tt, str) and tt:
        return TRAFFIC_TIERS.get(tt.upper(), tt.lower())
    return None


def _last_with_usage(body: Any) -> dict[str, Any] | None:
    """The response object holding the usage: the body, or for ``streamGenerateContent`` without
    ``alt=sse`` (a JSON array of chunks) the last chunk that has ``usageMetadata``."""
    if isinstance(body, dict):
        return body
    if isinstance(body, list):
        for chunk in reversed(body):
            if isinstance(chunk, dict) and isinstance(chunk.get("usageMetadata"), dict):
                return chunk
        for chunk in reversed(body):
            if isinstance(chunk, dict):
                return chunk
    return None


def _parts_text(content: Any, out: list[str]) -> None:
    """Append the ``text`` of each part of a Gemini ``Content`` (``{"parts": [...]}``)."""
    if isinstance(content, dict):
        parts = content.get("parts")
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    out.append(part["text"])
        elif isinstance(parts, dict) and isinstance(parts.get("text"), str):
            out.append(parts["text"])
    elif isinstance(content, str):
        out.append(content)


class GeminiStreamUsage(StreamUsage):
    """``streamGenerateContent?alt=sse``: every ``data:`` chunk is a whole
    ``GenerateContentResponse`` with cumulative ``usageMetadata``; the last one wins (never summed).
    There is no terminal event (the stream just ends). Chunks are JSON-parsed only when their text
    holds ``usageMetadata``, ``modelVersion`` (first time), ``error`` or ``finishReason``. ``service_tier``: the
    latest ``usageMetadata.serviceTier``.

    The chunk with a ``finishReason`` and ``usageMetadata`` (Google sends both in the last chunk,
    recording 38) is the ``USAGE`` event: the opt-in cost field goes into it."""

    def __init__(self) -> None:
        super().__init__()
        self._usage: Usage | None = None

    def on_event(self, ev: Any) -> int:
        data = ev.data
        if not ev.has_data:
            return KEEP
        wanted = (
            '"usageMetadata"' in data or '"error"' in data or '"finishReason"' in data
            or (self.model is None and '"modelVersion"' in data)
        )
        if not wanted:
            return KEEP
        try:
            obj = json.loads(data)
        except ValueError:
            return KEEP
        if not isinstance(obj, dict):
            return KEEP
        if isinstance(obj.get("error"), dict):
            self.failed = True
        self.note(obj.get("modelVersion"), obj.get("responseId"))
        cands = obj.get("candidates")
        reasons = None
        if isinstance(cands, list):
            reasons = [c["finishReason"] for c in cands if isinstance(c, dict) and isinstance(c.get("finishReason"), str)]
            if reasons:
                self.finish_reasons = reasons
        meta = obj.get("usageMetadata")
        u = gemini_usage(meta)
        if u is not None:
            self._usage = u
        tier = served_tier(meta)
        if tier is not None:
            self.service_tier = tier
        return USAGE if reasons and u is not None else KEEP

    def usage(self) -> Usage | None:
        return self._usage


class Gemini(Dialect):
    name = "gemini"
    provider = "google"
    operation = "generate_content"
    #: No exact paths: the model is part of the path; ``matches_path`` recognises them.
    paths = ()
    #: No SSE comment lines in Gemini streams: Google's Python SDK reads only ``data: `` lines and
    #: takes any other line as part of a JSON error body (google-genai 3.6.1
    #: ``_iter_response_stream``: ``UnknownApiResponseError``); ``@google/genai`` 3.3.0 skips whole
    #: non-``data:`` events but throws "Incomplete JSON segment at the end" on an unterminated tail.
    #: The opt-in cost field goes inside the last chunk instead.
    sse_comments = False

    # --- path ----------------------------------------------------------------------------
    def matches_path(self, path: str) -> bool:
        """True for ``…/models/{model}:generateContent`` and ``:streamGenerateContent`` paths."""
        return _PATH.match(path) is not None

    def model_from_path(self, path: str) -> str | None:
        """The model segment of ``path`` (URL-decoded), e.g. ``"gemini-2.5-flash"`` for
        ``/v1beta/models/gemini-2.5-flash:generateContent``; ``None`` for any other path."""
        m = _PATH.match(path)
        return unquote(m.group("model")) if m else None

    def rewrite_path(self, path: str, model: str) -> str:
        """``path`` with only the model segment replaced by ``model`` (method and query kept);
        ``path`` unchanged when it names no model. ``models/`` prefixes on ``model`` are dropped."""
        m = _PATH.match(path)
        if m is None:
            return path
        if model.startswith("models/"):
            model = model[len("models/") :]
        return m.group("head") + model + m.group("method") + m.group("tail")

    def is_stream_path(self, path: str) -> bool:
        """True when ``path`` calls ``:streamGenerateContent``."""
        m = _PATH.match(path)
        return m is not None and m.group("method") == ":streamGenerateContent"

    # --- request -------------------------------------------------------------------------
    turns_key = "contents"
    # generateContent reference: inline_data / file_data parts (JSON and proto names); tools;
    # functionCall / functionResponse parts.
    needs_shape = NeedsShape(roots=("contents", "systemInstruction", "system_instruction"),
                             tool_keys=("functionCall", "function_call", "functionResponse", "function_response"),
                             media_keys=("inline_data", "inlineData", "file_data", "fileData"))
    # Gemini API reference, GenerationConfig (JSON names; proto names for the cap too).
    param_keys = (("maxOutputTokens", "max_tokens", "int"), ("temperature", "temperature", "float"),
                  ("topP", "top_p", "float"), ("topK", "top_k", "float"),
                  ("frequencyPenalty", "frequency_penalty", "float"), ("presencePenalty", "presence_penalty", "float"),
                  ("seed", "seed", "int"), ("candidateCount", "choice_count", "int"),
                  ("stopSequences", "stop_sequences", "strs"))
    _CONFIG = ("generationConfig", "generation_config")

    def param_sources(self, body: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        """The body and its ``generationConfig``."""
        gc = body.get("generationConfig")
        return (body, gc) if isinstance(gc, dict) else (body,)

    def _config_int(self, body: dict[str, Any] | None, keys: tuple[str, ...]) -> int | None:
        if not isinstance(body, dict):
            return None
        for c in self._CONFIG:
            cfg = body.get(c)
            if isinstance(cfg, dict):
                for k in keys:
                    v = cfg.get(k)
                    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                        return v
        return None

    def output_cap(self, body: dict[str, Any] | None) -> int | None:
        """``generationConfig.maxOutputTokens`` (``generation_config.max_output_tokens``)."""
        return self._config_int(body, ("maxOutputTokens", "max_output_tokens"))

    def choice_count(self, body: dict[str, Any] | None) -> int:
        """``generationConfig.candidateCount`` (default 1)."""
        return self._config_int(body, ("candidateCount", "candidate_count")) or 1

    def input_turns(self, body: dict[str, Any]) -> list[tuple[str, Any]]:
        """``contents[]``: role and ``parts``."""
        contents = body.get("contents")
        if not isinstance(contents, list):
            return []
        return [(str(m.get("role", "user")), m.get("parts")) for m in contents if isinstance(m, dict)]

    def output_turns(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """``candidates[].content.parts`` with ``finishReason``."""
        cands = body.get("candidates")
        if not isinstance(cands, list):
            return []
        return [{"role": "assistant", "content": c["content"].get("parts"), "finish_reason": c.get("finishReason")}
                for c in cands if isinstance(c, dict) and isinstance(c.get("content"), dict)]

    def refusal_body(self, status: int, code: str, message: str) -> bytes:
        """``google.rpc.Status`` JSON: ``{"error": {"code": status, "message", "status":
        "INVALID_ARGUMENT" (or "UNAVAILABLE" from 500)}}``."""
        doc = {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT" if status < 500 else "UNAVAILABLE"}}
        return json.dumps(doc).encode("utf-8")

    def error_body(self, message: str) -> bytes:
        """The ``google.rpc.Status`` JSON of a 429 (AIP-193):
        ``{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED"}}``."""
        doc = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
        return json.dumps(doc).encode("utf-8")

    def request_model(self, body: dict[str, Any]) -> str | None:
        """Always ``None``: Gemini names the model in the path (``model_from_path``)."""
        return None

    def is_stream(self, body: dict[str, Any]) -> bool:
        """Always ``False``: streaming is chosen by the path's method (``is_stream_path``)."""
        return False

    def prompt_text(self, body: dict[str, Any]) -> str:
        """``systemInstruction`` (or ``system_instruction``) parts, then every ``contents[].parts[].text``."""
        out: list[str] = []
        _parts_text(body.get("systemInstruction", body.get("system_instruction")), out)
        contents = body.get("contents")
        if isinstance(contents, dict):
            contents = [contents]
        if isinstance(contents, list):
            for c in contents:
                _parts_text(c, out)
        return "\n".join(out)

    # --- response ------------------------------------------------------------------------
    def response_model(self, body: dict[str, Any]) -> str | None:
        """``modelVersion`` as Google reports it (``"gemini-2.5-flash"``, ``"models/gemini-2.5-pro"``)."""
        b = _last_with_usage(body)
        m = b.get("modelVersion") if b is not None else None
        return m if isinstance(m, str) else None

    def usage(self, body: dict[str, Any]) -> Usage | None:
        """Normalised ``usageMetadata`` (rule in the module docstring); ``None`` for an error body
        or a response without usage."""
        b = _last_with_usage(body)
        return gemini_usage(b.get("usageMetadata")) if b is not None else None

    def usage_blocks(self, body: dict[str, Any]) -> tuple[Any, ...]:
        """``usageMetadata`` of the chunk that reports usage."""
        b = _last_with_usage(body)
        return (b.get("usageMetadata") if b is not None else None,)

    def response_ids(self, body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
        """``responseId`` and ``candidates[].finishReason``."""
        b = _last_with_usage(body) or {}
        cands = b.get("candidates")
        reasons = [c["finishReason"] for c in cands if isinstance(c, dict) and isinstance(c.get("finishReason"), str)] if isinstance(cands, list) else []
        return str_or_none(b.get("responseId")), reasons or None

    def response_tier(self, body: dict[str, Any]) -> str | None:
        """The tier that served the request (``served_tier``: ``serviceTier``, else Vertex's
        ``trafficType``) when reported."""
        b = _last_with_usage(body)
        return served_tier(b.get("usageMetadata") if b is not None else None)

    def stream_usage(self, injected_usage: bool = False, usage_object: Callable[[dict[str, Any]], Any] | None = None) -> StreamUsage:
        return GeminiStreamUsage()
