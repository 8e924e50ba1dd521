"""API dialects: one module per client-facing LLM API. ``detect`` picks one by request path."""

from __future__ import annotations

import functools
import operator
from typing import Any

from nadir_extproc.dialects.anthropic_messages import AnthropicMessages
from nadir_extproc.dialects.base import Dialect, RewriteError, find_needs
from nadir_extproc.dialects.gemini import Gemini
from nadir_extproc.dialects.openai_chat import OpenAIChat
from nadir_extproc.dialects.openai_responses import OpenAIResponses

#: Every dialect we speak, by name.
DIALECTS: dict[str, Dialect] = {d.name: d for d in (OpenAIChat(), OpenAIResponses(), AnthropicMessages(), Gemini())}


#: The API whose error shape answers when a request's API is unknown (OpenAI's error object).
DEFAULT = "openai_chat"


def get(name: str | None) -> Dialect:
    """The dialect called ``name``, else the ``DEFAULT`` one (never raises)."""
    return DIALECTS.get(name or "") or DIALECTS[DEFAULT]


#: Every API's needs shape at once: for a body whose API is unknown.
_ANY_NEEDS = functools.reduce(operator.or_, (d.needs_shape for d in DIALECTS.values()))


def needs(name: str | None, body: Any) -> tuple[bool, bool]:
    """``(images, tools)`` of a request body of the API called ``name`` (``Dialect.needs``); an
    unknown name reads every API's shape."""
    d = DIALECTS.get(name or "")
    return d.needs(body) if d is not None else find_needs(body, _ANY_NEEDS)


def default_paths() -> dict[str, str]:
    """Request path -> dialect name, from each dialect's default ``paths``."""
    return {p: d.name for d in DIALECTS.values() for p in d.paths}


def detect(path: str, paths: dict[str, str], mounted: tuple[str, ...] | None = None) -> Dialect | None:
    """The dialect serving ``path`` (an HTTP ``:path``; the query string is ignored).

    ``paths`` maps exact paths to dialect names (``default_paths()`` or the config's); then each
    dialect's ``matches_path`` (Gemini: ``/v1beta/models/{model}:generateContent``).
    ``mounted``: the dialects of the provider Envoy's route named (``nadir_extproc.providers``);
    such a route may mount the API under a prefix (``/deepseek/chat/completions``, rewritten by
    Envoy), so one of those dialects also serves a path that *ends* with one of its paths.
    Returns ``None`` for any other path.
    """
    q = path.find("?")
    bare = path if q < 0 else path[:q]
    name = paths.get(bare)
    if name:
        return DIALECTS.get(name)
    for d in DIALECTS.values():
        if d.matches_path(bare):
            return d
    if mounted:
        for name in mounted:
            d = DIALECTS.get(name)
            if d is not None and any(bare.endswith(x) for x in d.paths):
                return d
    return None


def retrieval_dialect(path: str) -> Dialect | None:
    """The dialect whose ``GET`` of ``path`` fetches an earlier response by id
    (``GET /v1/responses/{id}``), else ``None``."""
    for d in DIALECTS.values():
        if d.retrievable and d.retrieved_id(path) is not None:
            return d
    return None


__all__ = ["DEFAULT", "DIALECTS", "Dialect", "get", "needs", "RewriteError", "default_paths", "detect", "retrieval_dialect"]
