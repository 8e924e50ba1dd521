"""Fixtures for the emulator tests: an in-process emulator, an HTTP session, and shape helpers.

Shape helpers compare *structure* (key sets, event order), never values, between an emulator
response and a recorded real one from ``shared/data/provider-responses``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from nadir_extproc.emulator import start_emulator


@pytest.fixture
async def emulator():
    handle = await start_emulator()
    yield handle
    await handle.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def deep_keys(obj: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON object (``usage.prompt_tokens_details.cached_tokens``); lists are
    entered through their first element as ``[]``."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            out |= deep_keys(v, path)
    elif isinstance(obj, list) and obj:
        out |= deep_keys(obj[0], prefix + "[]")
    return out


def parse_sse(raw: bytes) -> list[tuple[str | None, str]]:
    """Split an SSE body into (event name or None, data text) pairs; accepts LF or CRLF framing."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].lstrip(" "))
        events.append((name, "\n".join(data)))
    return events


def collapse(seq: list[str]) -> list[str]:
    """Drop consecutive repeats (a stream's number of deltas is not part of its shape)."""
    return [s for i, s in enumerate(seq) if i == 0 or s != seq[i - 1]]


def chat_chunk_kinds(raw: bytes) -> list[str]:
    """Kinds of OpenAI chat SSE chunks in order: role, content, tool_args, finish, usage, done."""
    kinds = []
    for _, data in parse_sse(raw):
        if data == "[DONE]":
            kinds.append("done")
            continue
        chunk = json.loads(data)
        if not chunk["choices"]:
            kinds.append("usage" if chunk.get("usage") else "other")
            continue
        choice = chunk["choices"][0]
        delta = choice["delta"]
        if choice.get("finish_reason"):
            kinds.append("finish")
        elif "role" in delta:
            kinds.append("role")
        elif "tool_calls" in delta:
            kinds.append("tool_args")
        else:
            kinds.append("content")
    return kinds


def recorded(folder: Path, index: list[dict], rid: str) -> SimpleNamespace:
    """One recorded interaction: ``row`` (index line), ``request`` (dict), ``response`` (dict or raw SSE bytes)."""
    row = next(r for r in index if r["id"] == rid)
    request = json.loads((folder / row["request_file"]).read_text())
    raw = (folder / row["response_file"]).read_bytes()
    response = raw if row["streaming"] else json.loads(raw)
    return SimpleNamespace(row=row, request=request, response=response)


@pytest.fixture
def shapes():
    return SimpleNamespace(deep_keys=deep_keys, parse_sse=parse_sse, collapse=collapse,
                           chat_chunk_kinds=chat_chunk_kinds, recorded=recorded)
