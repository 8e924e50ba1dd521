"""Windowed totals and reservations shared by every ext_proc of a fleet, in Redis (or Valkey).

Per (rule, scope value) three keys under ``<prefix><rule name>:<window s>:<scope value>``:

- ``…:s`` a hash: one field per time bucket (``floor(t / width)``, the same 60 buckets per window
  as in memory) holding the spend in that bucket, ``t`` = the window's spend total, ``r`` = the
  total reserved by requests in flight;
- ``…:a`` a hash: reservation id -> amount;
- ``…:z`` a sorted set: reservation id scored by its expiry (Redis time, ms).

Amounts are exact integers of pico-USD (``rules.to_pico``), only ever changed with ``HINCRBY``
(int64, exact); the totals go back to Python as integer strings and become exact ``Decimal`` USD.
Lua numbers are doubles, so the admission comparison itself is exact up to 2**53 pUSD (about
9 007 USD per rule window) and within a few pUSD above.

Two Lua scripts do all the work atomically with Redis's own clock (``TIME``), so every process
agrees on the buckets: ``RESERVE`` (prune expired buckets and reservations of every applicable
rule, decide, and hold the amount against all of them, or none) and ``SETTLE`` (drop the
reservation, add the priced cost to its bucket). A marker key ``<prefix>seeded`` tells a warm
store from a cold one (new or restarted empty): the first process that sees it missing seeds the
totals from the ledger. Keys expire a window (plus the reservation TTL) after their last write.

Redis Cluster is not supported (a request's keys are not in one hash slot); use one primary.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from nadir_extproc.budgets.rules import RuleState, bucket_width, from_pico, to_pico

_PRUNE = """
local function prune(s, a, z, now, now_ms, window, width)
  local first = math.floor((now - window) / width)
  local fields = redis.call('HKEYS', s)
  for _, f in ipairs(fields) do
    if f ~= 't' and f ~= 'r' and tonumber(f) < first then
      local v = redis.call('HGET', s, f)
      redis.call('HDEL', s, f)
      if v and v ~= '0' then redis.call('HINCRBY', s, 't', '-' .. v) end
    end
  end
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now_ms)
  for _, id in ipairs(gone) do
    local v = redis.call('HGET', a, id)
    if v then
      redis.call('HDEL', a, id)
      if v ~= '0' then redis.call('HINCRBY', s, 'r', '-' .. v) end
    end
    redis.call('ZREM', z, id)
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: marker, then (s, a, z) per rule. ARGV: id, amount (pUSD), ttl ms, n rules, then per rule
#: window s, bucket width s, limit (pUSD), mode ('block' | 'count'). Returns
#: {blocking rule index (0-based) or -1, cold (marker missing) 0/1, now s, now us, spent1, reserved1, …}
RESERVE = _PRUNE + """
local id, amount, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local amt = tonumber(amount)
local cold = redis.call('EXISTS', KEYS[1]) == 0 and 1 or 0
local out = {}
local blocked = -1
for i = 1, n do
  local s, a, z = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local b = 5 + (i - 1) * 4
  local window, width, limit = tonumber(ARGV[b]), tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  prune(s, a, z, now, now_ms, window, width)
  local spent = redis.call('HGET', s, 't') or '0'
  local reserved = redis.call('HGET', s, 'r') or '0'
  out[#out + 1] = spent
  out[#out + 1] = reserved
  if blocked < 0 and ARGV[b + 3] == 'block' then
    local used = tonumber(spent) + tonumber(reserved)
    if used >= limit or used + amt > limit then blocked = i - 1 end
  end
end
if blocked < 0 and amount ~= '0' then
  for i = 1, n do
    local s, a, z = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
    local b = 5 + (i - 1) * 4
    local keep = math.ceil((tonumber(ARGV[b]) + tonumber(ARGV[b + 1])) * 1000) + ttl
    redis.call('HSET', a, id, amount)
    redis.call('ZADD', z, now_ms + ttl, id)
    redis.call('HINCRBY', s, 'r', amount)
    redis.call('PEXPIRE', s, keep)
    redis.call('PEXPIRE', a, keep)
    redis.call('PEXPIRE', z, keep)
  end
end
local head = {blocked, cold, t[1], t[2]}
for _, v in ipairs(out) do head[#head + 1] = v end
return head
"""

