"""The route policy: score bands, tiers, and each hard constraint (context, images, tools, pin)."""

from __future__ import annotations

import pytest

from nadir_extproc.config import ConfigError, load_settings
from nadir_extproc.routing.base import RouteRequest
from nadir_extproc.routing.policy import (
    DEFAULT_TIERS,
    ModelCaps,
    Needs,
    PolicyError,
    TierPolicy,
    load_policy,
    policy_from_mapping,
    request_needs,
    stray_tiers,
)
from nadir_extproc.routing.rules import RuleRouter

# A three-tier provider whose models differ in what they accept.
TIERS = {"acme": {"weak": "small", "mid": "medium", "strong": "large"}}
CAPS = {
    "small": ModelCaps(context_tokens=10, vision=False, tools=False),
    "medium": ModelCaps(context_tokens=100, vision=True, tools=False),
    "large": ModelCaps(context_tokens=1000, vision=True, tools=True),
}
POLICY = TierPolicy(tiers=TIERS, thresholds={"weak": 0.0, "mid": 0.3, "strong": 0.6}, capabilities=CAPS)


@pytest.mark.parametrize("score, tier", [(0.0, "weak"), (0.29, "weak"), (0.3, "mid"), (0.59, "mid"), (0.6, "strong"), (1.0, "strong")])
def test_score_bands(score, tier):
    assert POLICY.tier_for_score(score) == tier


def test_defaults_keep_the_strong_and_weak_models():
    p = TierPolicy()
    assert p.model("openai", "strong") == "gpt-4o" and p.model("openai", "weak") == "gpt-4o-mini"
    assert p.default_model("anthropic") == "claude-sonnet-4-5"
    # Anthropic has no mid model: the mid band goes to the next stronger tier.
    assert p.pick("anthropic", "mid").model == "claude-sonnet-4-5"
    assert p.pick("openai", "mid").model == "gpt-4.1-mini"


def test_fits_everything_no_notes():
    p = POLICY.pick("acme", "weak", Needs(prompt_tokens=10))
    assert (p.tier, p.model, p.notes) == ("weak", "small", ())


def test_context_window_moves_up():
    # 11 tokens do not fit small (10) -> medium (100).
    p = POLICY.pick("acme", "weak", Needs(prompt_tokens=11))
    assert (p.tier, p.model, p.notes) == ("mid", "medium", ("context",))


def test_prompt_tokens_estimate_is_chars_over_three_rounded_up():
    assert request_needs("x" * 30, None).prompt_tokens == 10
    assert request_needs("x" * 31, None).prompt_tokens == 11


def test_images_need_vision_and_tools_need_tools():
    assert POLICY.pick("acme", "weak", Needs(images=True)).model == "medium"
    assert POLICY.pick("acme", "weak", Needs(tools=True)).model == "large"
    p = POLICY.pick("acme", "mid", Needs(images=True, tools=True))
    assert (p.model, p.notes) == ("large", ("tools",))


def test_too_long_for_the_strong_model_goes_down_to_one_that_fits():
    big = {"acme": {"weak": "wide", "strong": "narrow"}}
    pol = TierPolicy(tiers=big, capabilities={"wide": ModelCaps(1000), "narrow": ModelCaps(10)})
    p = pol.pick("acme", "strong", Needs(prompt_tokens=500))
    assert (p.tier, p.model, p.notes) == ("weak", "wide", ("context",))


def test_unsatisfiable_keeps_the_tier():
    p = POLICY.pick("acme", "mid", Needs(prompt_tokens=5000))
    assert (p.tier, p.model, p.notes) == ("mid", "medium", ("unsatisfiable",))


def test_unknown_model_gets_the_catalogue_context_window():
    # genai-prices 0.2.3 lists gpt-4o with context_window 128000; vision/tools unknown -> allowed.
    pol = TierPolicy(capabilities={})
    assert pol.caps("openai", "gpt-4o") == ModelCaps(128_000, True, True)
    assert pol.caps("openai", "no-such-model") == ModelCaps(None, True, True)


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:"}}]}]},
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": ""}}]}]},
        {"contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": ""}}]}]},
        {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://x"}}]}]},
    ],
    ids=["openai_chat", "openai_responses", "anthropic", "gemini_inline", "gemini_file"],
)
def test_images_found_in_every_dialect(body):
    n = request_needs("hi", body)
    assert (n.images, n.tools) == (True, False)


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]},
        {"input": "hi", "tools": [{"type": "function", "name": "f"}]},
        {"messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "f", "input_schema": {}}]},
        {"contents": [{"parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [{"name": "f"}]}]},
        {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "1", "name": "f", "input": {}}]}]},
        {"messages": [{"role": "tool", "tool_call_id": "1", "content": "42"}]},
        {"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}]},
    ],
    ids=["openai_chat", "openai_responses", "anthropic", "gemini", "anthropic_history", "openai_tool_msg", "gemini_history"],
)
def test_tools_found_in_every_dialect(body):
    n = request_needs("hi", body)
    assert (n.images, n.tools) == (False, True)


