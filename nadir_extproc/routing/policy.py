"""Tier policy: which concrete model serves each tier, per provider."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Built-in defaults (list-price frontier vs small model of each provider).
DEFAULT_TIERS: dict[str, dict[str, str]] = {
    "openai": {"strong": "gpt-4o", "weak": "gpt-4o-mini"},
    "anthropic": {"strong": "claude-sonnet-4-5", "weak": "claude-haiku-4-5"},
    "google": {"strong": "gemini-2.5-pro", "weak": "gemini-2.5-flash"},
}


@dataclass(frozen=True)
class TierPolicy:
    """``tiers[provider][tier] -> model``; ``default_models[provider]`` is the baseline model
    for savings and the fallback when routing fails (defaults to the strong tier)."""

    tiers: dict[str, dict[str, str]] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_TIERS.items()})
    default_models: dict[str, str] = field(default_factory=dict)

    def model(self, provider: str, tier: str) -> str:
        """Concrete model for ``tier`` of ``provider``; raises ``KeyError`` when not configured."""
        return self.tiers[provider][tier]

    def default_model(self, provider: str) -> str | None:
        """Baseline/fallback model of ``provider`` (explicit default, else the strong tier)."""
        m = self.default_models.get(provider)
        if m:
            return m
        return self.tiers.get(provider, {}).get("strong")