#: KEYS: (s, a, z) per rule. ARGV: id ('' = none), amount (pUSD), ts ('' = now), ttl ms, n rules,
#: then per rule window s, bucket width s. Returns the number of rules the spend was added to.
SETTLE = _PRUNE + """
local id, amount, ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])
local ts = now
if ARGV[3] ~= '' then ts = math.min(tonumber(ARGV[3]), now) end
local n = tonumber(ARGV[5])
local added = 0
for i = 1, n do
  local s, a, z = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local b = 6 + (i - 1) * 2
  local window, width = tonumber(ARGV[b]), tonumber(ARGV[b + 1])
  if id ~= '' then
    local v = redis.call('HGET', a, id)
    if v then
      redis.call('HDEL', a, id)
      redis.call('ZREM', z, id)
      if v ~= '0' then redis.call('HINCRBY', s, 'r', '-' .. v) end
    end
  end
  if amount ~= '0' and ts >= now - window then
    redis.call('HINCRBY', s, string.format('%d', math.floor(ts / width)), amount)
    redis.call('HINCRBY', s, 't', amount)
    added = added + 1
  end
  prune(s, a, z, now, now_ms, window, width)
  local keep = math.ceil((window + width) * 1000) + ttl
  redis.call('PEXPIRE', s, keep)
  redis.call('PEXPIRE', a, keep)
  redis.call('PEXPIRE', z, keep)
end
return added
"""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisStore:
    """The scripts over a ``redis.asyncio`` client built from ``BudgetRedisSettings``. Every method
    is a coroutine that raises the client's errors (``redis.RedisError``, ``OSError``); the caller
    (``Budgets``) bounds them in time and falls back to local totals."""

    def __init__(self, cfg: Any) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.cfg = cfg
        self.prefix = cfg.key_prefix
        self.marker = f"{self.prefix}seeded"
        timeout = cfg.timeout_ms / 1000
        kw: dict[str, Any] = {
            "socket_timeout": timeout, "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0), "health_check_interval": 0,
            "max_connections": cfg.max_connections,
        }
        if cfg.password_file:
            with open(cfg.password_file, encoding="utf-8") as f:
                kw["password"] = f.read().strip()
        elif cfg.password is not None:
            kw["password"] = cfg.password.get_secret_value()
        if cfg.url.startswith("rediss://"):
            kw["ssl_cert_reqs"] = ssl.CERT_REQUIRED if cfg.tls_verify else ssl.CERT_NONE
            if cfg.tls_ca_file:
                kw["ssl_ca_certs"] = cfg.tls_ca_file
            if cfg.tls_cert_file:
                kw["ssl_certfile"] = cfg.tls_cert_file
                kw["ssl_keyfile"] = cfg.tls_key_file
        # A blocking pool: under a burst, a request waits for a free connection (still inside the
        # caller's bound) instead of failing at once with "too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(cfg.url, timeout=timeout, **kw)
        self.client = aioredis.Redis(connection_pool=pool)
        self._reserve = self.client.register_script(RESERVE)
        self._settle = self.client.register_script(SETTLE)

    def base(self, rule: Any, value: str) -> str:
        """The key prefix of (rule, scope value)."""
        return f"{self.prefix}{rule.name}:{rule.window}:{value}"

    def _keys(self, apps: Iterable[tuple[int, Any, str]]) -> list[str]:
        keys = []
        for _, rule, value in apps:
            b = self.base(rule, value)
            keys += [f"{b}:s", f"{b}:a", f"{b}:z"]
        return keys

    async def ping(self) -> None:
        await self.client.ping()

    async def reserve(
        self, apps: list[tuple[int, Any, str]], rid: str, usd: Decimal, ttl_s: float
    ) -> tuple[int | None, bool, float, list[RuleState]]:
        """Atomically check every applicable rule and, unless one refuses, reserve ``usd`` against
        all of them. Returns (index into ``apps`` of the refusing rule or ``None``, cold store,
        Redis time in UNIX seconds, the rule states before this request)."""
        args: list[Any] = [rid, str(to_pico(usd, up=True)), int(ttl_s * 1000), len(apps)]
        for _, rule, _ in apps:
            args += [rule.window, repr(bucket_width(rule.window)), str(to_pico(rule.limit_usd)),
                     "block" if rule.action == "block" else "count"]
        r = await self._reserve(keys=[self.marker, *self._keys(apps)], args=args)
        blocked, cold = int(r[0]), bool(int(r[1]))
        now = int(_text(r[2])) + int(_text(r[3])) / 1e6
        states = [
            RuleState(i, rule, value, from_pico(int(_text(r[4 + 2 * k]))), from_pico(int(_text(r[5 + 2 * k]))))
            for k, (i, rule, value) in enumerate(apps)
        ]
        return (blocked if blocked >= 0 else None), cold, now, states

    async def settle(self, apps: list[tuple[int, Any, str]], rid: str | None, usd: Decimal | None, ts: float | None, ttl_s: float) -> int:
        """Release ``rid`` and add ``usd`` spent at ``ts`` (UNIX s; ``None`` = now, Redis time)."""
        return int(await self._settle(keys=self._keys(apps), args=self._settle_args(apps, rid, usd, ts, ttl_s)))

    def _settle_args(self, apps: list[tuple[int, Any, str]], rid: str | None, usd: Decimal | None, ts: float | None, ttl_s: float) -> list[Any]:
        args: list[Any] = [rid or "", str(to_pico(usd)) if usd and usd > 0 else "0", "" if ts is None else repr(float(ts)),
                           int(ttl_s * 1000), len(apps)]
        for _, rule, _ in apps:
            args += [rule.window, repr(bucket_width(rule.window))]
        return args

    async def settle_many(self, items: list[tuple[list[tuple[int, Any, str]], Decimal, float]], ttl_s: float) -> None:
        """Add many past spends (apps, USD, ts) in pipelined batches (seeding, backlog)."""
        for start in range(0, len(items), 500):
            async with self.client.pipeline(transaction=False) as pipe:
                for apps, usd, ts in items[start:start + 500]:
                    await self._settle(keys=self._keys(apps), args=self._settle_args(apps, None, usd, ts, ttl_s), client=pipe)
                await pipe.execute()

    async def buckets(self, rule: Any, value: str) -> list[tuple[int, Decimal]]:
        """The spend buckets of (rule, value), for ``retry-after``."""
        h = await self.client.hgetall(f"{self.base(rule, value)}:s")
        out = []
        for k, v in h.items():
            k = _text(k)
            if k not in ("t", "r"):
                out.append((int(k), from_pico(int(_text(v)))))
        return out

    async def claim_seeding(self) -> bool:
        """Set the warm marker; ``True`` for the one caller that set it (and must seed)."""
        return bool(await self.client.set(self.marker, "1", nx=True))

    async def is_cold(self) -> bool:
        return not await self.client.exists(self.marker)

    async def spent(self, rule: Any, value: str) -> tuple[Decimal, Decimal]:
        """(spent, reserved) USD of (rule, value) as stored (expired entries not pruned)."""
        s, r = await self.client.hmget(f"{self.base(rule, value)}:s", ["t", "r"])
        return from_pico(int(_text(s or b"0"))), from_pico(int(_text(r or b"0")))

    async def close(self) -> None:
        await self.client.aclose()
