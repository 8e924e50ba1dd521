"""A ``Telemetry`` on the SDK's in-memory span exporter and metric reader (the real SDK; nothing
of ours is replaced). The ``mem`` and ``mem_factory`` fixtures (``tests/conftest.py``) make them."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from nadir_extproc.config import TelemetrySettings
from nadir_extproc.telemetry.providers import Telemetry


class MemTelemetry:
    """``Telemetry`` + its in-memory exporter and reader; ``spans()`` flushes first."""

    def __init__(self, **cfg) -> None:
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.tel = Telemetry(TelemetrySettings(**cfg), span_exporter=self.exporter, metric_readers=[self.reader])

    def spans(self):
        self.tel.tracer_provider.force_flush()
        return self.exporter.get_finished_spans()

    def only_span(self):
        spans = self.spans()
        assert len(spans) == 1, spans
        return spans[0]

    def metrics(self) -> dict[str, list]:
        """metric name -> its data points."""
        data = self.reader.get_metrics_data()
        out: dict[str, list] = {}
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.setdefault(m.name, []).extend(m.data.data_points)
        return out
