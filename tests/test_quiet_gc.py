"""``server.quiet_gc``: start-up objects frozen out of the collector, a larger young generation
(the measured lever: bench/results/levers-*.md). The process's GC state is restored afterwards."""

from __future__ import annotations

import gc

from nadir_extproc import server


def test_quiet_gc_freezes_start_up_objects_and_widens_gen0():
    before = gc.get_threshold()
    kept = [[i] for i in range(10)]  # tracked containers alive before the call: must end up frozen
    try:
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        assert any(o is kept[0] for o in gc.get_objects())
        server.quiet_gc()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (7000, before[1], before[2])
        assert not any(o is kept[0] for o in gc.get_objects())  # frozen objects are not tracked
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
