"""Known models per provider, and the snapshot name each provider answers with.

Real providers accept an alias (``gpt-4o-mini``) and report the dated snapshot that served it
(``gpt-4o-mini-2024-07-18``) in the response's ``model`` field; a dated name is reported unchanged.
Gemini reports the name it was called with in ``modelVersion`` (no dated snapshots for 2.5).

Sources: the recorded responses in ``shared/data/provider-responses`` (gpt-5-nano, gpt-5, gpt-4o,
gpt-4o-mini, o3-mini, claude-sonnet-4-5, gemini-2.5-flash) and the providers' model pages for the rest.
Any name not in this table is unknown to the emulator and answered 404 in the provider's own error
format -- including ``auto``, which no real provider knows.
"""

from __future__ import annotations

from typing import Literal

Provider = Literal["openai", "anthropic", "gemini"]

#: alias -> dated snapshot the provider reports, per provider.
ALIASES: dict[Provider, dict[str, str]] = {
    "openai": {
        "gpt-4o": "gpt-4o-2024-08-06",
        "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
        "gpt-4.1": "gpt-4.1-2025-04-14",
        "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
        "gpt-5": "gpt-5-2025-08-07",
        "gpt-5-mini": "gpt-5-mini-2025-08-07",
        "gpt-5-nano": "gpt-5-nano-2025-08-07",
        "o3": "o3-2025-04-16",
        "o3-mini": "o3-mini-2025-01-31",
        "o4-mini": "o4-mini-2025-04-16",
    },
    "anthropic": {
        "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5": "claude-haiku-4-5-20251001",
        "claude-opus-4-1": "claude-opus-4-1-20250805",
        "claude-sonnet-4-0": "claude-sonnet-4-20250514",
        "claude-opus-4-0": "claude-opus-4-20250514",
        "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
        "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
    },
    "gemini": {
        "gemini-2.5-pro": "gemini-2.5-pro",
        "gemini-2.5-flash": "gemini-2.5-flash",
        "gemini-2.5-flash-lite": "gemini-2.5-flash-lite",
        "gemini-2.0-flash": "gemini-2.0-flash",
    },
}


def resolve_model(provider: Provider, name: str) -> str | None:
    """The model name ``provider`` reports for a request naming ``name``, or None if unknown.

    An alias maps to its dated snapshot; a snapshot (a value of the table) maps to itself.
    Gemini also accepts the ``models/`` prefix. Matching is exact (case-sensitive), as upstream.
    """
    table = ALIASES[provider]
    if provider == "gemini" and name.startswith("models/"):
        name = name.removeprefix("models/")
    if name in table:
        return table[name]
    if name in table.values():
        return name
    return None
