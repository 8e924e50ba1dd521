"""The ledger's row: one finished request, and the versioned table definitions.

``LedgerRow`` is the one shape every store writes and every report reads. Money is
``decimal.Decimal`` USD throughout (PostgreSQL ``NUMERIC``; SQLite ``TEXT`` holding a plain decimal
string such as ``"0.00045"``, never an exponent); token counts are ints (``None`` when the response
reported no usage); times are UTC.

``status`` is one of ``STATUSES`` (the value of ``record.Result``): ``ok``; ``provider_error``
(HTTP status >= 400 from the provider, or an error event in a stream); ``cut_stream`` (the response
ended before its end: a stream without its terminal event, or a JSON body cut mid-way); ``blocked``
(refused before the provider was called, cost ``0``: a budget ``block`` rule's 429, or a request
body too large — Envoy's own 413 over its buffer limit or ours over ``max_request_bytes``, unpriced
reason ``request_too_large``); ``no_response`` (the request ended before any response headers, e.g.
the client went away).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from nadir_extproc.pricing.money import format_usd
from nadir_extproc.record import Outcome, Result
from nadir_extproc.traceparent import trace_id_of

STATUSES = ("ok", "provider_error", "cut_stream", "blocked", "no_response")

#: Tags that get a column of their own (``tag_<name>``); every tag is also in ``tags`` (JSON).
TAG_COLUMNS = ("user", "feature", "team", "env", "session")

TABLE = "nadir_requests"
VERSION_TABLE = "nadir_schema_version"


@dataclass
class LedgerRow:
    """One request in the ledger. Units: USD (``Decimal``), tokens (int), ms (float)."""

    ts: datetime
    request_id: str
    trace_id: str | None = None
    dialect: str | None = None
    provider: str | None = None
    requested_model: str | None = None
    served_model: str | None = None
    tier: str | None = None
    score: float | None = None
    route_reason: str | None = None
    router: str | None = None
    uncached_input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: Decimal | None = None
    baseline_usd: Decimal | None = None
    saved_usd: Decimal | None = None
    unpriced_reason: str | None = None
    status: str = "ok"
    http_status: int | None = None
    stream: bool = False
    latency_ms: float | None = None
    duration_ms: float | None = None
    key_id: str | None = None
    #: Shadow routing (schema v3; explicit-model requests only, ``None`` otherwise): the tier and
    #: model the router would have chosen, its score, the usage priced at that model (an
    #: estimate at equal tokens) and actual - what-if cost when positive (else 0).
    shadow_tier: str | None = None
    shadow_model: str | None = None
    shadow_score: float | None = None
    shadow_cost_usd: Decimal | None = None
    opportunity_usd: Decimal | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def input_tokens(self) -> int:
        """All input tokens (uncached + cache reads + cache writes); 0 without usage."""
        return sum(
            x or 0
            for x in (self.uncached_input_tokens, self.cache_read_tokens, self.cache_write_tokens, self.cache_write_1h_tokens)
        )

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens; 0 without usage."""
        return self.input_tokens + (self.output_tokens or 0)


#: Column order of the table = ``LedgerRow`` fields, tags split into ``tag_*`` columns + JSON.
ROW_FIELDS = [f.name for f in fields(LedgerRow) if f.name != "tags"]
COLUMNS = ROW_FIELDS + [f"tag_{t}" for t in TAG_COLUMNS] + ["tags"]
MONEY = ("cost_usd", "baseline_usd", "saved_usd", "shadow_cost_usd", "opportunity_usd")
#: The money columns of schema versions 1 and 2 (a migration from v1 adds only these twins at v2).
MONEY_V2 = ("cost_usd", "baseline_usd", "saved_usd")
#: Raw-table columns schema v3 adds (name, type key of ``TYPES``).
V3_COLUMNS = (("shadow_tier", "text"), ("shadow_model", "text"), ("shadow_score", "float"),
              ("shadow_cost_usd", "money"), ("opportunity_usd", "money"))


def to_db(row: LedgerRow, *, text_money: bool, text_time: bool) -> tuple[Any, ...]:
    """The row as a tuple in ``COLUMNS`` order. ``text_money``: money as plain decimal strings
    (SQLite); ``text_time``: ``ts`` as a fixed-width ISO string in UTC (sorts as time)."""
    vals: list[Any] = []
    for name in ROW_FIELDS:
        v = getattr(row, name)
        if name == "ts":
            v = v.astimezone(timezone.utc)
            if text_time:
                v = v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif name in MONEY and v is not None and text_money:
            v = format_usd(v)  # plain decimal, no exponent, no trailing zeros
        vals.append(v)
    vals.extend(row.tags.get(t) for t in TAG_COLUMNS)
    vals.append(json.dumps(row.tags, ensure_ascii=False, sort_keys=True))
    return tuple(vals)


def parse_ts(v: Any) -> datetime:
    """A stored time as an aware UTC ``datetime`` (SQLite text or a PostgreSQL timestamptz)."""
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc)
    return datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def from_db(values: tuple[Any, ...]) -> LedgerRow:
    """Inverse of ``to_db`` (either store)."""
    d = dict(zip(COLUMNS, values))
    kw: dict[str, Any] = {name: d[name] for name in ROW_FIELDS}
    kw["ts"] = parse_ts(kw["ts"])
    for m in MONEY:
        if kw[m] is not None and not isinstance(kw[m], Decimal):
            kw[m] = Decimal(kw[m])
    kw["stream"] = bool(kw["stream"])
    kw["tags"] = json.loads(d["tags"]) if d["tags"] else {}
    return LedgerRow(**kw)


