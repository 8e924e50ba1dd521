"""An unreachable collector: the SDK's OTLP exporter logs a warning per batch and retry for as
long as it is away. The first of each message is logged, the rest counted (newcomer finding)."""

from __future__ import annotations

import logging

from nadir_extproc.stats import COUNTS
from nadir_extproc.telemetry.providers import OTLP_EXPORTER_LOGGER, quiet_otlp_export_logs


def test_repeated_export_warnings_are_logged_once_then_counted(caplog):
    quiet_otlp_export_logs()
    quiet_otlp_export_logs()  # installing twice adds one filter
    lg = logging.getLogger(OTLP_EXPORTER_LOGGER)
    assert sum(type(f).__name__ == "_OnceFilter" for f in lg.filters) == 1
    before = COUNTS["otlp_export_log_suppressed"]
    with caplog.at_level(logging.WARNING, logger=OTLP_EXPORTER_LOGGER):
        for _ in range(5):
            lg.warning("Transient error %s encountered while exporting %s to %s, retrying in %.2fs. Error details: %s",
                       "UNAVAILABLE", "traces", "localhost:4317", 1.0, "connect failed")
        for _ in range(3):
            lg.error("Failed to export %s to %s, error code: %s, error details: %s", "traces", "localhost:4317", "UNAVAILABLE", "x")
        lg.warning("Exporter already shutdown, ignoring batch")  # not a repeating message: always logged
    msgs = [r.getMessage() for r in caplog.records if r.name == OTLP_EXPORTER_LOGGER]
    assert len(msgs) == 3, msgs
    assert msgs[0].startswith("Transient error UNAVAILABLE") and "otlp_export_log_suppressed" in msgs[0]
    assert msgs[1].startswith("Failed to export traces") and msgs[2] == "Exporter already shutdown, ignoring batch"
    assert COUNTS["otlp_export_log_suppressed"] - before == 4 + 2