def test_text_only_body_needs_nothing():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "tools": []}
    assert request_needs("hi", body) == Needs(prompt_tokens=1)
    assert request_needs("hi", {"contents": [{"parts": [{"inline_data": {"mime_type": "text/plain", "data": ""}}]}]}).images is False


def test_rule_router_honours_a_pinned_tier_and_constraints():
    r = RuleRouter(POLICY)
    d = r.route(RouteRequest("acme", "x", "hi", pinned_tier="strong"))
    assert (d.model, d.tier, d.reason, d.score) == ("large", "strong", "pinned", None)
    # Unknown tier names are ignored: the rules decide.
    assert r.route(RouteRequest("acme", "x", "hi", pinned_tier="ultra")).reason == "short_simple+pin_ignored"
    # The rules say weak; the image moves it to the vision model.
    img = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    d = r.route(RouteRequest("acme", "openai_chat", "hi", body=img))
    assert (d.model, d.reason) == ("medium", "short_simple+vision")


def test_policy_yaml(tmp_path):
    f = tmp_path / "policy.yaml"
    f.write_text(
        "thresholds: {weak: 0.0, mid: 0.2, strong: 0.7}\n"
        "tiers:\n  anthropic: {weak: claude-haiku-4-5, mid: claude-sonnet-4-5, strong: claude-opus-4-5}\n"
        "models:\n  claude-haiku-4-5: {context_tokens: 50, tools: false}\n",
        encoding="utf-8",
    )
    p = load_policy(f)
    assert p.tier_for_score(0.69) == "mid" and p.model("anthropic", "strong") == "claude-opus-4-5"
    assert p.caps("anthropic", "claude-haiku-4-5") == ModelCaps(50, True, False)
    assert p.pick("anthropic", "weak", Needs(tools=True)).model == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"thresholds": {"weak": 0.0, "strong": 1.5}}, "thresholds.strong: 1.5 is outside [0, 1]"),
        ({"thresholds": {"weak": 0.0, "ultra": 0.9}}, "thresholds.ultra: no provider defines tier 'ultra'"),
        ({"tiers": {"openai": {"strong": "gpt-4o"}}}, "tiers.openai: missing model for tier 'weak'"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_policy_errors_name_the_entry(data, message):
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        policy_from_mapping(data)


def test_settings_router_policy(tmp_path):
    f = tmp_path / "policy.yaml"
    f.write_text("tiers:\n  openai: {weak: gpt-5-nano, mid: gpt-5-mini, strong: gpt-5}\n", encoding="utf-8")
    s = load_settings(env={"NADIR_ROUTER_POLICY": str(f)})
    assert s.policy().tiers == {"openai": {"weak": "gpt-5-nano", "mid": "gpt-5-mini", "strong": "gpt-5"}}
    # Tiers set in the settings win over the file's.
    cfg = tmp_path / "settings.yaml"
    cfg.write_text(f"router_policy: {f}\ntiers:\n  openai: {{weak: a, strong: b}}\n", encoding="utf-8")
    assert load_settings(cfg, env={}).policy().tiers == {"openai": {"weak": "a", "strong": "b"}}
    # Without a policy file: the built-in tiers.
    assert load_settings(env={}).policy().tiers == DEFAULT_TIERS
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: {weak: 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="router_policy"):
        load_settings(env={"NADIR_ROUTER_POLICY": str(bad)})


def test_shipped_example_policy_loads():
    from pathlib import Path

    import nadir_extproc.routing as routing

    p = load_policy(Path(routing.__file__).parent / "policies" / "current-trio.yaml")
    assert [p.model("anthropic", t) for t in ("weak", "mid", "strong")] == ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"]
    assert [p.model("openai", t) for t in ("weak", "mid", "strong")] == ["gpt-5-nano", "gpt-5-mini", "gpt-5"]
    assert [p.model("google", t) for t in ("weak", "mid", "strong")] == ["gemini-2.5-flash-lite", "gemini-2.5-flash", "gemini-2.5-pro"]


def test_stray_tiers_tell_a_typo_from_a_pin_only_tier():
    # Declared: the built-in order and thresholds (weak, mid, strong). "midd" and "Strong" are
    # typos (ratio 6/7 = 0.86 to "mid"; "strong" in another case); "reasoning" is its own name.
    p = TierPolicy(tiers={"openai": {"weak": "gpt-4o-mini", "midd": "gpt-4.1-mini", "strong": "gpt-4o", "reasoning": "o3"},
                          "anthropic": {"weak": "claude-haiku-4-5", "Strong": "claude-sonnet-4-5", "strong": "claude-sonnet-4-5"}})
    assert stray_tiers(p) == [("openai", "midd", "mid"), ("openai", "reasoning", None), ("anthropic", "Strong", "strong")]
    # A policy that names its own tiers (order + thresholds) declares them: nothing is stray.
    own = policy_from_mapping({"thresholds": {"nano": 0.0, "weak": 0.1, "strong": 0.6}, "order": ["nano", "weak", "strong"],
                               "tiers": {"openai": {"nano": "gpt-5-nano", "weak": "gpt-4o-mini", "strong": "gpt-4o"}}})
    assert stray_tiers(own) == []
    assert stray_tiers(TierPolicy()) == []
