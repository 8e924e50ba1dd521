"""An unreachable collector: the SDK's OTLP exporter logs a warning per batch and retry for as
long as it is away. The first of each message is logged, the rest counted (newcomer finding)."""

from __future__ import annotations

import logging

from nadir_extproc.stats import COUNTS
from nadir_extproc.telemetry.providers import OTLP_EXPORTER_LOGGER, _OnceFilter, quiet_otlp_export_logs


def test_the_filter_is_installed_once_on_the_sdk_exporter_logger():
    quiet_otlp_export_logs()
    quiet_otlp_export_logs()
    assert sum(isinstance(f, _OnceFilter) for f in logging.getLogger(OTLP_EXPORTER_LOGGER).filters) == 1


def test_repeated_export_warnings_are_logged_once_then_counted(caplog):
    # a fresh filter on a logger of this test's own (the process-wide one may have seen messages
    # from earlier tests' exporters): the same records the SDK logs
    lg = logging.getLogger(OTLP_EXPORTER_LOGGER + ".test-quiet")
    lg.addFilter(_OnceFilter())
    before = COUNTS["otlp_export_log_suppressed"]
    with caplog.at_level(logging.WARNING, logger=lg.name):
        for _ in range(5):
            lg.warning("Transient error %s encountered while exporting %s to %s, retrying in %.2fs. Error details: %s",
                       "UNAVAILABLE", "traces", "localhost:4317", 1.0, "connect failed")
        for _ in range(3):
            lg.error("Failed to export %s to %s, error code: %s, error details: %s", "traces", "localhost:4317", "UNAVAILABLE", "x")
        lg.warning("Exporter already shutdown, ignoring batch")  # not a repeating message: always logged
    msgs = [r.getMessage() for r in caplog.records if r.name == lg.name]
    assert len(msgs) == 3, msgs
    assert msgs[0].startswith("Transient error UNAVAILABLE") and "otlp_export_log_suppressed" in msgs[0]
    assert msgs[1].startswith("Failed to export traces") and msgs[2] == "Exporter already shutdown, ignoring batch"
    assert COUNTS["otlp_export_log_suppressed"] - before == 4 + 2
