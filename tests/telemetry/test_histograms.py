"""``telemetry.histograms.FastHistogram`` gives the data points the SDK's own ``Histogram.record``
gives (same counts, sums, buckets, min/max per attribute set), collection after collection, and
falls back to the SDK where its shortcut would not be exact."""

from __future__ import annotations

import math

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from nadir_extproc.telemetry.histograms import FastHistogram

BUCKETS = [1, 10, 100, 1000]
A = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.token.type": "input"}
B = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.token.type": "output"}
C = {"nadir.dialect": "openai_chat"}


def provider(fast: bool, *, exemplars_off: bool = True, delta: bool = False):
    kw = {"preferred_temporality": {Histogram: AggregationTemporality.DELTA}} if delta else {}
    reader = InMemoryMetricReader(**kw)
    mp = MeterProvider(metric_readers=[reader], **({"exemplar_filter": AlwaysOffExemplarFilter()} if exemplars_off else {}))
    h = mp.get_meter("t").create_histogram("h", unit="{token}", explicit_bucket_boundaries_advisory=BUCKETS)
    return reader, (FastHistogram(h) if fast else h)


def points(reader) -> list:
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    out.append((tuple(sorted(p.attributes.items())), p.count, p.sum, tuple(p.bucket_counts), p.min, p.max))
    return sorted(out)


# Values per round: repeated dicts, values in every bucket, 0, a float, and values the SDK refuses
# (negative, NaN, inf: dropped with a warning on both paths).
ROUNDS = [
    [(14, A), (2, B), (0, A), (5000, B), (0.25, C), (7, A)],
    [(-1, A), (math.nan, B), (math.inf, C), (99, A), (100, A), (101, B), (3, C)],
    [(1, A), (1, A), (1, A)],
]


def run(fast: bool, **kw) -> tuple[list, FastHistogram | None]:
    reader, h = provider(fast, **kw)
    collected = []
    for rnd in ROUNDS:
        for v, attrs in rnd:
            h.record(v, attrs)
        collected.append(points(reader))  # a collection between rounds (delta readers reset here)
    return collected, (h if fast else None)


def test_same_points_as_the_sdk_and_the_shortcut_is_taken():
    sdk, _ = run(False)
    fast, h = run(True)
    assert fast == sdk
    # Round 1 in numbers, worked by hand: A got 14, 0, 7 -> count 3, sum 21, buckets (<=1: 1, <=10: 1, <=100: 1).
    a_first = next(p for p in fast[0] if dict(p[0]) == A)
    assert a_first[1:] == (3, 21, (1, 1, 1, 0, 0), 0, 14)
    assert len(h._slots) == 3 and not h._off  # every dict learnt: later records took the shortcut


def test_delta_temporality_and_exemplars_on_go_through_the_sdk():
    for kw in ({"delta": True}, {"exemplars_off": False}):
        sdk, _ = run(False, **kw)
        fast, h = run(True, **kw)
        assert fast == sdk, kw
        assert not h._slots  # nothing remembered: every record was the SDK's own


def test_a_dict_that_is_not_the_remembered_one_is_recorded_by_the_sdk():
    reader, h = provider(True)
    h.record(1, dict(A))
    h.record(2, dict(A))  # equal content, another dict (maybe at a reused id): still counted once each
    h.record(3, A)
    [(attrs, count, total, *_rest)] = points(reader)
    assert dict(attrs) == A and count == 3 and total == 6
