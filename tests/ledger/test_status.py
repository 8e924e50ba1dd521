"""``Outcome.result`` (and HTTP status) -> ledger ``status``, every case the processor produces.

The processor's results are ``ok``, ``provider_error`` (HTTP >= 400, or an error event inside a
200 stream), ``cut`` (stream ended before its terminal event) and ``blocked`` (budget 429 from us);
a request that ends before any response headers has no status. The ledger names them ``ok``,
``provider_error``, ``cut_stream``, ``blocked``, ``no_response``. Through Envoy: ok, blocked and
cut_stream rows are checked in ``tests/integration/test_allocation.py``; here every combination.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from nadir_extproc.ledger.schema import STATUSES, from_outcome
from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.record import Outcome

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
U = Usage(uncached_input_tokens=1000, output_tokens=500)  # gpt-4o-mini: 0.00015 + 0.0003 = 0.00045 USD


@pytest.mark.parametrize("result, http, stream, priced, status, cost, unpriced", [
    ("ok", 200, False, True, "ok", Decimal("0.00045"), None),
    ("ok", 200, True, True, "ok", Decimal("0.00045"), None),
    ("ok", 503, False, False, "provider_error", None, "provider_error"),  # HTTP error, result not yet set
    ("provider_error", 429, False, False, "provider_error", None, "provider_error"),
    ("provider_error", 200, True, True, "provider_error", Decimal("0.00045"), None),  # error event, usage reported
    ("cut_stream", 200, True, True, "cut_stream", Decimal("0.00045"), None),  # cut after the usage event
    ("cut_stream", 200, True, False, "cut_stream", None, "no_usage"),  # cut before any usage
    ("blocked", 429, False, False, "blocked", Decimal("0"), None),  # answered by us: nothing spent
    ("ok", None, False, False, "no_response", None, "no_response"),  # client gone before the response
])
def test_result_maps_to_ledger_status(result, http, stream, priced, status, cost, unpriced):
    o = Outcome(dialect="openai_chat", provider="openai", requested_model="auto", routed_model="gpt-4o-mini",
                status=http, stream=stream, result=result)
    if priced:
        o.usage, o.cost = U, price("openai", "gpt-4o-mini", U)
    elif result == "cut_stream":
        o.unpriced_reason = "no_usage"  # what the processor records for a stream cut before usage
    elif http is not None and http >= 400:
        o.unpriced_reason = "provider_error"
    row = from_outcome(o, NOW, "req-1")
    assert row.status in STATUSES
    assert (row.status, row.http_status, row.stream, row.cost_usd, row.unpriced_reason) == (status, http, stream, cost, unpriced)
