"""A cheaper ``Histogram.record`` for attribute dicts that repeat (the request metrics' cached ones).

Per record, the OTel SDK cleans the attribute dict (``Measurement.__post_init__``), copies it and
hashes it into an aggregation key (``_hash_attributes``, sorted and recursive) for every metric
reader, then adds the value to that key's aggregation: ~14 us per record on this machine, whatever
the attributes, four records per request (bench/results/levers-*.md). Our attribute dicts are built
once and reused (``metrics.RequestMetrics``), so ``FastHistogram`` asks the SDK once per dict —
the first record goes through ``Histogram.record`` unchanged — and then remembers the aggregation
objects the SDK created for it, adding later values to them directly (the same
``aggregate`` call the SDK makes, under the aggregation's own lock): ~2 us.

The shortcut is taken only where it gives exactly the SDK's data:

- cumulative temporality (the default; a delta reader swaps aggregations at each collection) and
  no view that filters attribute keys;
- exemplars off (``AlwaysOffExemplarFilter``, what ``providers.Telemetry`` installs unless
  ``OTEL_METRICS_EXEMPLAR_FILTER`` is set): nothing per record but the value is read;
- the instrument enabled, the value finite and >= 0 (else the SDK path, which warns);
- the remembered aggregation still the one the SDK holds for that key (checked per record), and
  the reader set unchanged.

Anything else — or an SDK whose internals differ from what this reads (checked when a dict is
first seen) — records through the SDK's ``Histogram.record``. ``tests/telemetry/test_histograms.py``
compares the collected data points with the SDK's own path.
"""

from __future__ import annotations

import math
from typing import Any

_MAX_SLOTS = 4096  # attribute dicts remembered (cleared when full)


class FastHistogram:
    """Wraps an SDK ``Histogram``; ``record(amount, attributes)`` as ``Histogram.record``.
    ``attributes`` must not be mutated after its first use (the remembered key describes it)."""

    __slots__ = ("histogram", "_consumer", "_slots", "_off")

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self._consumer = getattr(histogram, "_measurement_consumer", None)
        # id(attrs) -> (attrs, reader storages then, ((aggregations dict, key, aggregation), ...))
        self._slots: dict[int, tuple[Any, Any, tuple[tuple[dict, Any, Any], ...]]] = {}
        self._off = not _supported(self._consumer)

    def record(self, amount: float, attributes: dict[str, Any]) -> None:
        slot = self._slots.get(id(attributes))
        if slot is not None and slot[0] is attributes and 0 <= amount < math.inf:
            aggs = slot[2]
            if self._consumer._reader_storages is slot[1] and all(d.get(k) is a for d, k, a in aggs):
                if self.histogram._is_enabled():
                    m = _Value(amount)
                    for _, _, a in aggs:
                        a.aggregate(m, False)
                    return
        self.histogram.record(amount, attributes)
        if slot is None and not self._off:
            self._learn(attributes)

    def _learn(self, attributes: dict[str, Any]) -> None:
        """Remember the aggregations the SDK now holds for ``attributes`` (after its record)."""
        try:
            from opentelemetry.attributes import _clean_attribute_value
            from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

            key = _hash_attributes(dict(_clean_attribute_value(attributes, None)))
            storages = self._consumer._reader_storages
            aggs = []
            for storage in storages.values():
                for vim in storage._get_or_init_view_instrument_match(self.histogram):
                    if vim._reset_on_collect or vim._view._attribute_keys is not None:
                        return  # delta temporality, or a view that filters keys: SDK path
                    agg = vim._attributes_aggregation.get(key)
                    if agg is None:
                        return  # e.g. over the cardinality limit (the overflow set): SDK path
                    aggs.append((vim._attributes_aggregation, key, agg))
        except Exception:  # noqa: BLE001 — SDK internals not as expected: the SDK path, always
            self._off = True
            return
        if not aggs:
            return
        if len(self._slots) >= _MAX_SLOTS:
            self._slots.clear()
        self._slots[id(attributes)] = (attributes, storages, tuple(aggs))


class _Value:
    """What an aggregation reads of a measurement when no exemplar is sampled: its value."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


def _supported(consumer: Any) -> bool:
    """The SDK's synchronous measurement consumer with exemplars off (see the module docstring)."""
    try:
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

        return isinstance(consumer._sdk_config.exemplar_filter, AlwaysOffExemplarFilter) and isinstance(
            consumer._reader_storages, dict)
    except Exception:  # noqa: BLE001
        return False
