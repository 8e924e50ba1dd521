"""The rule-based router: each documented rule, on prompts written here."""

from __future__ import annotations

import pytest

from nadir_extproc.routing.base import RouteRequest
from nadir_extproc.routing.policy import TierPolicy
from nadir_extproc.routing.rules import RuleRouter

router = RuleRouter(TierPolicy())


@pytest.mark.parametrize(
    "provider, prompt, messages, model, reason",
    [
        ("openai", "What's the capital of France?", 1, "gpt-4o-mini", "short_simple"),
        ("openai", "fix:\n```js\nx()\n```", 1, "gpt-4o", "code_fence"),
        ("openai", "a" * 2001, 1, "gpt-4o", "long_prompt"),
        ("openai", "a" * 2000, 1, "gpt-4o-mini", "short_simple"),
        ("anthropic", "Please PROVE the lemma", 1, "claude-sonnet-4-5", "reasoning_marker"),
        ("anthropic", "Explain it step by step", 1, "claude-sonnet-4-5", "reasoning_marker"),
        ("anthropic", "improve the analysis", 1, "claude-haiku-4-5", "short_simple"),  # no whole-word marker
        ("google", "hi", 9, "gemini-2.5-pro", "long_conversation"),
        ("google", "hi", 8, "gemini-2.5-flash", "short_simple"),
    ],
)
def test_rules(provider, prompt, messages, model, reason):
    d = router.route(RouteRequest(provider=provider, dialect="x", prompt=prompt, message_count=messages))
    assert (d.model, d.reason, d.router) == (model, reason, "rules")
    assert d.score == (1.0 if d.tier == "strong" else 0.0)


def test_unknown_provider_raises():
    with pytest.raises(KeyError):
        router.route(RouteRequest(provider="mistral", dialect="x", prompt="hi"))


@pytest.mark.parametrize(
    "provider, pin, model, reason",
    [
        ("openai", "mid", "gpt-4.1-mini", "pinned"),
        ("anthropic", "mid", "claude-sonnet-4-5", "pinned"),  # no mid model: the next stronger tier
        ("google", "MID", "gemini-2.5-pro", "pinned"),         # any case
        ("openai", "Strong", "gpt-4o", "pinned"),
        ("openai", "bogus", "gpt-4o-mini", "short_simple+pin_ignored"),  # said, not silent
    ],
)
def test_pinned_tier(provider, pin, model, reason):
    from nadir_extproc.routing.onnx_router import load_router

    req = RouteRequest(provider=provider, dialect="x", prompt="hi", pinned_tier=pin)
    d = router.route(req)
    assert (d.model, d.reason) == (model, reason)
    onnx = load_router(TierPolicy()).route(req)  # the shipped ONNX router honours pins the same way
    assert onnx.model == model and onnx.router == "onnx"
    assert onnx.reason.startswith("pinned") == (reason == "pinned")
