"""Test-control request headers: parsed once per request into a :class:`Control`.

See the package docstring for the header list. A malformed control header is answered 400 in the
provider's own error format, with a message naming the header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from multidict import CIMultiDictProxy

USAGE_HEADER = "x-emulator-usage"
STATUS_HEADER = "x-emulator-status"
EXTRA_HEADER = "x-emulator-header"
GZIP_HEADER = "x-emulator-gzip"
DELAY_HEADER = "x-emulator-chunk-delay-ms"


class ControlError(ValueError):
    """A test-control header could not be parsed (the message names the header)."""


@dataclass(frozen=True, slots=True)
class EmulatedUsage:
    """Token counts to report, in a provider-neutral shape (all in tokens, non-negative).

    - ``input``: uncached input tokens.
    - ``output``: all output tokens, reasoning included.
    - ``cache_read``: input tokens read from the prompt cache.
    - ``cache_write``: input tokens written to the prompt cache (5-minute TTL on Anthropic).
    - ``cache_write_1h``: input tokens written with Anthropic's 1-hour TTL (other providers have no
      TTL classes and report it together with ``cache_write``).
    - ``reasoning``: the part of ``output`` that was reasoning/thinking (``reasoning <= output``).

    Each dialect converts this to its provider's fields and counting rule. In the header, absent
    keys are 0; unknown keys are rejected.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0

    @property
    def all_input(self) -> int:
        """Input tokens of every class (uncached + cache read + cache write)."""
        return self.input + self.cache_read + self.all_cache_write

    @property
    def all_cache_write(self) -> int:
        """Cache-write tokens of both TTLs."""
        return self.cache_write + self.cache_write_1h


@dataclass(frozen=True, slots=True)
class Control:
    """What the test-control headers ask for (defaults: behave like the real provider)."""

    usage: EmulatedUsage | None = None
    status: int | None = None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    gzip: bool = False
    chunk_delay_ms: int = 0


_USAGE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")


def _parse_usage(raw: str) -> EmulatedUsage:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ControlError(f"{USAGE_HEADER}: not JSON ({exc.msg})") from None
    if not isinstance(obj, dict) or set(obj) - set(_USAGE_KEYS):
        raise ControlError(f"{USAGE_HEADER}: want an object with keys among {', '.join(_USAGE_KEYS)}")
    values = {k: obj.get(k, 0) for k in _USAGE_KEYS}
    if any(type(v) is not int or v < 0 for v in values.values()):
        raise ControlError(f"{USAGE_HEADER}: counts must be non-negative integers")
    if values["reasoning"] > values["output"]:
        raise ControlError(f"{USAGE_HEADER}: reasoning is part of output, so it cannot exceed it")
    return EmulatedUsage(**values)


def _parse_int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ControlError(f"{name}: not an integer: {raw!r}") from None
    if not lo <= value <= hi:
        raise ControlError(f"{name}: {value} is outside {lo}..{hi}")
    return value


def parse_control(headers: CIMultiDictProxy[str]) -> Control:
    """Read the ``x-emulator-*`` headers. Raises :class:`ControlError` on a malformed one."""
    usage = _parse_usage(headers[USAGE_HEADER]) if USAGE_HEADER in headers else None
    status = _parse_int(STATUS_HEADER, headers[STATUS_HEADER], 100, 599) if STATUS_HEADER in headers else None
    extra: list[tuple[str, str]] = []
    for raw in headers.getall(EXTRA_HEADER, []):
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise ControlError(f"{EXTRA_HEADER}: want 'name: value', got {raw!r}")
        extra.append((name.strip(), value.strip()))
    gzip = headers.get(GZIP_HEADER, "").strip().lower() in ("1", "true", "yes")
    delay = _parse_int(DELAY_HEADER, headers[DELAY_HEADER], 0, 60_000) if DELAY_HEADER in headers else 0
    return Control(usage=usage, status=status, extra_headers=extra, gzip=gzip, chunk_delay_ms=delay)
