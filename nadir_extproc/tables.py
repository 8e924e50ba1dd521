"""How every command prints its tables (``demo``, ``report``, ``report --opportunity``): one rule,
so a table reads the same whichever command printed it.

- On a terminal: rich tables with borders, fitted to the terminal's width (``ledger.report._table``
  wraps text columns, never numbers).
- Piped or redirected (not a terminal): plain text at the table's natural width, no borders, no
  colour, never wrapped or cut, one line per row with the column names on the first line — the
  form the README shows, which ``grep``, ``awk`` and ``column`` can read. For machines, the
  commands that print tables also take ``--format csv|json`` (``report``).
"""

from __future__ import annotations

import re
import sys
from typing import Any

#: Width of a non-terminal console: wide enough that no table or sentence is ever wrapped.
PIPE_WIDTH = 100_000


class _NoTrailingSpaces:
    """A text stream that drops the spaces rich pads lines with before each newline."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_TRAILING.sub("\n", text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False


_TRAILING = re.compile(r"[ \t]+\n")


def output_console(**kwargs: Any) -> Any:
    """A ``rich.console.Console`` on stdout: the terminal's width on a terminal; otherwise
    ``PIPE_WIDTH`` columns, no colour, no trailing spaces (see module doc)."""
    from rich.console import Console

    if Console().is_terminal:
        return Console(**kwargs)
    return Console(file=_NoTrailingSpaces(sys.stdout), width=PIPE_WIDTH, no_color=True, highlight=False, **kwargs)


def is_plain(console: Any) -> bool:
    """Whether ``console`` prints plain tables (it is not a terminal)."""
    return not console.is_terminal


def new_table(console: Any, title: str, **kwargs: Any) -> Any:
    """A ``rich.table.Table`` in the style ``console`` prints: bordered on a terminal; on a pipe
    without borders and with the title on its own line, flush left."""
    from rich.table import Table

    if is_plain(console):
        from rich.text import Text

        # The title whole on its line, even above a table narrower than it (rich wraps a title
        # to the table's width: "Unpriced requests by" / "reason").
        whole = Text(title, no_wrap=True, overflow="ignore") if isinstance(title, str) else title
        return Table(title=whole, box=None, title_justify="left", show_lines=False, **{k: v for k, v in kwargs.items() if k != "show_lines"})
    return Table(title=title, **kwargs)
