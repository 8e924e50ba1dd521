"""Hot reload of the settings file, the price file and the router policy (serve mode).

A file is reloaded when its identity changes -- ``os.stat`` *following symlinks*: device, inode,
mtime, size -- checked every ``NADIR_RELOAD_INTERVAL_S`` seconds (default 2; ``0`` = no polling),
or at once on ``SIGHUP``. Following symlinks covers Kubernetes ConfigMap volumes, which update in
place by swapping the ``..data`` symlink to a new timestamped folder (the mounted
``settings.yaml -> ..data/settings.yaml`` then resolves to a new inode), as well as editors that
write a new file and rename it over the old one.

A reload builds everything new first -- settings (file + environment, as at start-up), every
model named checked against the catalogue and price file (``config.check_models``), the price
file, the tier policy and the router -- and only then swaps them into the shared ``Context``
(one attribute assignment each on the event loop: a request sees the old or the new, whole). An
invalid new file is rejected with one ERROR log line naming the problem; the old settings stay in
force. Outcomes are counted as ``config_reload`` / ``config_reload_rejected`` (the
``nadir.events`` metric). Settings that shape listeners, the ledger, telemetry, key ids and
budgets are read only at start-up: a change to them is logged as needing a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from nadir_extproc import stats
from nadir_extproc.config import ConfigError, Settings, check_models, load_settings

log = logging.getLogger("nadir_extproc")

#: Settings read once at start-up (a reload logs that they need a restart).
RESTART_ONLY = ("listen", "uds", "health_listen", "tls", "allow_plaintext_listen", "max_message_bytes",
                "grace_period_s", "telemetry", "state_dir", "key_id", "ledger", "budgets", "budget_reservations",
                "budget_redis", "log_level")


def fingerprint(path: str | os.PathLike[str] | None) -> tuple[int, int, int, int] | None:
    """(device, inode, mtime ns, size) of the file ``path`` finally points at; ``None`` if absent."""
    if not path:
        return None
    try:
        st = os.stat(path)  # follows symlinks: a swapped ..data link gives the new file's identity
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def interval_s() -> float:
    """Polling interval from ``NADIR_RELOAD_INTERVAL_S`` (default 2 s; 0 = SIGHUP only)."""
    try:
        return max(0.0, float(os.environ.get("NADIR_RELOAD_INTERVAL_S", "2")))
    except ValueError:
        return 2.0


class Reloader:
    """Watches ``config_path`` (may be ``None``: then only the price file and router policy the
    settings name are watched) and swaps new settings into ``ctx`` (``server.Context``)."""

    def __init__(self, ctx: Any, config_path: str | None) -> None:
        self.ctx = ctx
        self.config_path = config_path
        self.reloads = 0
        self.rejected = 0
        self._seen = self._fingerprints(ctx.settings)

    def _files(self, settings: Settings) -> list[str]:
        return [f for f in (self.config_path, settings.price_file, settings.router_policy) if f]

    def _fingerprints(self, settings: Settings) -> dict[str, Any]:
        return {f: fingerprint(f) for f in self._files(settings)}

    def changed(self) -> bool:
        """Whether any watched file's identity differs from the one last loaded (or rejected)."""
        return self._fingerprints(self.ctx.settings) != self._seen

    def reload(self, why: str) -> bool:
        """Load, check and swap in new settings; ``False`` (old ones kept) when they are invalid."""
        from nadir_extproc.pricing import catalogue
        from nadir_extproc.pricing.pricefile import PriceFileError, load_price_file
        from nadir_extproc.routing.onnx_router import load_router

        seen = self._fingerprints(self.ctx.settings)
        try:
            new = load_settings(self.config_path)
            check_models(new)
            overrides = load_price_file(new.price_file, versioned=True) if new.price_file else None
            policy = new.policy()
            router = load_router(policy, new.router_model, new.router)
        except (ConfigError, PriceFileError, ValueError, OSError) as e:
            self._seen = {**seen, **self._fingerprints(self.ctx.settings)}
            self.rejected += 1
            stats.COUNTS["config_reload_rejected"] += 1
            log.error("reload (%s) rejected, the previous settings stay in force: %s", why, e)
            return False
        old = self.ctx.settings
        restart = [k for k in RESTART_ONLY if getattr(old, k) != getattr(new, k)]
        catalogue.use_price_file(overrides)
        self.ctx.policy = policy
        self.ctx.router = router
        # Keep the start-up values of what is only read at start-up, so ctx.settings says what runs.
        self.ctx.settings = new.model_copy(update={k: getattr(old, k) for k in restart}) if restart else new
        self._seen = self._fingerprints(self.ctx.settings)
        self.reloads += 1
        stats.COUNTS["config_reload"] += 1
        src = overrides.source if overrides is not None else catalogue.CATALOGUE
        log.info("reloaded settings (%s): price source %s", why, src)
        if restart:
            log.warning("reload: %s changed; they take effect at the next restart", ", ".join(restart))
        return True

    async def run(self, hup: asyncio.Event) -> None:
        """Until cancelled: reload on ``hup`` (set by SIGHUP) or when a watched file changed."""
        every = interval_s()
        while True:
            try:
                await asyncio.wait_for(hup.wait(), timeout=every or None)
            except asyncio.TimeoutError:
                pass
            if hup.is_set():
                hup.clear()
                await asyncio.to_thread(self.reload, "SIGHUP")
            elif self.changed():
                await asyncio.to_thread(self.reload, "file changed")