def _trace_of(o: Outcome) -> str | None:
    return trace_id_of(o.trace_carrier.get("traceparent", ""))


def from_outcome(o: Outcome, ts: datetime, request_id: str) -> LedgerRow:
    """The ledger row of a finished request's ``record.Outcome``. ``ts``: when the request
    finished (the outcome's ``end_ns`` wins when set); ``request_id``: used when the outcome has
    none (Envoy's ``x-request-id``). Trace id: the W3C traceparent's; duration: ``end_ns -
    start_ns`` in ms. ``status``: the outcome's ``Result`` value; ``no_response`` when no
    response status arrived; ``provider_error`` for any other HTTP status >= 400. A ``blocked``
    row (budget 429, or 413 too large) costs exactly ``0`` USD: the provider was never called."""
    end_ns = o.end_ns
    if end_ns:
        ts = datetime.fromtimestamp(end_ns / 1e9, timezone.utc)
    usage = o.usage
    cost = o.cost
    base = o.baseline
    dec = o.decision
    result = Result(o.result)
    if result in (Result.BLOCKED, Result.CUT_STREAM):
        status = result
    elif result == Result.PROVIDER_ERROR or (o.status or 0) >= 400:
        status = Result.PROVIDER_ERROR
    elif not o.status:
        status = Result.NO_RESPONSE
    else:
        status = Result.OK
    total = cost.total_usd if cost is not None else None
    if status == Result.BLOCKED:
        total = Decimal(0)  # answered by us: the provider was never called
    unpriced = o.unpriced
    if total is None and unpriced is None:
        unpriced = status.value if status in (Result.PROVIDER_ERROR, Result.BLOCKED, Result.NO_RESPONSE) else "no_usage"
    sh = o.shadow
    sc = o.shadow_cost
    return LedgerRow(
        ts=ts,
        request_id=o.request_id or request_id,
        trace_id=_trace_of(o),
        dialect=o.dialect,
        provider=o.provider,
        requested_model=o.requested_model,
        served_model=o.served_model,
        tier=dec.tier if dec else None,
        score=dec.score if dec else None,
        route_reason=dec.reason if dec else None,
        router=dec.router if dec else None,
        uncached_input_tokens=usage.uncached_input_tokens if usage else None,
        cache_read_tokens=usage.cache_read_tokens if usage else None,
        cache_write_tokens=usage.cache_write_tokens if usage else None,
        cache_write_1h_tokens=usage.cache_write_1h_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        cost_usd=total,
        baseline_usd=base.total_usd if base is not None else None,
        saved_usd=o.saved_usd,
        unpriced_reason=unpriced if total is None else None,
        status=status.value,
        http_status=o.status or None,
        stream=bool(o.stream),
        latency_ms=o.latency_ms,
        duration_ms=o.duration_ms,
        key_id=o.key_id,
        shadow_tier=sh.tier if sh else None,
        shadow_model=sh.model if sh else None,
        shadow_score=sh.score if sh else None,
        shadow_cost_usd=sc.total_usd if sc is not None and total is not None else None,
        opportunity_usd=o.opportunity_usd if total is not None else None,
        tags=dict(o.tags),
    )


# ---------------------------------------------------------------------------- migrations
#: Types per store, filled into the DDL templates below.
TYPES = {
    "sqlite": {"ts": "TEXT", "money": "TEXT", "float": "REAL", "bool": "INTEGER", "int": "INTEGER", "text": "TEXT"},
    "postgres": {"ts": "TIMESTAMPTZ", "money": "NUMERIC", "float": "DOUBLE PRECISION", "bool": "BOOLEAN", "int": "BIGINT", "text": "TEXT"},
}

_V1_TABLE = f"""
CREATE TABLE {TABLE} (
  ts {{ts}} NOT NULL,
  request_id {{text}} NOT NULL,
  trace_id {{text}},
  dialect {{text}},
  provider {{text}},
  requested_model {{text}},
  served_model {{text}},
  tier {{text}},
  score {{float}},
  route_reason {{text}},
  router {{text}},
  uncached_input_tokens {{int}},
  cache_read_tokens {{int}},
  cache_write_tokens {{int}},
  cache_write_1h_tokens {{int}},
  output_tokens {{int}},
  reasoning_tokens {{int}},
  cost_usd {{money}},
  baseline_usd {{money}},
  saved_usd {{money}},
  unpriced_reason {{text}},
  status {{text}} NOT NULL,
  http_status {{int}},
  stream {{bool}} NOT NULL,
  latency_ms {{float}},
  duration_ms {{float}},
  key_id {{text}},
  tag_user {{text}},
  tag_feature {{text}},
  tag_team {{text}},
  tag_env {{text}},
  tag_session {{text}},
  tags {{text}} NOT NULL
)"""

#: (version, statements). Append only: a released version is never edited.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            _V1_TABLE,
            f"CREATE INDEX {TABLE}_ts ON {TABLE} (ts)",
            f"CREATE INDEX {TABLE}_key_ts ON {TABLE} (key_id, ts)",
            f"CREATE INDEX {TABLE}_team_ts ON {TABLE} (tag_team, ts)",
        ],
    ),
]


def statements(kind: str, version: int) -> list[str]:
    """DDL of migration ``version`` for store ``kind`` (``sqlite`` or ``postgres``)."""
    for v, stmts in MIGRATIONS:
        if v == version:
            return [s.format(**TYPES[kind]) for s in stmts]
    raise KeyError(version)


LATEST = MIGRATIONS[-1][0]
