"""One request's budget life: its scope values, the reservation made at admission, and its
settlement once priced (or once it ends unpriced). Held by the processor, one per request.

Units: USD ``Decimal``; ``body_bytes`` is the decoded request body's size in bytes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nadir_extproc.budgets import H_REMAINING, Reservation, block_reply
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from nadir_extproc.budgets.core import Budgets
    from nadir_extproc.dialects.base import Dialect
from nadir_extproc.pricing.money import format_usd
from nadir_extproc.stats import count


class Ticket:
    """``scopes``: the values budget rules can match (``budgets.scope_values``); ``body_bytes`` /
    ``body``: what the estimate reads (``budgets.estimate``). ``headers``: the
    ``x-nadir-budget-remaining`` header once admitted (empty before, or without a limit)."""

    __slots__ = ("budgets", "scopes", "body_bytes", "body", "reservation", "headers", "pending", "settled")

    def __init__(self, budgets: Budgets, scopes: dict[str, str], body_bytes: int, body: dict[str, Any] | None) -> None:
        self.budgets = budgets
        self.scopes = scopes
        self.body_bytes = body_bytes
        self.body = body
        self.reservation: Reservation | None = None
        self.headers: dict[str, str] = {}
        self.pending = True  # admission not yet run
        self.settled = False

    async def admit(self, provider: str, catalogue: str, model: str | None, dialect: Dialect) -> Any | None:
        """Reserve the request's estimated maximum cost (``provider``: the route's id, for its
        output default; ``catalogue``: the id its rates are looked up under; ``model``: the model
        sent upstream; ``dialect``: the request's API, whose output cap the estimate reads).
        Returns the 429 ``ProcessingResponse`` in ``dialect``'s error shape when a
        ``block`` rule refuses it, else ``None``. A failure here admits the request (counted)."""
        self.pending = False
        try:
            est = self.budgets.estimate(provider, model, self.body_bytes, self.body, catalogue=catalogue, dialect=dialect)
            a = await self.budgets.admit(self.scopes, est)
        except Exception as e:  # noqa: BLE001 — our bug must not break the user's call
            count("internal_error", f"budget admission: {type(e).__name__}: {e}")
            return None
        v = a.verdict
        self.reservation = a.reservation
        if v.remaining_usd is not None:
            self.headers = {H_REMAINING: format_usd(v.remaining_usd)}
        return block_reply(dialect.name, v) if v.action == "block" else None

    def settle(self, usd: Decimal | None) -> None:
        """Add the priced cost (``None``: nothing was priced) and release the reservation, once."""
        if self.settled:
            return
        self.settled = True
        if self.reservation is not None:
            self.budgets.settle(self.reservation, usd)
