"""Service settings: defaults, overridden by a YAML file, overridden by environment variables.

File: ``--config PATH`` or ``NADIR_CONFIG``. Environment: ``NADIR_LISTEN`` (``host:port``),
``NADIR_UDS`` (Unix socket path), ``NADIR_HEALTH_LISTEN`` (``host:port``, health only), ``NADIR_AUTO_MODEL``, ``NADIR_LOG_LEVEL``,
``NADIR_PROMETHEUS_PORT`` (``telemetry.prometheus_port``); ``OTEL_*`` as in ``TelemetrySettings``;
``NADIR_STATE_DIR``, ``NADIR_LEDGER_DSN`` (``ledger.postgres_dsn``), ``NADIR_KEY_ID_SECRET``,
``NADIR_REDIS_URL`` / ``NADIR_REDIS_PASSWORD`` (``budget_redis.url`` / ``.password``),
``NADIR_SHADOW_SAMPLE_RATE`` (``shadow_routing.sample_rate``). A bad entry raises
``ConfigError`` naming it.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from nadir_extproc import headers as hn
from nadir_extproc.dialects import DIALECTS, default_paths
from nadir_extproc.routing.policy import DEFAULT_TIERS, TierPolicy, default_tiers


class ConfigError(ValueError):
    """The configuration file or environment has an invalid entry (message names it)."""


class TelemetrySettings(BaseModel):
    """OpenTelemetry export (``nadir_extproc.telemetry``). The standard ``OTEL_*`` environment
    variables are honoured by the OTel SDK itself: ``OTEL_SDK_DISABLED``, ``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT`` (used when
    ``otlp_endpoint`` is unset; SDK default ``localhost:4317``), ``OTEL_EXPORTER_OTLP_HEADERS``,
    ``OTEL_BSP_*`` (batch span processor), ``OTEL_METRIC_EXPORT_INTERVAL`` (ms),
    ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (``none`` turns that signal's export off).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: OTLP gRPC collector (``http://host:4317``; a bare ``host:port`` means plain-text gRPC).
    otlp_endpoint: str | None = None
    #: ``service.name`` unless ``OTEL_SERVICE_NAME`` is set.
    service_name: str = "nadir-extproc"
    #: Prometheus ``/metrics`` port (0 or None = no endpoint); env ``NADIR_PROMETHEUS_PORT``.
    prometheus_port: int | None = Field(default=None, ge=0, le=65535)
    prometheus_host: str = "127.0.0.1"
    #: Put prompt/response content on spans (``gen_ai.input.messages`` …). Off: never exported.
    capture_content: bool = False
    #: Also emit ``gen_ai.usage.cost`` (USD, float) for tools that display it.
    emit_usage_cost: bool = True
    #: Batch span processor queue bound (spans); beyond it spans are dropped and counted.
    max_queue_size: int = Field(default=2048, ge=1)


def _default_state_dir() -> str:
    """Where the service keeps its own files (key-id secret, SQLite ledger): ``$NADIR_STATE_DIR``,
    else ``$XDG_STATE_HOME/nadir-extproc``, else ``~/.local/state/nadir-extproc``."""
    if os.environ.get("NADIR_STATE_DIR"):
        return os.environ["NADIR_STATE_DIR"]
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "nadir-extproc")


class TagSettings(BaseModel):
    """Request tags (``nadir_extproc.tags``): which headers carry them and how they are checked."""

    model_config = ConfigDict(extra="forbid")

    #: tag name -> request header (lower case).
    headers: dict[str, str] = Field(
        default_factory=lambda: dict(hn.DEFAULT_TAG_HEADERS)
    )
    #: Generic form ``<generic_prefix><name>``; only names in ``allow`` are kept.
    generic_prefix: str = hn.TAG_PREFIX
    allow: list[str] = Field(default_factory=list)
    #: Longest accepted value, in characters; longer values are dropped and counted.
    max_len: int = Field(default=128, ge=1, le=4096)
    #: Keep the tag headers on the upstream request (default: removed before upstream).
    forward: bool = False
    #: Fall back to the body's user field (OpenAI ``user``, Anthropic ``metadata.user_id``).
    body_user: bool = True

    @field_validator("headers")
    @classmethod
    def _lower(cls, v: dict[str, str]) -> dict[str, str]:
        return {k: h.lower() for k, h in v.items()}


