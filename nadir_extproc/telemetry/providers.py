"""Set-up of the OTel SDK for the service: tracer and meter providers, OTLP gRPC export, an
optional Prometheus ``/metrics`` endpoint, and counting of what could not be exported.

Export never blocks the request path: a finished request's span goes into the batch span
processor's bounded queue (``telemetry.max_queue_size``) and a background thread exports batches
over OTLP gRPC. When the queue is full or the collector is down the spans are dropped and counted
(``Telemetry.spans_dropped``, the ``nadir.telemetry.spans.dropped`` metric and the
``telemetry_spans_dropped`` event in ``nadir_extproc.stats``, logged once) — traffic is unaffected.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from nadir_extproc.config import TelemetrySettings
from nadir_extproc.stats import COUNTS, count
from nadir_extproc.telemetry import names as n
from nadir_extproc.telemetry.metrics import RequestMetrics
from nadir_extproc.telemetry.spans import record_span

log = logging.getLogger("nadir_extproc")

DEFAULT_OTLP_ENDPOINT = "http://localhost:4317"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _exporter_off(signal: str) -> bool:
    """``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` = ``none``."""
    return os.environ.get(f"OTEL_{signal}_EXPORTER", "").strip().lower() == "none"


def normalise_endpoint(endpoint: str) -> str:
    """``host:port`` -> ``http://host:port`` (plain-text gRPC, as a local collector speaks);
    URLs with a scheme are kept."""
    return endpoint if "://" in endpoint else f"http://{endpoint}"


class _Counts:
    """Spans handed to export vs. dropped (thread-safe)."""

    def __init__(self, max_queue: int) -> None:
        self.lock = threading.Lock()
        self.max_queue = max_queue
        self.pending = 0
        self.exported = 0
        self.dropped = 0

    def drop(self, k: int, why: str) -> None:
        with self.lock:
            self.dropped += k
        count("telemetry_spans_dropped", why)  # logs the first time
        COUNTS["telemetry_spans_dropped"] += k - 1


class _CountingExporter(SpanExporter):
    """Wraps the real exporter: counts spans exported and spans lost to a failed export."""

    def __init__(self, inner: SpanExporter, counts: _Counts) -> None:
        self.inner = inner
        self.counts = counts
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        k = len(spans)
        with self.counts.lock:  # the batch has left the processor's queue
            self.counts.pending = max(0, self.counts.pending - k)
        try:
            r = self.inner.export(spans)
        except Exception:  # noqa: BLE001
            r = SpanExportResult.FAILURE
        if r is SpanExportResult.SUCCESS:
            with self.counts.lock:
                self.counts.exported += k
        if r is not SpanExportResult.SUCCESS:
            self.counts.drop(k, "export failed (collector unreachable?)")
        return r

    def shutdown(self) -> None:
        if not self._shut:
            self._shut = True
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


#: The SDK's OTLP gRPC exporter logger (opentelemetry-exporter-otlp-proto-grpc,
#: ``exporter.py``): on an unreachable collector it logs "Transient error … retrying" and
#: "Failed to export …" for every batch, every few seconds, for as long as the collector is away.
OTLP_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"


class _OnceFilter(logging.Filter):
    """Lets the first record of each repeating OTLP export message through (with a note that
    repeats are counted, not logged) and drops the rest, counting them as
    ``otlp_export_log_suppressed`` (``/metrics``, ``nadir.events``)."""

    _REPEATING = ("Transient error", "Failed to export")

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        kind = next((k for k in self._REPEATING if msg.startswith(k)), None)
        if kind is None:
            return True
        if kind in self.seen:
            COUNTS["otlp_export_log_suppressed"] += 1
            return False
        self.seen.add(kind)
        record.msg = msg + " (repeats of this message are counted as otlp_export_log_suppressed, not logged)"
        return True


def quiet_otlp_export_logs() -> None:
    """Install ``_OnceFilter`` on the SDK's OTLP exporter logger (once per process)."""
    lg = logging.getLogger(OTLP_EXPORTER_LOGGER)
    if not any(isinstance(f, _OnceFilter) for f in lg.filters):
        lg.addFilter(_OnceFilter())


def _fast_otlp_span_exporter(endpoint: str | None) -> SpanExporter:
    """The SDK's ``OTLPSpanExporter`` with the span encoding of ``telemetry.otlp_encode`` (same
    bytes, ~3x less CPU on the export thread)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    from nadir_extproc.telemetry.otlp_encode import encode_spans

    class FastOTLPSpanExporter(OTLPSpanExporter):
        def _translate_data(self, data: Any) -> Any:
            return encode_spans(data)

    quiet_otlp_export_logs()
    return FastOTLPSpanExporter(endpoint=endpoint)


class _CountingBatchSpanProcessor(BatchSpanProcessor):
    """``BatchSpanProcessor`` that counts the spans its bounded queue drops when full (the SDK
    drops the oldest queued span and only logs)."""

    def __init__(self, exporter: _CountingExporter, counts: _Counts, **kw: Any) -> None:
        try:
            batch = int(os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"))
        except ValueError:
            batch = 512
        # The SDK refuses a batch larger than the queue.
        super().__init__(exporter, max_queue_size=counts.max_queue, max_export_batch_size=max(1, min(batch, counts.max_queue)), **kw)
        self._counts = counts

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            full = False
            with self._counts.lock:
                if self._counts.pending >= self._counts.max_queue:
                    full = True
                else:
                    self._counts.pending += 1
            if full:
                self._counts.drop(1, "span queue full")
        super().on_end(span)


class Telemetry:
    """The service's OTel providers; ``record(outcome)`` is the ``Context.on_complete`` sink.

    Build with ``Telemetry(settings.telemetry)``; tests may pass ``span_exporter`` (e.g. the SDK's
    ``InMemorySpanExporter``) and ``metric_readers`` instead of the OTLP ones. ``otlp_endpoint``
    unset -> ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT`` -> ``http://localhost:4317``.
    ``prometheus_port`` > 0 serves ``/metrics`` there (needs ``opentelemetry-exporter-prometheus``).
    Providers are private to this object (the global OTel providers are not touched).
    """

    def __init__(
        self,
        cfg: TelemetrySettings,
        *,
        span_exporter: SpanExporter | None = None,
        metric_readers: list[MetricReader] | None = None,
        schedule_delay_millis: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.counts = _Counts(cfg.max_queue_size)
        self.destinations: list[str] = []
        self._otlp_targets: list[str] = []
        self.prometheus_url: str | None = None
        self._prom_server: Any = None
        resource = Resource.create({})
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: cfg.service_name}))
        self.resource = resource
        endpoint = normalise_endpoint(cfg.otlp_endpoint) if cfg.otlp_endpoint else None

        # ---- traces
        self.tracer_provider = TracerProvider(resource=resource)
        self._exporter: _CountingExporter | None = None
        if span_exporter is None and not _exporter_off("TRACES"):
            span_exporter = _fast_otlp_span_exporter(endpoint)
            where = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
                "OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_OTLP_ENDPOINT)
            self.destinations.append(f"traces -> OTLP gRPC {where}")
            self._otlp_targets.append(where)
        if span_exporter is not None:
            self._exporter = _CountingExporter(span_exporter, self.counts)
            kw = {} if schedule_delay_millis is None else {"schedule_delay_millis": schedule_delay_millis}
            self.tracer_provider.add_span_processor(_CountingBatchSpanProcessor(self._exporter, self.counts, **kw))
        self.tracer = self.tracer_provider.get_tracer(n.INSTRUMENTATION_NAME, schema_url=n.SCHEMA_URL)

        # ---- metrics
        readers: list[MetricReader] = list(metric_readers or [])
        self._otlp_metric_exporter: Any = None
        if metric_readers is None and not _exporter_off("METRICS"):
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            quiet_otlp_export_logs()
            self._otlp_metric_exporter = OTLPMetricExporter(endpoint=endpoint)
            readers.append(PeriodicExportingMetricReader(self._otlp_metric_exporter))
            where = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get(
                "OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_OTLP_ENDPOINT)
            self.destinations.append(f"metrics -> OTLP gRPC {where}")
            self._otlp_targets.append(where)
        if cfg.prometheus_port:
            readers.append(self._start_prometheus(cfg.prometheus_host, cfg.prometheus_port))
        # Exemplars: the SDK's default trace-based filter looks for a current span on every
        # measurement, but we record after the request with no span current, so it never keeps
        # one; turned off it saves ~2 us of ~16 per histogram record (bench/results). The
        # standard OTEL_METRICS_EXEMPLAR_FILTER still decides when set.
        mp_kw: dict[str, Any] = {}
        if not os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER"):
            from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

            mp_kw["exemplar_filter"] = AlwaysOffExemplarFilter()
        self.meter_provider = MeterProvider(resource=resource, metric_readers=readers, **mp_kw)
        meter = self.meter_provider.get_meter(n.INSTRUMENTATION_NAME, schema_url=n.SCHEMA_URL)
        self.metrics = RequestMetrics(meter)
        meter.create_observable_counter(
            n.M_SPANS_DROPPED, callbacks=[self._observe_dropped], unit="{span}",
            description="Spans not exported (queue full or collector unreachable).",
        )
        meter.create_observable_counter(
            n.M_EVENTS, callbacks=[self._observe_events], unit="{event}",
            description="Anomalies the request path tolerated (nadir_extproc.stats), by event.",
        )

    def _start_prometheus(self, host: str, port: int) -> MetricReader:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError as e:
            raise RuntimeError(
                "telemetry.prometheus_port is set but opentelemetry-exporter-prometheus is not installed: "
                "pip install 'nadir-extproc[prometheus]'"
            ) from e
        registry = CollectorRegistry()
        reader = PrometheusMetricReader(registry=registry)
        self._prom_server, _ = start_http_server(port, addr=host, registry=registry)
        bound = self._prom_server.server_address[1]
        self.prometheus_url = f"http://{host}:{bound}/metrics"
        self.destinations.append(f"metrics -> Prometheus {self.prometheus_url}")
        return reader

    def _observe_dropped(self, _o: CallbackOptions) -> list[Observation]:
        return [Observation(self.counts.dropped)]

    def _observe_events(self, _o: CallbackOptions) -> list[Observation]:
        return [Observation(v, {"event": k}) for k, v in list(COUNTS.items())]

    # ------------------------------------------------------------------ per request
    def record(self, out: Any) -> None:
        """The ``Context.on_complete`` sink: one span and the request's metrics. Cheap and
        non-blocking (the span is queued for the export thread)."""
        record_span(self.tracer, out, emit_usage_cost=self.cfg.emit_usage_cost, capture_content=self.cfg.capture_content)
        self.metrics.record(out)

    @property
    def spans_dropped(self) -> int:
        """Spans dropped so far (queue full or export failed)."""
        return self.counts.dropped

    @property
    def spans_exported(self) -> int:
        """Spans the exporter accepted so far."""
        return self.counts.exported

    def describe(self) -> str:
        """Where telemetry goes, one line (for logs and the demo)."""
        return "; ".join(self.destinations) or "telemetry: no exporter"

    def force_flush(self, timeout_s: float = 5.0) -> None:
        """Export queued spans and collect metrics now (blocks up to about ``timeout_s``)."""
        self.tracer_provider.force_flush(int(timeout_s * 1000))
        self.meter_provider.force_flush(int(timeout_s * 1000))

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Flush and stop within about ``timeout_s`` seconds: whatever the collector has not
        taken by then is dropped (an unreachable collector never holds up a SIGTERM)."""
        if self._otlp_targets and not any(_reachable(t) for t in self._otlp_targets):
            self._abort_exports()  # nobody listens: fail the final exports at once (counted)

        def run() -> None:
            try:
                self.tracer_provider.shutdown()
            finally:
                self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)

        t = threading.Thread(target=run, name="nadir-telemetry-shutdown", daemon=True)
        t.start()
        t.join(timeout_s)
        if t.is_alive():  # abort exporter retries (they wait on the exporter's shutdown event)
            self._abort_exports()
            t.join(1.0)
        if self._prom_server is not None:
            self._prom_server.shutdown()
            self._prom_server.server_close()
            self._prom_server = None


    def _abort_exports(self) -> None:
        for ex in (self._exporter, self._otlp_metric_exporter):
            try:
                if ex is not None:
                    ex.shutdown()
            except Exception:  # noqa: BLE001
                pass


def _reachable(url: str, timeout_s: float = 0.3) -> bool:
    """Whether a TCP connection to the OTLP endpoint ``url`` opens (a collector is listening)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url if "://" in url else f"http://{url}")
    try:
        with socket.create_connection((u.hostname or "localhost", u.port or 4317), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def setup_telemetry(cfg: TelemetrySettings) -> Telemetry | None:
    """``Telemetry`` for these settings, or ``None`` when off (``enabled: false`` or
    ``OTEL_SDK_DISABLED=true``). Raises ``RuntimeError`` when Prometheus is asked for but its
    exporter is not installed, ``OSError`` when its port cannot be bound."""
    if not cfg.enabled or _env_true("OTEL_SDK_DISABLED"):
        return None
    return Telemetry(cfg)
