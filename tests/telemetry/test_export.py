"""Export: OTLP gRPC to a real receiver (``otlp_receiver``), spans dropped and counted when the
collector is down or the bounded queue is full, the Prometheus endpoint, and the OTEL_* switches."""

from __future__ import annotations

import urllib.request

import pytest

from nadir_extproc.config import TelemetrySettings, load_settings
from nadir_extproc.stack import free_port
from nadir_extproc.stats import COUNTS
from nadir_extproc.telemetry.providers import Telemetry, setup_telemetry
from tests.telemetry.otlp_receiver import OTLPReceiver
from tests.telemetry.test_metrics import tagged


@pytest.fixture
def receiver():  # one per test here (the module's tests hold and count its exports)
    with OTLPReceiver() as r:
        yield r


@pytest.fixture
def telemetries():
    made: list[Telemetry] = []
    yield made
    for t in made:
        t.shutdown()


def test_spans_and_metrics_reach_a_real_otlp_receiver(receiver, telemetries):
    t = Telemetry(TelemetrySettings(otlp_endpoint=receiver.endpoint))  # bare host:port = plain gRPC
    telemetries.append(t)
    t.record(tagged())
    t.force_flush()
    (s,) = receiver.spans()
    assert s.service == "nadir-extproc"
    assert s.span.name == "chat auto"
    assert s.attrs["nadir.cost.usd"] == "0.000465"
    assert (t.spans_exported, t.spans_dropped) == (1, 0)
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "nadir.llm.cost"} <= receiver.metric_names()
    assert "traces -> OTLP gRPC http://" + receiver.endpoint in t.describe()


def test_collector_down_drops_and_counts_spans(monkeypatch, telemetries):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # give up retrying after 1 s
    t = Telemetry(TelemetrySettings(otlp_endpoint=f"127.0.0.1:{free_port()}"), metric_readers=[])
    telemetries.append(t)
    before = COUNTS["telemetry_spans_dropped"]
    for _ in range(3):
        t.record(tagged())  # returns at once: the span only goes into the queue
    t.force_flush()
    assert (t.spans_exported, t.spans_dropped) == (0, 3)
    assert COUNTS["telemetry_spans_dropped"] - before == 3


def test_full_queue_drops_and_counts_spans(receiver, telemetries):
    t = Telemetry(TelemetrySettings(otlp_endpoint=receiver.endpoint, max_queue_size=2), metric_readers=[])
    telemetries.append(t)
    receiver.hold()  # the collector stops answering
    t.record(tagged())
    t.record(tagged())  # a full batch (2): the export thread takes both and waits on the collector
    assert receiver.held_export.wait(20)
    for _ in range(5):
        t.record(tagged())  # 2 fit in the queue, 3 are dropped
    receiver.release()
    t.force_flush()
    assert len(receiver.spans()) == 4
    assert (t.spans_exported, t.spans_dropped) == (4, 3)


def test_prometheus_endpoint_serves_the_request_metrics(telemetries, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    t = Telemetry(TelemetrySettings(prometheus_port=free_port()), metric_readers=[])
    telemetries.append(t)
    t.record(tagged())
    with urllib.request.urlopen(t.prometheus_url, timeout=5) as r:
        text = r.read().decode()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    cost = [ln for ln in lines if ln.startswith("nadir_llm_cost_USD_total{")]
    assert len(cost) == 1 and cost[0].endswith(" 0.000465")
    assert 'nadir_tag_team="search"' in cost[0]
    tokens = [ln for ln in lines if ln.startswith("gen_ai_client_token_usage_sum{") and 'gen_ai_token_type="input"' in ln]
    assert len(tokens) == 1 and tokens[0].endswith(" 1200.0")
    assert "alice@example.com" not in text and "3f2a9c0d11e5b6a7" not in text  # user, key id: never labels
    assert t.describe().startswith("metrics -> Prometheus http://127.0.0.1:")


def test_switches_disabled_and_otel_env(monkeypatch, telemetries):
    assert setup_telemetry(TelemetrySettings(enabled=False)) is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert setup_telemetry(TelemetrySettings()) is None
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    t = setup_telemetry(TelemetrySettings())
    telemetries.append(t)
    assert t.resource.attributes["service.name"] == "gateway-eu"
    assert t.describe() == "telemetry: no exporter"


def test_settings_from_file_and_env(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("telemetry:\n  otlp_endpoint: collector:4317\n  capture_content: true\n")
    s = load_settings(f, env={"NADIR_PROMETHEUS_PORT": "9464"})
    assert s.telemetry.otlp_endpoint == "collector:4317"
    assert s.telemetry.capture_content is True
    assert s.telemetry.prometheus_port == 9464
    d = load_settings(env={}).telemetry
    assert (d.enabled, d.capture_content, d.emit_usage_cost, d.prometheus_port, d.otlp_endpoint) == (True, False, True, None, None)
