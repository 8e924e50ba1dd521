"""The emulator's token-count rule: deterministic and easy to work out by hand.

- ``text_tokens(s) = ceil(len(s.encode("utf-8")) / 4)`` -- roughly 4 bytes per token, like English
  under the real tokenizers.
- Input (prompt) tokens = ``ceil(B / 4) + 3 * M`` where ``B`` is the UTF-8 byte count of all prompt
  text concatenated (system/instructions included) and ``M`` is the number of messages (a system
  prompt or ``instructions`` counts as one message). Only text is counted: tool definitions, images
  and other non-text parts are not.
- Output tokens = ``text_tokens(reply)``, where the reply is the canned text (see :func:`canned_reply`)
  or, for a tool call, the tool name followed by its JSON arguments. When the request caps output
  (``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` / ``maxOutputTokens``) and
  the reply is longer, the reply is cut to its first ``4 * cap`` bytes and output tokens = ``cap``.

Example: one user message ``"Hello!"`` (6 bytes) -> input ``ceil(6/4) + 3 = 5`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_TOKEN = 4
MESSAGE_OVERHEAD = 3  # tokens per message (role and separators), as a chat template would add


def text_tokens(text: str) -> int:
    """Tokens of ``text``: ceil(UTF-8 bytes / 4)."""
    n = len(text.encode("utf-8"))
    return -(-n // BYTES_PER_TOKEN)


def prompt_tokens(texts: list[str]) -> int:
    """Input tokens of a prompt given as one text per message (empty strings still count as messages)."""
    total_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return -(-total_bytes // BYTES_PER_TOKEN) + MESSAGE_OVERHEAD * len(texts)


def canned_reply(last_user_text: str) -> str:
    """The deterministic reply to a prompt whose last user message is ``last_user_text``.

    ``You asked: "<first five words>". This is a canned reply from the emulator.``
    (whitespace runs collapse; an empty prompt reads ``your request``).
    """
    words = " ".join(last_user_text.split()[:5]) or "your request"
    return f'You asked: "{words}". This is a canned reply from the emulator.'


@dataclass(frozen=True, slots=True)
class Output:
    """A reply after applying the output cap: the text, its tokens, and whether it was cut."""

    text: str
    tokens: int
    truncated: bool


def cap_output(text: str, cap: int | None) -> Output:
    """Apply an output-token cap (None = no cap) to ``text`` by the rule in the module docstring."""
    tokens = text_tokens(text)
    if cap is None or tokens <= cap:
        return Output(text, tokens, False)
    cut = text.encode("utf-8")[: cap * BYTES_PER_TOKEN].decode("utf-8", errors="ignore")
    return Output(cut, cap, True)
