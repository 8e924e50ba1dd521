"""Service settings: defaults, overridden by a YAML file, overridden by environment variables.

File: ``--config PATH`` or ``NADIR_CONFIG``. Environment: ``NADIR_LISTEN`` (``host:port``),
``NADIR_UDS`` (Unix socket path), ``NADIR_AUTO_MODEL``, ``NADIR_LOG_LEVEL``. A bad entry raises
``ConfigError`` naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nadir_extproc.dialects import DIALECTS, default_paths
from nadir_extproc.routing.policy import DEFAULT_TIERS, TierPolicy


class ConfigError(ValueError):
    """The configuration file or environment has an invalid entry (message names it)."""


class Settings(BaseModel):
    """All settings of the ext_proc service (units in the field names)."""

    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:50051"
    uds: str | None = None
    #: gRPC max send/receive message size; must exceed the largest body Envoy buffers for us
    #: (Envoy's per_connection_buffer_limit_bytes in envoy/envoy.yaml is 8 MiB).
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    #: On SIGTERM: stop accepting, let open streams finish within this many seconds.
    grace_period_s: float = Field(default=10.0, ge=0)
    #: The model value that asks for routing.
    auto_model: str = "auto"
    #: Exact request path -> dialect name.
    paths: dict[str, str] = Field(default_factory=default_paths)
    #: provider -> tier -> concrete model.
    tiers: dict[str, dict[str, str]] = Field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_TIERS.items()})
    #: provider -> baseline model for x-nadir-cost-saved and fallback when routing fails
    #: (default: the provider's strong tier).
    default_models: dict[str, str] = Field(default_factory=dict)
    log_level: str = "INFO"

    @field_validator("paths")
    @classmethod
    def _known_dialects(cls, v: dict[str, str]) -> dict[str, str]:
        for path, name in v.items():
            if name not in DIALECTS:
                raise ValueError(f"path {path!r}: unknown dialect {name!r} (known: {sorted(DIALECTS)})")
        return v

    @field_validator("tiers")
    @classmethod
    def _tiers_complete(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for provider, t in v.items():
            for tier in ("strong", "weak"):
                if not t.get(tier):
                    raise ValueError(f"tiers.{provider}: missing model for tier {tier!r}")
        return v

    def policy(self) -> TierPolicy:
        """The ``TierPolicy`` these settings describe."""
        return TierPolicy(tiers=self.tiers, default_models=self.default_models)


_ENV = {"NADIR_LISTEN": "listen", "NADIR_UDS": "uds", "NADIR_AUTO_MODEL": "auto_model", "NADIR_LOG_LEVEL": "log_level"}


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from defaults, then the YAML file at ``path`` (or ``$NADIR_CONFIG``), then env.

    Raises ``ConfigError`` for an unreadable file, a non-mapping document or an invalid entry.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = path or env.get("NADIR_CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"config file {path}: {e}") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping")
        data.update(loaded or {})
    for var, key in _ENV.items():
        if env.get(var):
            data[key] = env[var]
    try:
        return Settings(**data)
    except ValidationError as e:
        where = f"config file {path}" if path else "settings"
        msgs = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{where}: {msgs}") from e