class KeyIdSettings(BaseModel):
    """API-key identity: key id = HMAC-SHA256(secret, key), first ``length`` hex characters.
    The secret comes from ``$NADIR_KEY_ID_SECRET``, else ``secret_path`` (default
    ``<state_dir>/key_id.secret``), generated with mode 0600 if absent."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    secret_path: str | None = None
    length: int = Field(default=16, ge=4, le=64)


class LedgerSettings(BaseModel):
    """The per-request ledger (``nadir_extproc.ledger``): SQLite in ``sqlite_dir`` (default
    ``<state_dir>/ledger``), or PostgreSQL when ``postgres_dsn`` (env ``NADIR_LEDGER_DSN``) is set."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    sqlite_dir: str | None = None
    postgres_dsn: str | None = None
    #: Rows waiting to be written; when full, new rows are dropped and counted.
    queue_size: int = Field(default=10000, ge=1)
    #: Rows per write transaction (at most: a batch is written after flush_interval_s however
    #: small). Each transaction updates one rollup row per distinct (hour, team, feature, env, key,
    #: model, status) in it, so bigger batches share those updates (bench/ledger: 2000 rows cost
    #: about a quarter less CPU per row than 500).
    batch_size: int = Field(default=2000, ge=1)
    #: Longest time a row waits before it is written, in seconds.
    flush_interval_s: float = Field(default=1.0, gt=0)
    #: On shutdown, how long to wait for the queue to be written, in seconds.
    close_timeout_s: float = Field(default=10.0, ge=0)
    #: Keep raw rows this many days (unset: forever); the writer prunes hourly. PostgreSQL drops
    #: whole monthly partitions, so rows stay up to a month longer. See docs/ledger.md.
    retention_days: int | None = Field(default=None, ge=1)
    #: Keep the daily rollups this many days (unset: forever); never less than ``retention_days``.
    rollup_retention_days: int | None = Field(default=None, ge=1)


