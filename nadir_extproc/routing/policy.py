"""Tier policy: score thresholds -> tier, tier -> concrete model per provider, and the hard constraints.

A route policy says three things (the YAML file of ``load_policy`` has one section for each):

- ``thresholds``: tier -> lowest score (P(strong model needed), 0..1) that selects it; the tier with
  the highest threshold not above the score wins. Default ``DEFAULT_THRESHOLDS``.
- ``tiers``: provider -> tier -> model. Tiers are ordered cheapest first by ``order`` (default
  ``weak``, ``mid``, ``strong``). A provider may lack a tier (``mid``): a request for it goes to the
  next *stronger* tier the provider has, else the next weaker one.
- ``models``: model -> capabilities (``context_tokens``, ``vision``, ``tools``). A model not listed
  gets ``context_tokens`` from the genai-prices catalogue's ``context_window`` (``None`` = unknown,
  not enforced) and is assumed to accept images and tools.

Hard constraints (``TierPolicy.pick``) override the score: the request's estimated prompt tokens must
fit the model's context window, a request with images needs a vision model, a request with tools (or
tool calls/results in its history) needs a tool-capable model. When the chosen tier's model fails a
constraint, the next stronger tier's model is tried, then the weaker ones; the constraints that moved
the choice are named in the decision's reason (``+context``, ``+vision``, ``+tools``).

Sources of the default capabilities: each provider's model pages (OpenAI platform "Models", Anthropic
"Models overview", Google "Gemini models", read 2025) and genai-prices 0.2.3 ``context_window``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Built-in tier maps (list-price small / mid / frontier model of each provider). A provider without
#: a ``mid`` model sends the mid band to its strong tier.
DEFAULT_TIERS: dict[str, dict[str, str]] = {
    "openai": {"strong": "gpt-4o", "mid": "gpt-4.1-mini", "weak": "gpt-4o-mini"},
    "anthropic": {"strong": "claude-sonnet-4-5", "weak": "claude-haiku-4-5"},
    "google": {"strong": "gemini-2.5-pro", "weak": "gemini-2.5-flash"},
}


def default_tiers() -> dict[str, dict[str, str]]:
    """A fresh copy of ``DEFAULT_TIERS`` (provider -> routing tier -> model): the one place the
    default tier map is built (policy, policy file and settings defaults)."""
    return {k: dict(v) for k, v in DEFAULT_TIERS.items()}

#: Tiers cheapest first.
TIER_ORDER: tuple[str, ...] = ("weak", "mid", "strong")

#: tier -> lowest score that selects it. Calibrated by ``router train`` (``routing/calibrate.py``) on the
#: cross-validated scores of arena-bench-v1 chat prompts: ``mid`` recovers 80 % of the GPT-4-vs-Mixtral
#: quality gap when the mid band goes strong (two-tier providers), ``strong`` 50 %. Source of truth:
#: ``routing/model/calibration.json`` (a test keeps them equal); recalibrate: ``nadir-extproc router calibrate``.
DEFAULT_THRESHOLDS: dict[str, float] = {"weak": 0.0, "mid": 0.211378, "strong": 0.583837}


@dataclass(frozen=True, slots=True)
class ModelCaps:
    """What a model accepts: ``context_tokens`` (input window in tokens, ``None`` = unknown),
    ``vision`` (image input), ``tools`` (function/tool calling)."""

    context_tokens: int | None = None
    vision: bool = True
    tools: bool = True


#: Capabilities of the default models and of the example policy's models.
DEFAULT_CAPABILITIES: dict[str, ModelCaps] = {
    "gpt-4o-mini": ModelCaps(128_000, True, True),
    "gpt-4.1-mini": ModelCaps(1_047_576, True, True),
    "gpt-4.1": ModelCaps(1_047_576, True, True),
    "gpt-4o": ModelCaps(128_000, True, True),
    "gpt-5-nano": ModelCaps(400_000, True, True),
    "gpt-5-mini": ModelCaps(400_000, True, True),
    "gpt-5": ModelCaps(400_000, True, True),
    "claude-haiku-4-5": ModelCaps(200_000, True, True),
    "claude-sonnet-4-5": ModelCaps(200_000, True, True),
    "claude-opus-4-5": ModelCaps(200_000, True, True),
    "gemini-2.5-flash-lite": ModelCaps(1_048_576, True, True),
    "gemini-2.5-flash": ModelCaps(1_048_576, True, True),
    "gemini-2.5-pro": ModelCaps(1_048_576, True, True),
}

#: Characters per token assumed when estimating prompt tokens (deliberately low, so the estimate
#: errs high: English averages about 4 characters per token, code and other scripts fewer).
CHARS_PER_TOKEN = 3


@dataclass(frozen=True, slots=True)
class Needs:
    """What a request requires of a model: ``prompt_tokens`` (estimate), ``images``, ``tools``."""

    prompt_tokens: int = 0
    images: bool = False
    tools: bool = False


@dataclass(frozen=True, slots=True)
class Pick:
    """A policy choice: final ``tier`` and ``model``, and ``notes`` = constraints that changed it."""

    tier: str
    model: str
    notes: tuple[str, ...] = ()


def request_needs(prompt: str, body: Mapping[str, Any] | None, dialect: str | None = None) -> Needs:
    """What a request needs, from its prompt text and parsed body.

    - ``prompt_tokens`` = ceil(len(prompt) / ``CHARS_PER_TOKEN``).
    - ``images`` / ``tools``: as the request's dialect finds them (``Dialect.needs_shape``: image
      parts, tool declarations, tool traffic in the history); ``dialect`` unknown or ``None``: any
      API's shape (``dialects.needs``). Never raises.
    """
    from nadir_extproc import dialects

    images, tools = dialects.needs(dialect, body)
    return Needs(math.ceil(len(prompt) / CHARS_PER_TOKEN), images, tools)


@dataclass(frozen=True)
class TierPolicy:
    """``tiers[provider][tier] -> model``; ``default_models[provider]`` is the fallback when routing
    fails (defaults to the strong tier; the savings baseline is ``Settings.baseline_models``); ``thresholds``,
    ``capabilities`` and ``order`` as in the module docstring."""

    tiers: dict[str, dict[str, str]] = field(default_factory=default_tiers)
    default_models: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    capabilities: dict[str, ModelCaps] = field(default_factory=lambda: dict(DEFAULT_CAPABILITIES))
    order: tuple[str, ...] = TIER_ORDER
    _caps_cache: dict[tuple[str, str], ModelCaps] = field(default_factory=dict, repr=False, compare=False)

    def model(self, provider: str, tier: str) -> str:
        """Concrete model for ``tier`` of ``provider``; raises ``KeyError`` when not configured."""
        return self.tiers[provider][tier]

    def tiers_key(self, provider: str, models_of: str | None = None) -> str:
        """The provider id whose tier map (and savings baseline) applies to a request going to
        ``provider``: its own when this policy has a tier map for it, else ``models_of``, the
        provider whose models it serves (``Provider.models_of``: Vertex AI -> google)."""
        return provider if provider in self.tiers or not models_of else models_of

    def route(self, router: Any, request: Any) -> Any:
        """``router.route(request)`` (a ``Decision``); when the router raises, the route's default
        model (``default_model``, reason ``router_error``, counted), or the error again when the
        route has none."""
        try:
            return router.route(request)
        except Exception as e:  # noqa: BLE001 — fall back to the route's default model
            from nadir_extproc.routing.base import Decision
            from nadir_extproc.stats import count

            count("router_error", f"{type(e).__name__}: {e}")
            fallback = self.default_model(request.provider)
            if fallback is None:
                raise
            return Decision(model=fallback, tier="default", score=None, reason="router_error", router="fallback")

    def default_model(self, provider: str) -> str | None:
        """Baseline/fallback model of ``provider`` (explicit default, else the strong tier)."""
        m = self.default_models.get(provider)
        if m:
            return m
        return self.tiers.get(provider, {}).get("strong")

    def decide(self, request: Any, router: str, judge: Any, pinned_score: float | None = None) -> Any:
        """The routing decision for ``request`` (a ``RouteRequest``), the same for every router:
        the client's pinned routing tier (``x-nadir-tier``) wins (reason ``pinned``, score
        ``pinned_score``); else ``judge()`` -> ``(tier, reason, score)`` is the router's own call,
        with an ignored pin noted in the reason; then ``pick`` maps the tier to the provider's
        model under the hard constraints, which it notes in the reason. Returns a ``Decision``."""
        from nadir_extproc.routing.base import Decision

        pinned, ignored = self.pin(request.pinned_tier)
        if pinned:
            tier, reason, score = pinned, "pinned", pinned_score
        else:
            tier, reason, score = judge()
            reason = "+".join(filter(None, (reason, ignored)))
        pick = self.pick(request.provider, tier, request_needs(request.prompt, request.body, request.dialect))
        return Decision(model=pick.model, tier=pick.tier, score=score, reason="+".join((reason, *pick.notes)), router=router)

    def pin(self, raw: str | None) -> tuple[str | None, str | None]:
        """``(tier, None)`` for a client pin (``x-nadir-tier``) naming a known tier, any case —
        ``pick`` then maps a tier the provider lacks (``mid`` on Anthropic) to its next stronger one;
        ``(None, "pin_ignored")`` for a value that names no tier; ``(None, None)`` without a pin."""
        if not raw or not raw.strip():
            return None, None
        t = raw.strip().lower()
        known = set(self.order) | {k for tiers in self.tiers.values() for k in tiers}
        return (t, None) if t in known else (None, "pin_ignored")

    def tier_for_score(self, score: float) -> str:
        """The tier whose threshold is the highest one ``<= score`` (the lowest tier if none is)."""
        best, best_t = None, -math.inf
        for tier, t in self.thresholds.items():
            if t <= score and t >= best_t:
                best, best_t = tier, t
        if best is None:
            best = min(self.thresholds, key=self.thresholds.__getitem__)
        return best

    def caps(self, provider: str, model: str) -> ModelCaps:
        """Capabilities of ``model`` (policy entry, else catalogue context window, else unknown)."""
        key = (provider, model)
        got = self._caps_cache.get(key)
        if got is None:
            got = self.capabilities.get(model)
            if got is None:
                got = ModelCaps(context_tokens=_catalogue_context(provider, model))
            self._caps_cache[key] = got
        return got

    def _fails(self, provider: str, model: str, needs: Needs) -> list[str]:
        c = self.caps(provider, model)
        out = []
        if c.context_tokens is not None and needs.prompt_tokens > c.context_tokens:
            out.append("context")
        if needs.images and not c.vision:
            out.append("vision")
        if needs.tools and not c.tools:
            out.append("tools")
        return out

    def pick(self, provider: str, tier: str, needs: Needs = Needs()) -> Pick:
        """The model for ``tier`` of ``provider`` that satisfies ``needs`` (module docstring).

        A tier the provider lacks starts at its next stronger tier (else weaker). When no tier's
        model satisfies every constraint, the starting tier is kept with note ``unsatisfiable``.
        Raises ``KeyError`` for a provider without tiers."""
        have = self.tiers[provider]
        ranked = [t for t in self.order if t in have] + [t for t in have if t not in self.order]
        if not ranked:
            raise KeyError(provider)
        if tier in ranked:
            i = ranked.index(tier)
        else:
            pos = self.order.index(tier) if tier in self.order else len(self.order)
            stronger = [j for j, t in enumerate(ranked) if t in self.order and self.order.index(t) > pos]
            i = stronger[0] if stronger else len(ranked) - 1
        candidates = ranked[i:] + ranked[:i][::-1]
        first = candidates[0]
        fails = self._fails(provider, have[first], needs)
        if not fails:
            return Pick(first, have[first])
        for t in candidates[1:]:
            if not self._fails(provider, have[t], needs):
                return Pick(t, have[t], tuple(fails))
        return Pick(first, have[first], ("unsatisfiable",))


#: How close (``difflib`` ratio) an undeclared tier name must be to a declared one to be read as a
#: typo of it (``midd`` -> ``mid`` 0.86, ``strnog`` -> ``strong`` 0.83; ``medium`` -> ``mid`` 0.44
#: is a name of its own).
TYPO_CUTOFF = 0.75


def stray_tiers(policy: TierPolicy) -> list[tuple[str, str, str | None]]:
    """``(provider, tier, closest)`` for every tier key in ``policy.tiers`` that the policy does not
    declare. A policy declares its tiers in ``order`` and ``thresholds`` (built-in: ``weak``,
    ``mid``, ``strong``; a ``router_policy`` file may name its own there). An undeclared tier has no
    threshold, so the router never picks it and only an ``x-nadir-tier`` pin naming it exactly
    reaches it; ``pick`` ranks it above every declared tier. ``closest`` is the declared tier the
    name is a likely typo of (same name in another case, or ``difflib`` ratio >= ``TYPO_CUTOFF``),
    else ``None`` (a pin-only tier of the operator's own)."""
    import difflib

    declared = list(dict.fromkeys([*policy.order, *policy.thresholds]))
    out: list[tuple[str, str, str | None]] = []
    for provider, tiers in policy.tiers.items():
        for tier in tiers:
            if tier in declared:
                continue
            same = [d for d in declared if d.lower() == tier.strip().lower()]
            close = same or difflib.get_close_matches(tier.lower(), declared, n=1, cutoff=TYPO_CUTOFF)
            out.append((provider, tier, close[0] if close else None))
    return out


def _catalogue_context(provider: str, model: str) -> int | None:
    try:
        from nadir_extproc.pricing import catalogue

        m = catalogue.resolve(provider, model)
    except Exception:  # noqa: BLE001 — an unknown context window is not enforced
        return None
    cw = getattr(getattr(m, "info", None), "context_window", None) if m is not None else None
    return cw if isinstance(cw, int) and cw > 0 else None


class _CapsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context_tokens: int | None = Field(default=None, gt=0)
    vision: bool = True
    tools: bool = True


class _PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    tiers: dict[str, dict[str, str]] = Field(default_factory=default_tiers)
    default_models: dict[str, str] = Field(default_factory=dict)
    models: dict[str, _CapsFile] = Field(default_factory=dict)
    order: list[str] = Field(default_factory=lambda: list(TIER_ORDER))


class PolicyError(ValueError):
    """The route policy file is unreadable or has an invalid entry (the message names it)."""


def policy_from_mapping(data: Mapping[str, Any]) -> TierPolicy:
    """A ``TierPolicy`` from a mapping shaped like the policy YAML (module docstring).

    Raises ``PolicyError`` for a bad entry: unknown key, threshold outside [0, 1], a provider without
    ``strong`` and ``weak`` models, a threshold for a tier no provider defines."""
    try:
        f = _PolicyFile(**data)
    except ValidationError as e:
        raise PolicyError("; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())) from e
    for tier, t in f.thresholds.items():
        if not 0.0 <= t <= 1.0:
            raise PolicyError(f"thresholds.{tier}: {t} is outside [0, 1]")
    for provider, m in f.tiers.items():
        for tier in ("strong", "weak"):
            if not m.get(tier):
                raise PolicyError(f"tiers.{provider}: missing model for tier {tier!r}")
    known = {t for m in f.tiers.values() for t in m}
    for tier in f.thresholds:
        if tier not in known:
            raise PolicyError(f"thresholds.{tier}: no provider defines tier {tier!r}")
    caps = dict(DEFAULT_CAPABILITIES)
    caps.update({k: ModelCaps(v.context_tokens, v.vision, v.tools) for k, v in f.models.items()})
    return TierPolicy(
        tiers=f.tiers,
        default_models=f.default_models,
        thresholds=f.thresholds,
        capabilities=caps,
        order=tuple(f.order),
    )


def load_policy(path: str | Path) -> TierPolicy:
    """The ``TierPolicy`` of the YAML file at ``path`` (sections ``thresholds``, ``tiers``,
    ``default_models``, ``models``, ``order``; each optional, defaulting to the built-ins).

    Raises ``PolicyError`` for an unreadable file, a non-mapping document or a bad entry."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise PolicyError(f"policy file {path}: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path}: top level must be a mapping")
    try:
        return policy_from_mapping(data)
    except PolicyError as e:
        raise PolicyError(f"policy file {path}: {e}") from e
