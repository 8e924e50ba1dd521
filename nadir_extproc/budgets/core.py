"""``Budgets``: admission with reservations, settlement, and the Redis / local fallback.

Life of a request under budgets (``processor`` calls these three, nothing else):

1. ``estimate(...)`` — the most it may cost (``budgets.estimate``).
2. ``await admit(scopes, estimate)`` — atomically, against every applicable rule: refuse when a
   ``block`` rule's ``spent + reserved (+ this estimate)`` would pass its limit, else reserve the
   estimate against all of them. Returns the ``Verdict`` and a ``Reservation``.
3. ``settle(reservation, cost)`` — when the response is priced (or the request ends without a
   price: cut, aborted, provider error): add the priced cost to every rule's window and release
   the reservation. A reservation never settled (ext_proc killed, stream lost) expires after
   ``budget_reservations.ttl_s``.

Stores: with ``budget_redis.url`` the totals are shared in Redis (``redis_store``); every request
also settles into this process's memory store (``memory``), the "local totals". No Redis
operation on the request path waits longer than ``budget_redis.timeout_ms``: on an error or
timeout the request is decided on the local totals (counted ``budget_redis_fallback``; the outage
is logged once), each ``block`` rule's ``on_redis_down`` choosing ``local`` (decide on local
totals), ``admit`` (never refuse) or ``refuse`` (refuse everything in its scope). A background
probe pings Redis every ``retry_interval_s``; when it answers, spend settled during the outage is
written to it (or, if it came back empty, it is seeded from the ledger) and Redis decides again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from nadir_extproc.budgets import estimate as _estimate
from nadir_extproc.budgets.memory import MemoryStore
from nadir_extproc.budgets.rules import (
    OK, Alerts, RuleState, Verdict, applicable, bucket_width, decide, first_block, retry_after,
)
from nadir_extproc.stats import count

log = logging.getLogger("nadir_extproc")

#: Spend settled while Redis was unreachable, kept to write once it is back (oldest dropped first).
BACKLOG_MAX = 100_000


@dataclass
class Reservation:
    """What an admitted request holds: its id, the rules it applies to, the amount reserved (USD)
    and where (``"redis"`` or ``"local"``). Settled once."""

    id: str
    apps: list[tuple[int, Any, str]]
    usd: Decimal
    where: str
    done: bool = field(default=False)


@dataclass
class Admission:
    verdict: Verdict
    reservation: Reservation | None = None


def _scopes_of_row(r: Any) -> dict[str, str]:
    from nadir_extproc.budgets import scope_values

    return scope_values(r.tags, r.key_id, r.trace_id)


class Budgets:
    """The configured rules (``config.BudgetRule``), their stores and the reservation settings.
    ``clock`` returns UNIX seconds for the memory store (tests pass their own; Redis uses its own
    clock). ``reservations``: ``config.BudgetReservationSettings``; ``redis``:
    ``config.BudgetRedisSettings`` (Redis only when its ``url`` is set). Use from one event loop."""

    def __init__(self, rules: Iterable[Any], clock: Callable[[], float] = time.time,
                 reservations: Any = None, redis: Any = None) -> None:
        from nadir_extproc.config import BudgetReservationSettings

        self.rules = list(rules)
        self.clock = clock
        self.cfg = reservations if reservations is not None else BudgetReservationSettings()
        self.local = MemoryStore(clock)
        self.alerts = Alerts()
        self.redis_cfg = redis if redis is not None and getattr(redis, "url", None) else None
        self.redis = None
        if self.redis_cfg is not None:
            from nadir_extproc.budgets.redis_store import RedisStore

            self.redis = RedisStore(self.redis_cfg)
        #: Whether Redis decides (False while it is unreachable).
        self.up = self.redis is not None
        #: ``() -> ledger store`` (its own connection, closed after use), set by ``ledger.attach``:
        #: seeds a cold Redis from the hourly rollups where exact (``seed_items``).
        self.ledger_store: Callable[[], Any] | None = None
        #: ``since (datetime) -> ledger rows``: seeds a cold Redis row by row when there is no ``ledger_store``.
        self.ledger_rows: Callable[[datetime], Iterable[Any]] | None = None
        self._backlog: deque[tuple[list[tuple[int, Any, str]], Decimal, float]] = deque(maxlen=BACKLOG_MAX)
        self._tasks: set[asyncio.Task] = set()
        self._probe: asyncio.Task | None = None
        self._seeding: asyncio.Task | None = None

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def max_window_s(self) -> int:
        """The longest rule window (seconds; 0 without rules)."""
        return max((r.window for r in self.rules), default=0)

    @property
    def timeout_s(self) -> float:
        return self.redis_cfg.timeout_ms / 1000 if self.redis_cfg is not None else 0.0

    # ------------------------------------------------------------------ request path
    def estimate(self, provider: str, model: str | None, body_bytes: int, body: dict[str, Any] | None,
                 catalogue: str | None = None, dialect: Any = None) -> Decimal:
        """The request's estimated maximum cost, USD (``budgets.estimate``): ``provider`` is the
        route's provider id (per-route output default), ``catalogue`` the provider id its rates are
        looked up under (default: ``provider``); ``dialect``: the request's API (reads its output
        cap and choice count)."""
        return _estimate.estimate_usd(provider, model, body_bytes, body, self.cfg, catalogue=catalogue, dialect=dialect)

    async def admit(self, scopes: Mapping[str, str], estimate_usd: Decimal) -> Admission:
        """Decide and reserve (module docstring). Never waits on Redis longer than
        ``budget_redis.timeout_ms``; never raises for a store error."""
        apps = applicable(self.rules, scopes)
        if not apps:
            return Admission(OK)
        est = estimate_usd if estimate_usd and estimate_usd > 0 else Decimal(0)
        rid = uuid.uuid4().hex
        if self.redis is not None and self.up:
            try:
                return await asyncio.wait_for(self._admit_redis(apps, rid, est), self.timeout_s)
            except Exception as e:  # noqa: BLE001 — RedisError, OSError, TimeoutError: fall back
                self._failed(e)
        return self._admit_local(apps, rid, est, down=self.redis is not None)

    async def _admit_redis(self, apps: list[tuple[int, Any, str]], rid: str, est: Decimal) -> Admission:
        assert self.redis is not None
        blocked, cold, now, states = await self.redis.reserve(apps, rid, est, self.cfg.ttl_s)
        if cold:
            self._kick_seeding()
        if blocked is None:
            return Admission(decide(states, est, None, self.alerts), Reservation(rid, apps, est, "redis"))
        st = states[blocked]
        buckets = await self.redis.buckets(st.rule, st.value)
        retry = retry_after(buckets, bucket_width(st.rule.window), st.rule.window, now, st, est)
        return Admission(decide(states, est, st, self.alerts, retry))

    def _admit_local(self, apps: list[tuple[int, Any, str]], rid: str, est: Decimal, down: bool = False) -> Admission:
        states = self.local.states(apps)
        mode = {i: rule.on_redis_down for i, rule, _ in apps} if down else None
        if down:
            count("budget_redis_fallback")
        st = first_block(states, est, mode)
        if st is None:
            self.local.reserve(apps, rid, est, self.cfg.ttl_s)
            return Admission(decide(states, est, None, self.alerts), Reservation(rid, apps, est, "local"))
        refused = bool(mode) and mode.get(st.index) == "refuse"
        retry = None if refused else retry_after(
            self.local.buckets(st.index, st.value), bucket_width(st.rule.window), st.rule.window, self.clock(), st, est)
        return Admission(decide(states, est, st, self.alerts, retry, refused_while_down=refused))

    def settle(self, res: Reservation | None, usd: Decimal | None) -> None:
        """Add the priced cost (``None``/0: nothing was spent) and release the reservation, once.
        The local totals are updated now; Redis in a background task (off the request path)."""
        if res is None or res.done:
            return
        res.done = True
        usd = usd if usd is not None and usd > 0 else Decimal(0)
        self.local.settle(res.apps, res.id if res.where == "local" else None, usd)
        if self.redis is None or (res.where != "redis" and not usd):
            return
        ts = time.time()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop: keep the spend for later
            if usd:
                self._backlog.append((res.apps, usd, ts))
            return
        self._spawn(loop, self._settle_redis(res, usd, ts))

    async def _settle_redis(self, res: Reservation, usd: Decimal, ts: float) -> None:
        assert self.redis is not None
        if not self.up:
            if usd:
                self._backlog.append((res.apps, usd, ts))
            return
        try:
            await asyncio.wait_for(
                self.redis.settle(res.apps, res.id if res.where == "redis" else None, usd, None, self.cfg.ttl_s),
                max(self.timeout_s, 1.0),
            )
        except Exception as e:  # noqa: BLE001
            self._failed(e)
            if usd:
                self._backlog.append((res.apps, usd, ts))

    # ------------------------------------------------------------------ local totals (no reservation)
    def check(self, scopes: Mapping[str, str]) -> Verdict:
        """The verdict on the local totals for a request of zero estimate, reserving nothing."""
        apps = applicable(self.rules, scopes)
        if not apps:
            return OK
        return self._admit_local_check(apps)

    def _admit_local_check(self, apps: list[tuple[int, Any, str]]) -> Verdict:
        states = self.local.states(apps)
        st = first_block(states, Decimal(0))
        retry = None
        if st is not None:
            retry = retry_after(self.local.buckets(st.index, st.value), bucket_width(st.rule.window), st.rule.window,
                                self.clock(), st, Decimal(0))
        return decide(states, Decimal(0), st, self.alerts, retry)

    def record(self, scopes: Mapping[str, str], usd: Decimal | None, ts: float | None = None) -> None:
        """Add one request's cost (USD) to the local totals of every rule that applies; ``None`` or
        0 adds nothing. ``ts``: when it was spent (UNIX seconds; default now)."""
        if self.rules and usd:
            self.local.settle(applicable(self.rules, scopes), None, usd, ts)

    def seed(self, rows: Iterable[Any]) -> int:
        """Load spend into the local totals from ledger rows (``LedgerRow``: ``ts``, ``cost_usd``,
        ``tags``, ``key_id``, ``trace_id``), e.g. ``store.rows(since=now - max_window_s)``.
        Returns rows used."""
        n = 0
        for r in rows:
            if r.cost_usd:
                self.record(_scopes_of_row(r), r.cost_usd, r.ts.timestamp())
                n += 1
        return n

    def seed_from_store(self, store: Any, now: float | None = None) -> int:
        """Load spend into the local totals from a ledger store (``ledger.store``), reading as few
        raw rows as possible (``seed_items``). ``now``: UNIX seconds (default: the clock).
        Returns the rollup rows and raw rows used."""
        items = self.seed_items(store, now)
        for apps, usd, ts in items:
            self.local.settle(apps, None, usd, ts)
        return len(items)

    def seed_items(self, store: Any, now: float | None = None) -> list[tuple[list[tuple[int, Any, str]], Decimal, float]]:
        """The spend inside every rule's window, as ``(applicable rules, USD, UNIX seconds)`` items
        (what ``MemoryStore.settle`` and ``RedisStore.settle_many`` take), from a ledger store. A
        rule whose scope is a rollup dimension (``team``, ``feature``, ``env``, ``key_id``) and
        whose time buckets are whole hours (``bucket_width`` a multiple of 3600 s, e.g. a 30-day
        window: 12 h buckets) reads the hourly rollups for the whole hours of its window, each
        hour's spend at the hour's start (every request of that hour falls in the same bucket, so
        the totals equal a row-by-row seed exactly), and raw rows only for the partial first
        hour. Other rules (``user``, ``session``, ``trace``, other tags, or buckets that split an
        hour) read raw rows of their window, once for all of them. A store without hourly
        rollups: raw rows for every rule."""
        from nadir_extproc.ledger.rollup import DIMS, ceil_hour

        now = self.clock() if now is None else now
        items: list[tuple[list[tuple[int, Any, str]], Decimal, float]] = []
        raw_rules: list[tuple[int, Any]] = []
        hourly = getattr(store, "hourly_spend", None)
        for i, rule in enumerate(self.rules):
            since = datetime.fromtimestamp(now - rule.window, timezone.utc)
            if hourly is None or rule.scope not in DIMS or bucket_width(rule.window) % 3600:
                raw_rules.append((i, rule))
                continue
            edge = ceil_hour(since)
            for hour, value, usd in hourly(rule.scope, edge):
                if usd and (rule.match is None or value == rule.match):
                    items.append(([(i, rule, value)], usd, hour.timestamp()))
            self._seed_rules(store.rows(since=since, until=edge), [(i, rule)], items)
        if raw_rules:
            since = datetime.fromtimestamp(now - max(r.window for _, r in raw_rules), timezone.utc)
            self._seed_rules(store.rows(since=since), raw_rules, items)
        return items

    def _seed_rules(self, rows: Iterable[Any], rules: list[tuple[int, Any]], items: list) -> None:
        only = [r for _, r in rules]
        for r in rows:
            if r.cost_usd:
                # applicable() over these rules only, keeping each rule's index among all rules
                apps = [(rules[j][0], rule, v) for j, rule, v in applicable(only, _scopes_of_row(r))]
                if apps:
                    items.append((apps, r.cost_usd, r.ts.timestamp()))

    # ------------------------------------------------------------------ Redis life cycle
    async def start(self) -> None:
        """Connect to Redis (bounded) and seed it from the ledger when it is cold; on failure
        fall back to local totals and keep probing. No-op without Redis."""
        if self.redis is None:
            return
        try:
            await asyncio.wait_for(self.redis.ping(), max(self.timeout_s, 1.0))
            await self._seed_if_cold()
            log.info("budgets: shared totals in Redis (%s)", _safe_url(self.redis_cfg.url))
        except Exception as e:  # noqa: BLE001
            self._failed(e)

    async def aclose(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) for settlements in flight, stop the probe, close the client."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for t in (self._probe, self._seeding):
            if t is not None and not t.done():
                t.cancel()
        if self.redis is not None:
            try:
                await self.redis.close()
            except Exception:  # noqa: BLE001
                pass

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task:
        t = loop.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def _failed(self, e: BaseException) -> None:
        what = type(e).__name__
        count("budget_redis_error", what)
        if not self.up:
            return
        self.up = False
        log.warning("budgets: Redis unavailable (%s: %s); deciding on this process's local totals until it is back",
                    what, str(e)[:200] or "timeout")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._probe is None or self._probe.done():
            self._probe = loop.create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        assert self.redis is not None and self.redis_cfg is not None
        while True:
            await asyncio.sleep(self.redis_cfg.retry_interval_s)
            try:
                await asyncio.wait_for(self.redis.ping(), max(self.timeout_s, 0.5))
                cold = await self._seed_if_cold()
                if not cold:
                    await self._flush_backlog()
                else:
                    self._backlog.clear()  # the ledger holds that spend; it was just seeded
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                count("budget_redis_error", type(e).__name__)
                continue
            self.up = True
            count("budget_redis_recovered")
            log.warning("budgets: Redis is back; shared totals decide again")
            return

    async def _flush_backlog(self) -> None:
        assert self.redis is not None
        while self._backlog:
            batch = [self._backlog[i] for i in range(min(500, len(self._backlog)))]
            await asyncio.wait_for(self.redis.settle_many(batch, self.cfg.ttl_s), 30)
            for _ in batch:
                self._backlog.popleft()

    def _kick_seeding(self) -> None:
        if self._seeding is None or self._seeding.done():
            self._seeding = asyncio.get_running_loop().create_task(self._seed_quietly())

    async def _seed_quietly(self) -> None:
        try:
            await self._seed_if_cold()
        except Exception as e:  # noqa: BLE001
            self._failed(e)

    async def _seed_if_cold(self) -> bool:
        """When the Redis marker is missing, claim it; the claimer seeds the shared totals from the
        ledger: ``seed_items`` (hourly rollups where exact, raw rows otherwise) with a
        ``ledger_store``, else the rows ``ledger_rows`` gives inside the longest window. Returns
        whether the store was cold."""
        assert self.redis is not None
        if not await asyncio.wait_for(self.redis.is_cold(), max(self.timeout_s, 0.5)):
            return False
        if not await asyncio.wait_for(self.redis.claim_seeding(), max(self.timeout_s, 0.5)):
            return True  # another process seeds it
        if self.ledger_store is not None:
            items = await asyncio.to_thread(self._ledger_items)
            await asyncio.wait_for(self.redis.settle_many(items, self.cfg.ttl_s), 60)
            log.info("budgets: Redis was empty; seeded from %d ledger rollup and raw rows", len(items))
            return True
        if self.ledger_rows is None:
            log.info("budgets: Redis was empty; no ledger to seed it from")
            return True
        since = datetime.now(timezone.utc) - timedelta(seconds=self.max_window_s)
        rows = await asyncio.to_thread(lambda: list(self.ledger_rows(since)))  # type: ignore[misc]
        items = []
        for r in rows:
            if r.cost_usd:
                apps = applicable(self.rules, _scopes_of_row(r))
                if apps:
                    items.append((apps, r.cost_usd, r.ts.timestamp()))
        await asyncio.wait_for(self.redis.settle_many(items, self.cfg.ttl_s), 60)
        log.info("budgets: Redis was empty; seeded from %d ledger rows since %s", len(items), since.isoformat())
        return True

    def _ledger_items(self) -> list[tuple[list[tuple[int, Any, str]], Decimal, float]]:
        """``seed_items`` over a store opened by ``ledger_store`` (closed after)."""
        assert self.ledger_store is not None
        store = self.ledger_store()
        try:
            return self.seed_items(store)
        finally:
            store.close()

    # ------------------------------------------------------------------ inspection (tests, CLI)
    async def shared_totals(self, scopes: Mapping[str, str]) -> list[RuleState]:
        """(spent, reserved) of each applicable rule as Redis holds them (raises store errors)."""
        assert self.redis is not None
        out = []
        for i, rule, value in applicable(self.rules, scopes):
            spent, reserved = await self.redis.spent(rule, value)
            out.append(RuleState(i, rule, value, spent, reserved))
        return out


def _safe_url(url: str) -> str:
    """The Redis URL without its password."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if u.password:
        netloc = f"{u.username or ''}:***@{u.hostname}{':' + str(u.port) if u.port else ''}"
        return u._replace(netloc=netloc).geturl()
    return url
