"""The reservation estimate: input tokens from the body size, output from the request's cap or
the route's default, at the resolved model's catalogue rates (values worked out by hand)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from nadir_extproc.budgets.estimate import estimate_usd, output_cap
from nadir_extproc.dialects import DIALECTS
from nadir_extproc.config import BudgetReservationSettings, ConfigError, load_settings
from nadir_extproc.stats import COUNTS


CHAT = DIALECTS["openai_chat"]


@pytest.mark.parametrize("api, body, cap", [
    ("openai_chat", {"max_completion_tokens": 7, "max_tokens": 9}, 7),  # OpenAI Chat: the newer field wins
    ("openai_chat", {"max_tokens": 9}, 9),  # OpenAI Chat (legacy)
    ("anthropic_messages", {"max_tokens": 9}, 9),  # Anthropic Messages
    ("openai_responses", {"max_output_tokens": 11}, 11),  # OpenAI Responses
    ("openai_responses", {"max_tokens": 11}, None),  # not a Responses field
    ("gemini", {"generationConfig": {"maxOutputTokens": 13}}, 13),  # Gemini
    ("gemini", {"generation_config": {"max_output_tokens": 15}}, 15),  # Gemini, proto field names
    ("openai_chat", {"max_tokens": True}, None), ("openai_chat", {"max_tokens": -1}, None),
    ("anthropic_messages", {"max_tokens": "9"}, None), ("gemini", {}, None), ("openai_chat", None, None),
])
def test_output_cap_of_each_dialect(api, body, cap):
    assert output_cap(body, DIALECTS[api]) == cap


def test_estimate_from_body_size_and_output_cap():
    cfg = BudgetReservationSettings()
    # gpt-4o-mini 0.15 / 0.60 USD per MTok; 400 bytes -> 100 input tokens; max_tokens 100:
    # 100 x 0.15/1e6 + 100 x 0.60/1e6 = 0.000015 + 0.00006 = 0.000075
    assert estimate_usd("openai", "gpt-4o-mini", 400, {"max_tokens": 100}, cfg, dialect=CHAT) == D("0.000075")
    # 401 bytes round up to 101 tokens: + 0.00000015
    assert estimate_usd("openai", "gpt-4o-mini", 401, {"max_tokens": 100}, cfg, dialect=CHAT) == D("0.00007515")


def test_several_choices_may_each_reach_the_cap():
    cfg = BudgetReservationSettings()
    # n = 3 completions of up to 100 tokens: 400 bytes -> 100 input x 0.15/1e6 + 300 x 0.60/1e6 = 0.000015 + 0.00018
    assert estimate_usd("openai", "gpt-4o-mini", 400, {"max_tokens": 100, "n": 3}, cfg, dialect=CHAT) == D("0.000195")
    # Gemini candidateCount 2 x maxOutputTokens 100 at gemini-2.5-flash (0.30 / 2.50 per MTok):
    # 100 x 0.30/1e6 + 200 x 2.50/1e6 = 0.00003 + 0.0005
    body = {"generationConfig": {"maxOutputTokens": 100, "candidateCount": 2}}
    assert estimate_usd("google", "gemini-2.5-flash", 400, body, cfg, dialect=DIALECTS["gemini"]) == D("0.00053")


def test_route_default_output_tokens_when_the_request_sets_no_cap():
    cfg = BudgetReservationSettings(output_tokens={"default": 512, "anthropic": 1024})
    # claude-haiku-4-5 1.00 / 5.00 USD per MTok; 40 bytes -> 10 tokens; 1024 output tokens (route default):
    # 10 x 1/1e6 + 1024 x 5/1e6 = 0.00001 + 0.00512 = 0.00513
    assert estimate_usd("anthropic", "claude-haiku-4-5", 40, {}, cfg) == D("0.00513")
    # openai falls back to "default": 512 x 0.60/1e6 = 0.0003072 (+ 10 x 0.15/1e6 = 0.0000015)
    assert estimate_usd("openai", "gpt-4o-mini", 40, None, cfg) == D("0.0003087")


def test_estimate_off_and_unknown_models_reserve_nothing():
    off = BudgetReservationSettings(bytes_per_token=0, output_tokens={"default": 0})
    assert estimate_usd("openai", "gpt-4o-mini", 10_000, {}, off) == 0
    before = COUNTS["budget_estimate_unpriced"]
    assert estimate_usd("openai", "no-such-model", 400, {"max_tokens": 10}, BudgetReservationSettings(), dialect=CHAT) == 0
    assert COUNTS["budget_estimate_unpriced"] == before + 1


def test_reservation_and_redis_settings_from_yaml_and_env(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("budget_reservations: {bytes_per_token: 3, output_tokens: {default: 100, google: 2048}, ttl_s: 120}\n"
                 "budget_redis: {url: 'redis://127.0.0.1:6379/0', timeout_ms: 25}\n")
    s = load_settings(f, env={"NADIR_REDIS_URL": "rediss://cache.internal:6380/1"})
    assert s.budget_reservations.output_tokens == {"default": 100, "google": 2048} and s.budget_reservations.ttl_s == 120
    assert (s.budget_redis.url, s.budget_redis.timeout_ms) == ("rediss://cache.internal:6380/1", 25)
    f.write_text("budget_redis: {url: 'http://cache:6379'}\n")
    with pytest.raises(ConfigError, match="budget_redis.url"):
        load_settings(f, env={})
    f.write_text("budgets: [{name: a, scope: team, window: 1h, limit_usd: 1, on_redis_down: maybe}]\n")
    with pytest.raises(ConfigError, match="on_redis_down"):
        load_settings(f, env={})


def test_route_default_by_route_id_rates_by_catalogue_id():
    # A Vertex AI route: its own output default, Google's catalogue rates (gemini-2.5-flash 0.30 / 2.50
    # per MTok): 40 bytes -> 10 x 0.30/1e6 + 200 x 2.50/1e6 = 0.000003 + 0.0005 = 0.000503
    cfg = BudgetReservationSettings(output_tokens={"default": 512, "vertex": 200})
    assert estimate_usd("vertex", "gemini-2.5-flash", 40, {}, cfg, catalogue="google") == D("0.000503")