class ShadowRoutingSettings(BaseModel):
    """Shadow routing (issue 21): for requests that name a concrete model, score the prompt with the
    same router call ``model: auto`` uses and record — in the ledger row, span and metrics, never in
    the response — the tier and model the router would have chosen, the what-if cost (this
    response's usage at that model's rates: an estimate) and the opportunity (actual minus what-if
    cost when positive). ``shadow_routing: false`` is accepted for ``enabled: false``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Share of explicit-model requests scored (0..1). 0 turns scoring off completely (no router
    #: call; each skipped request is counted as ``shadow_not_sampled``).
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)

    @property
    def active(self) -> bool:
        """Any request may be scored."""
        return self.enabled and self.sample_rate > 0

    def sampled(self) -> bool:
        """Whether to score this request: off or rate 0 never (the router is not called), rate 1
        always, else with probability ``sample_rate``."""
        import random

        rate = self.sample_rate
        return self.enabled and rate > 0.0 and (rate >= 1.0 or random.random() < rate)


class BudgetRule(BaseModel):
    """One budget (``nadir_extproc.budgets``): spend of requests sharing a ``scope`` value within a
    sliding ``window`` (seconds, or ``"90s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"month"`` = 30 days)
    against ``limit_usd``. ``scope``: ``key_id``, ``trace`` (W3C traceparent trace id), or a tag
    name (``team``, ``feature``, ``user``, ``env``, ``session``, …). ``match``: only that scope
    value; unset: every value has its own total. ``action``: ``alert`` or ``block``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    scope: str = Field(min_length=1)
    match: str | None = None
    window: int = Field(gt=0, le=366 * 86400)
    limit_usd: Decimal = Field(ge=0)
    action: Literal["alert", "block"] = "alert"
    #: While the shared budget store (``budget_redis``) is unreachable, a ``block`` rule decides on
    #: this process's local totals (``local``), lets every request through (``admit``) or refuses
    #: every request in its scope (``refuse``).
    on_redis_down: Literal["local", "admit", "refuse"] = "local"

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> Any:
        if isinstance(v, str):
            s = v.strip().lower()
            if s == "month":
                return 30 * 86400
            units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
            if s and s[-1] in units and s[:-1].strip().isdigit():
                return int(s[:-1]) * units[s[-1]]
            if s.isdigit():
                return int(s)
            raise ValueError(f"window {v!r}: use seconds or N s/m/h/d/w or 'month'")
        return v

    @field_validator("limit_usd", mode="before")
    @classmethod
    def _exact(cls, v: Any) -> Any:
        # YAML reads 0.0004 as a float; go through its shortest repr, not its binary value.
        return Decimal(repr(v)) if isinstance(v, float) else v


class BudgetReservationSettings(BaseModel):
    """What a request reserves at admission (``nadir_extproc.budgets.estimate``): its estimated
    maximum cost = input tokens ``ceil(body bytes / bytes_per_token)`` (0 = no input estimate) plus
    the request's output cap (``max_tokens`` …) or ``output_tokens[provider]`` (else
    ``output_tokens["default"]``), at the resolved model's rates. A reservation not settled within
    ``ttl_s`` seconds (request never finished) expires."""

    model_config = ConfigDict(extra="forbid")

    bytes_per_token: int = Field(default=4, ge=0)
    output_tokens: dict[str, int] = Field(default_factory=lambda: {"default": 512})
    ttl_s: float = Field(default=600.0, gt=0, le=86400)

    @field_validator("output_tokens")
    @classmethod
    def _non_negative(cls, v: dict[str, int]) -> dict[str, int]:
        for k, n in v.items():
            if n < 0:
                raise ValueError(f"output_tokens.{k}: must be >= 0")
        return v


class BudgetRedisSettings(BaseModel):
    """Shared budget totals in Redis or Valkey (``nadir_extproc.budgets.redis_store``); unset
    ``url`` keeps them in this process's memory. ``url``: ``redis://[[user]:password@]host:port/db``,
    ``rediss://`` for TLS (env ``NADIR_REDIS_URL``); ``password_file``: a file holding the password
    (a mounted Secret) or ``password`` (env ``NADIR_REDIS_PASSWORD``), used when the URL has none. ``timeout_ms`` bounds every Redis operation on
    the request path; ``retry_interval_s`` is how often an unreachable Redis is probed."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    #: Password when the URL has none (env ``NADIR_REDIS_PASSWORD``); never logged.
    password: SecretStr | None = None
    password_file: str | None = None
    timeout_ms: int = Field(default=100, ge=1, le=10000)
    retry_interval_s: float = Field(default=1.0, gt=0, le=300)
    key_prefix: str = Field(default="nadir:budget:", min_length=1)
    max_connections: int = Field(default=64, ge=1)
    #: TLS (``rediss://``): CA bundle, verification, client certificate and key (mutual TLS).
    tls_ca_file: str | None = None
    tls_verify: bool = True
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://, rediss:// (TLS) or unix://")
        return v or None


class ListenerTLS(BaseModel):
    """Gateway mode: mutual TLS on ``listen`` (``nadir_extproc.listeners``). The ext_proc presents
    ``cert_file``/``key_file`` and requires a client certificate signed by ``client_ca_file``; with
    ``allowed_client_sans`` the certificate must also carry one of those subject alternative names
    (DNS or URI, exact), else ``Process`` is ``PERMISSION_DENIED``. PEM files; re-read when they
    change (a renewed cert-manager Secret needs no restart)."""

    model_config = ConfigDict(extra="forbid")

    cert_file: str
    key_file: str
    #: CA bundle that signs the clients' (the gateway's) certificates. Required: no mTLS, no TLS.
    client_ca_file: str
    allowed_client_sans: list[str] = Field(default_factory=list)


#: The ``log_level`` values: Python's logging level names (``WARN`` and ``FATAL`` are aliases).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL")


class Settings(BaseModel):
    """All settings of the ext_proc service (units in the field names)."""

    model_config = ConfigDict(extra="forbid")

    #: ``ExternalProcessor`` (and health) on TCP ``host:port``. Must be loopback unless ``tls`` is
    #: set or ``allow_plaintext_listen`` (``nadir_extproc.listeners``, SECURITY.md). ``null`` (or
    #: empty): no TCP listener, only ``uds`` -- then not even another container of the pod, which
    #: shares its loopback, can reach ExternalProcessor (the k8s sidecar setting).
    listen: str | None = "127.0.0.1:50051"
    #: ``ExternalProcessor`` (and health) on this Unix socket too (sidecar: shared with Envoy).
    uds: str | None = None
    #: gRPC health ONLY on ``host:port`` (e.g. ``0.0.0.0:50052`` for the kubelet's probes on the
    #: pod IP); ``Process`` there is ``UNIMPLEMENTED``. Default: none. Env ``NADIR_HEALTH_LISTEN``.
    health_listen: str | None = None
    #: Gateway mode: mTLS on ``listen`` (see ``ListenerTLS``). Default: none (plain text).
    tls: ListenerTLS | None = None
    #: Serve ``ExternalProcessor`` in plain text on a non-loopback ``listen``. Only where the network
    #: itself authenticates callers (a mesh with mTLS and an authorization policy). Default: off.
    allow_plaintext_listen: bool = False
    #: gRPC max send/receive message size; must exceed the largest body Envoy buffers for us
    #: (Envoy's per_connection_buffer_limit_bytes in envoy/envoy.yaml is 8 MiB).
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    #: A request body above this many bytes gets a 413 from us (``nadir_extproc.refusal``), in the
    #: API's error format. Envoy's own buffer limit (8 MiB, envoy/envoy.yaml) answers HTTP/1.1
    #: clients first; HTTP/2 clients are not capped by it (extproc-facts "Size limits"). Must sit
    #: below ``max_message_bytes`` (the gRPC limit) with room for the message's framing, or a body
    #: between the two never reaches us and passes unprocessed. 0 turns the check off.
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    #: On SIGTERM: stop accepting, let open streams finish within this many seconds.
    grace_period_s: float = Field(default=10.0, ge=0)
    #: The model value that asks for routing.
    auto_model: str = "auto"
    #: Exact request path -> dialect name.
    paths: dict[str, str] = Field(default_factory=default_paths)
    #: provider -> tier -> concrete model.
    tiers: dict[str, dict[str, str]] = Field(default_factory=default_tiers)
    #: provider -> model used when routing fails (router error); default: the provider's strong
    #: tier. (The savings baseline is ``baseline_models``.)
    default_models: dict[str, str] = Field(default_factory=dict)
    #: Router: ``onnx`` (the trained classifier; the rule router answers when its model does not
    #: load) or ``rules``. Env ``NADIR_ROUTER``.
    router: Literal["onnx", "rules"] = "onnx"
    #: ONNX router model file (default: the one shipped in the package). Env ``NADIR_ROUTER_MODEL``.
    router_model: str | None = None
    #: Route policy YAML: score thresholds, tiers, model capabilities (``nadir_extproc.routing.policy``);
    #: ``tiers``/``default_models`` set here win over the file's. Env ``NADIR_ROUTER_POLICY``.
    router_policy: str | None = None
    #: provider (route) -> model whose cost at the same usage is the savings baseline
    #: (``x-nadir-cost-saved`` = baseline cost - actual cost). Default: the most expensive of the
    #: route's tier models at that usage (``nadir_extproc.pricing.savings``).
    baseline_models: dict[str, str] = Field(default_factory=dict)
    #: Operator price file (YAML/TOML) merged over the catalogue (``nadir_extproc.pricing.pricefile``).
    price_file: str | None = None
    #: Python logging level (``LOG_LEVELS``, any case). Env ``NADIR_LOG_LEVEL``.
    log_level: str = "INFO"
    #: Dialects whose streamed requests get ``stream_options.include_usage`` added when the client
    #: did not ask (OpenAI sends streamed usage only then); the added usage chunk is removed from
    #: what the client receives. Remove a dialect for upstreams that reject the field (old Azure
    #: api-versions, some OpenAI-compatible servers).
    inject_stream_usage: list[str] = Field(default_factory=lambda: ["openai_chat"])
    #: Bound on one SSE event held while it is incomplete (bytes); larger events are forwarded
    #: unparsed and counted (``sse_event_overflow``).
    max_sse_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: OpenTelemetry spans and metrics (see ``TelemetrySettings``).
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    #: Service state (key-id secret, SQLite ledger); env ``NADIR_STATE_DIR``.
    state_dir: str = Field(default_factory=_default_state_dir)
    #: Request tags, key ids, the ledger and budgets.
    tags: TagSettings = Field(default_factory=TagSettings)
    key_id: KeyIdSettings = Field(default_factory=KeyIdSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    budgets: list[BudgetRule] = Field(default_factory=list)
    #: Reservations at admission and the shared store of budget totals.
    budget_reservations: BudgetReservationSettings = Field(default_factory=BudgetReservationSettings)
    budget_redis: BudgetRedisSettings = Field(default_factory=BudgetRedisSettings)
    #: What routing would save on explicit-model traffic (issue 21; ``ShadowRoutingSettings``).
    shadow_routing: ShadowRoutingSettings = Field(default_factory=ShadowRoutingSettings)

    @field_validator("shadow_routing", mode="before")
    @classmethod
    def _shadow_bool(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_known(cls, v: Any) -> Any:
        """A Python logging level name, any case (``logging.basicConfig`` would raise at start-up)."""
        if isinstance(v, str) and v.strip().upper() in LOG_LEVELS:
            return v.strip().upper()
        raise ValueError(f"log_level {v!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")

    @field_validator("listen", "health_listen", "uds", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @model_validator(mode="after")
    def _request_fits_grpc(self) -> "Settings":
        if self.max_request_bytes and self.max_request_bytes > self.max_message_bytes - 64 * 1024:
            raise ValueError(f"max_request_bytes ({self.max_request_bytes}) must be at least 64 KiB below "
                             f"max_message_bytes ({self.max_message_bytes}), the gRPC message limit")
        return self

    @model_validator(mode="after")
    def _listeners_trusted(self) -> "Settings":
        from nadir_extproc.listeners import check_trust

        check_trust(self)  # ListenerError is a ValueError: reported as a bad setting
        return self

    @field_validator("paths")
    @classmethod
    def _known_dialects(cls, v: dict[str, str]) -> dict[str, str]:
        for path, name in v.items():
            if name not in DIALECTS:
                raise ValueError(f"path {path!r}: unknown dialect {name!r} (known: {sorted(DIALECTS)})")
        return v

    @field_validator("tiers", "default_models", "baseline_models")
    @classmethod
    def _provider_ids(cls, v: dict[str, Any], info: Any) -> dict[str, Any]:
        """Keys are provider ids: a name the README uses for a known provider (``gemini``,
        ``Vertex AI``, ``xAI``) becomes its registry id (``google``, ``vertex_ai``, ``xai``), so
        the request path, ``cost`` and ``check`` find it; other keys (price-file providers) stay."""
        from nadir_extproc.providers.known import lookup

        out: dict[str, Any] = {}
        for name, value in v.items():
            entry = lookup(name)
            key = entry.id if entry is not None else name
            if key in out:
                raise ValueError(f"{info.field_name}: {name!r} and another key both name provider {key!r}")
            out[key] = value
        return out

    @field_validator("tiers")
    @classmethod
    def _tiers_complete(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        import difflib

        from nadir_extproc.routing.policy import TIER_ORDER

        known = [t for t in ("weak", "mid", "strong") if t in TIER_ORDER] or list(TIER_ORDER)
        for provider, t in v.items():
            for tier in ("strong", "weak"):
                if not t.get(tier):
                    # a typo (``strongest``) is the usual cause: name the unknown key, closest known name
                    unknown = [k for k in t if k not in known]
                    hints = []
                    for k in unknown:
                        close = difflib.get_close_matches(k, known, n=1, cutoff=0.4)
                        hints.append(f"unknown tier {k!r}" + (f" (did you mean {close[0]}?)" if close else ""))
                    extra = f"; {', '.join(hints)}; tiers are {', '.join(known)}" if hints else ""
                    raise ValueError(f"tiers.{provider}: missing model for tier {tier!r}{extra}")
        return v

    @field_validator("budgets")
    @classmethod
    def _budget_names_unique(cls, v: list[BudgetRule]) -> list[BudgetRule]:
        seen: set[str] = set()
        for rule in v:
            if rule.name in seen:
                raise ValueError(f"budgets: two rules are named {rule.name!r}; each rule needs its own name")
            seen.add(rule.name)
        return v

    @field_validator("router_policy")
    @classmethod
    def _policy_loads(cls, v: str | None) -> str | None:
        if v:
            from nadir_extproc.routing.policy import PolicyError, load_policy

            if not Path(v).is_file():
                raise ValueError(_no_file(v))
            try:
                load_policy(v)
            except PolicyError as e:
                raise ValueError(str(e)) from None
        return v

    def policy(self) -> TierPolicy:
        """The ``TierPolicy`` these settings describe: the ``router_policy`` file (else the built-in
        policy), with ``tiers`` and ``default_models`` from these settings where they are set."""
        import dataclasses

        from nadir_extproc.routing.policy import load_policy

        base = load_policy(self.router_policy) if self.router_policy else TierPolicy()
        tiers = self.tiers if (not self.router_policy or "tiers" in self.model_fields_set) else base.tiers
        return dataclasses.replace(
            base, tiers=tiers, default_models={**base.default_models, **self.default_models}, _caps_cache={}
        )


_ENV = {
    "NADIR_LISTEN": "listen", "NADIR_UDS": "uds", "NADIR_HEALTH_LISTEN": "health_listen", "NADIR_AUTO_MODEL": "auto_model", "NADIR_LOG_LEVEL": "log_level",
    "NADIR_ROUTER": "router", "NADIR_ROUTER_MODEL": "router_model", "NADIR_ROUTER_POLICY": "router_policy",
}


def yaml_error_line(e: Exception) -> str:
    """One line for a YAML syntax error: ``line L, column C: <problem>`` (1-based, PyYAML's marks).

    PyYAML's own message spans several lines (the context, a caret drawing, the problem); a
    command's error must be one line. Any other exception is returned as ``str(e)`` on one line.
    """
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None and e.problem:
        return f"line {e.problem_mark.line + 1}, column {e.problem_mark.column + 1}: {e.problem} (YAML syntax)"
    return " ".join(str(e).split())


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing a mapping that repeats a key (PyYAML alone keeps the last
    silently). Merge keys (``<<``) are left to PyYAML: an explicit key may override a merged one."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=False)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: PyYAML reports it itself
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first + 1}); PyYAML would keep "
                        "only the last", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def settings_error(message: str, path: str | Path | None) -> str:
    """``config file PATH: <message>`` (``settings: <message>`` without a file): every settings
    error line from ``check`` and ``serve`` starts the same way. Already prefixed: unchanged."""
    where = f"config file {path}" if path else "settings"
    return message if message.startswith(f"{where}: ") else f"{where}: {message}"


def _no_file(path: str) -> str:
    """``no such file X`` with where a relative path was looked for."""
    p = Path(path).expanduser()
    where = "" if p.is_absolute() else f" (a relative path is read from the current directory: {p.resolve()})"
    return f"no such file {path}{where}"


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from defaults, then the YAML file at ``path`` (or ``$NADIR_CONFIG``), then env.

    Raises ``ConfigError`` for an unreadable file, a non-mapping document or an invalid entry.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = path or env.get("NADIR_CONFIG")
    if path:
        try:
            loaded = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
        except IsADirectoryError:
            raise ConfigError(f"config file {path}: is a folder, not a file (give the settings file's path)") from None
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: no such file (copy settings.example.yaml from the repository "
                              "to start one)") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path}: {yaml_error_line(e)}") from e
        except OSError as e:
            raise ConfigError(f"config file {path}: {e}") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping")
        data.update(loaded or {})
    for var, key in _ENV.items():
        if env.get(var):
            data[key] = env[var]
    if env.get("NADIR_STATE_DIR"):
        data["state_dir"] = env["NADIR_STATE_DIR"]
    if env.get("NADIR_LEDGER_DSN"):
        data["ledger"] = {**(data.get("ledger") or {}), "postgres_dsn": env["NADIR_LEDGER_DSN"]}
    for var, key in (("NADIR_REDIS_URL", "url"), ("NADIR_REDIS_PASSWORD", "password")):
        if env.get(var):
            data["budget_redis"] = {**(data.get("budget_redis") or {}), key: env[var]}
    if env.get("NADIR_SHADOW_SAMPLE_RATE"):
        sr = data.get("shadow_routing")
        sr = {"enabled": sr} if isinstance(sr, bool) else dict(sr or {})
        data["shadow_routing"] = {**sr, "sample_rate": env["NADIR_SHADOW_SAMPLE_RATE"]}
    if env.get("NADIR_PROMETHEUS_PORT"):
        data["telemetry"] = {**(data.get("telemetry") or {}), "prometheus_port": env["NADIR_PROMETHEUS_PORT"]}
    try:
        return Settings(**data)
    except ValidationError as e:
        msgs = "; ".join(_error_text(err) for err in e.errors())
        raise ConfigError(settings_error(msgs, path)) from e


def _error_text(err: Any) -> str:
    """One pydantic error as ``key: what is wrong``; an unknown key names the closest known keys
    (a typo such as ``baseline_model`` otherwise reads "Extra inputs are not permitted")."""
    import difflib

    key = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden" and err["loc"]:
        model: Any = Settings
        for part in err["loc"][:-1]:  # the section the key sits in (telemetry, ledger …)
            field = getattr(model, "model_fields", {}).get(part)
            ann = getattr(field, "annotation", None)
            model = next((a for a in (ann, *getattr(ann, "__args__", ())) if hasattr(a, "model_fields")), None)
            if model is None:
                break
        known = list(getattr(model, "model_fields", {})) if model is not None else []
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=3, cutoff=0.6)
        msg = ("unknown key" + (f" (did you mean {', '.join(close)}?)" if close else "")
               + "; every key is listed in settings.example.yaml")
    if key and msg.startswith((f"{key}.", f"{key}:")):  # the validator already names the key ("tiers.openai: …")
        return msg
    return f"{key}: {msg}" if key else msg


def check_models(settings: Settings) -> None:
    """Every model the settings name -- ``tiers.<provider>.<tier>``, ``default_models.<provider>``,
    ``baseline_models.<provider>`` -- must resolve for its provider in the genai-prices catalogue or
    in the settings' price file (``price_file``: loaded and validated here too, not installed).

    Raises ``ConfigError`` naming every bad key, each with the closest catalogue names
    (``difflib``), e.g. ``tiers.openai.weak: no model 'gpt-4o-mni' for provider openai (closest:
    gpt-4o-mini, ...)``. A provider key the registry knows (``vertex_ai``, ``azure``, ``gemini``)
    is looked up under its catalogue id. A tier name that is a likely typo of a declared tier
    (``routing.policy.stray_tiers``: ``midd`` next to ``weak``/``strong``, tiers declared by the
    policy's ``order`` and ``thresholds``) is an error too, naming the closest tier; an undeclared
    name unlike any declared one is a pin-only tier (``check`` warns about it, exit 0).
    """
    import difflib

    from nadir_extproc.pricing import catalogue
    from nadir_extproc.pricing.pricefile import PriceFileError, load_price_file
    from nadir_extproc.providers import known

    overrides = None
    if settings.price_file:
        if not Path(settings.price_file).is_file():
            raise ConfigError(f"price_file: {_no_file(settings.price_file)}")
        try:
            overrides = load_price_file(settings.price_file)
        except PriceFileError as e:
            raise ConfigError(f"price_file: {e}") from None
    catalogue.load()
    try:
        policy = settings.policy()  # the router_policy file's tiers too, where settings do not set them
    except ValueError as e:
        raise ConfigError(f"router_policy: {e}") from None
    from nadir_extproc.routing.policy import stray_tiers

    declared = ", ".join(dict.fromkeys([*policy.order, *policy.thresholds]))
    problems = [f"tiers.{prov}.{tier}: unknown tier (did you mean {close}?); tiers are {declared} "
                "(a tier of your own needs its name in a router_policy file's order or thresholds)"
                for prov, tier, close in stray_tiers(policy) if close is not None]
    named: list[tuple[str, str, str]] = []  # (key, provider, model)
    for prov, tiers in policy.tiers.items():
        named += [(f"tiers.{prov}.{tier}", prov, m) for tier, m in tiers.items()]
    named += [(f"default_models.{prov}", prov, m) for prov, m in policy.default_models.items()]
    named += [(f"baseline_models.{prov}", prov, m) for prov, m in settings.baseline_models.items()]
    for key, prov, model in named:
        entry = known.get(prov)
        pid = entry.catalogue_id if entry is not None else catalogue.PROVIDER_IDS.get(prov.strip().lower(), prov.strip().lower())
        low = model.strip().lower()
        if overrides is not None and ((pid, low) in overrides.models or (pid, low) in overrides.aliases):
            continue
        if catalogue.resolve_in_catalogue(pid, model) is not None:
            continue
        cat = catalogue._providers().get(pid)  # noqa: SLF001 - same package
        names = [m.id for m in cat.models] if cat is not None else []
        names += [m for (p, m) in (overrides.models if overrides is not None else {}) if p == pid]
        close = difflib.get_close_matches(low, names, n=3, cutoff=0.6)
        where = f"provider {prov}" if cat is not None or names else f"provider {prov} (not in the catalogue{' or the price file' if overrides else ''})"
        hint = f"closest: {', '.join(close)}" if close else "add it to a price_file"
        problems.append(f"{key}: no model {model!r} for {where} ({hint})")
    if problems:
        raise ConfigError("; ".join(problems))
