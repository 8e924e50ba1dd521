"""Hypothesis profiles: ``ci`` (default; modest example counts so ``make test`` stays fast) and
``long`` (``make fuzz`` or ``pytest tests/fuzz --hypothesis-profile=long``). No deadlines: the
machine is shared, timings are not asserted."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
