"""Operator price file: own rates for unknown models, negotiated rates and discounts, aliases,
and load-time validation whose error names the bad entry."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.pricing import catalogue
from nadir_extproc.pricing.cost import UNKNOWN_MODEL, UNKNOWN_PROVIDER, price
from nadir_extproc.pricing.pricefile import PriceFileError, install_price_file, load_price_file
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2026, 11, 1, tzinfo=UTC)
MTOK = D(1_000_000)

GOOD = """
models:
  - provider: ollama
    model: qwen3:0.6b
    input_mtok: "0.02"
    output_mtok: 0.08
  - provider: anthropic
    model: claude-sonnet-4-5
    input_mtok: {base: "2.70", tiers: [{start: 200000, price: "5.40"}]}
    output_mtok: "13.50"
    cache_read_mtok: "0.27"
    cache_write_mtok: "3.375"
    cache_write_1h_mtok: "5.40"
  - provider: openai
    model: gpt-4o
    discount_percent: 15
aliases:
  - provider: azure
    name: prod-chat-4o
    model: gpt-4o
    model_provider: openai
"""


@pytest.fixture
def installed(tmp_path):
    f = tmp_path / "prices.yaml"
    f.write_text(GOOD)
    install_price_file(f)
    yield f
    install_price_file(None)


def test_unknown_provider_and_model_become_priced(installed):
    usage = Usage(uncached_input_tokens=136, output_tokens=15)
    cost = price("ollama", "qwen3:0.6b", usage, when=WHEN)
    assert cost.total_usd == (136 * D("0.02") + 15 * D("0.08")) / MTOK == D("0.00000392")
    assert cost.catalogue == "price file prices.yaml"
    assert price("OLLAMA", "Qwen3:0.6B", usage, when=WHEN).total_usd == D("0.00000392")
    assert price("ollama", "qwen3:1.7b", usage, when=WHEN).unpriced_reason == UNKNOWN_MODEL


def test_own_rates_win_over_the_catalogue_with_tiers(installed):
    usage = Usage(uncached_input_tokens=1000, cache_read_tokens=1000, cache_write_tokens=1000,
                  cache_write_1h_tokens=1000, output_tokens=1000)
    cost = price("anthropic", "claude-sonnet-4-5", usage, when=WHEN)
    assert cost.total_usd == 1000 * (D("2.70") + D("0.27") + D("3.375") + D("5.40") + D("13.50")) / MTOK == D("0.025245")
    big = price("anthropic", "claude-sonnet-4-5", Usage(uncached_input_tokens=200_001), when=WHEN)
    assert big.total_usd == 200_001 * D("5.40") / MTOK


def test_discount_applies_to_every_rate_and_to_snapshots(installed):
    # gpt-4o list $2.50 in / $1.25 cached / $10 out, 15 % off: $2.125 / $1.0625 / $8.50.
    usage = Usage(uncached_input_tokens=1000, cache_read_tokens=2000, output_tokens=100)
    cost = price("openai", "gpt-4o-2024-08-06", usage, when=WHEN)
    assert cost.total_usd == (1000 * D("2.125") + 2000 * D("1.0625") + 100 * D("8.5")) / MTOK == D("0.0051")
    assert "15% (price file prices.yaml)" in cost.catalogue
    # gpt-4o-mini is not gpt-4o: no discount.
    mini = price("openai", "gpt-4o-mini", Usage(uncached_input_tokens=1000), when=WHEN)
    assert mini.total_usd == 1000 * D("0.15") / MTOK


def test_azure_deployment_alias(installed):
    cost = price("azure", "prod-chat-4o", Usage(uncached_input_tokens=1000), when=WHEN)
    assert (cost.provider, cost.model) == ("openai", "gpt-4o")
    assert cost.total_usd == 1000 * D("2.125") / MTOK


def test_uninstalled_goes_back_to_the_catalogue(installed):
    install_price_file(None)
    assert price("ollama", "qwen3:0.6b", Usage(uncached_input_tokens=1), when=WHEN).unpriced_reason == UNKNOWN_PROVIDER
    assert price("openai", "gpt-4o", Usage(uncached_input_tokens=1000), when=WHEN).total_usd == D("0.0025")
    assert catalogue.price_file() is None


def test_toml(tmp_path):
    f = tmp_path / "prices.toml"
    f.write_text('[[models]]\nprovider = "vllm"\nmodel = "llama-3-8b"\ninput_mtok = "0.1"\noutput_mtok = "0.2"\n')
    o = load_price_file(f)
    assert set(o.models) == {("vllm", "llama-3-8b")}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("models:\n  - {provider: ollama, model: m1, input_mtok: 1, output_mtok: 1}\n  - {provider: ollama, model: m2, input_mtok: -1, output_mtok: 1}\n",
         "models[1] (ollama/m2): input_mtok"),
        ("models:\n  - {provider: ollama, model: m1, input_mtok: 1}\n", "models[0] (ollama/m1): missing output_mtok"),
        ("models:\n  - {provider: ollama, model: m1, input_mtok: 1, output_mtok: 1, inptu_mtok: 2}\n", "models[0] (ollama/m1): inptu_mtok"),
        ("models:\n  - {provider: ollama, model: m1, input_mtok: abc, output_mtok: 1}\n", "models[0] (ollama/m1): input_mtok"),
        ("models:\n  - {provider: ollama, model: m1, input_mtok: true, output_mtok: 1}\n", "models[0] (ollama/m1)"),
        ("models:\n  - {provider: openai, model: gpt-4o, discount_percent: 10, input_mtok: 1}\n", "not both"),
        ("models:\n  - {provider: openai, model: gpt-imaginary, discount_percent: 10}\n", "models[0] (openai/gpt-imaginary): discount_percent for a model the catalogue"),
        ("models:\n  - {provider: openai, model: gpt-4o, discount_percent: 120}\n", "models[0] (openai/gpt-4o): discount_percent"),
        ("models:\n  - {provider: a, model: m, input_mtok: 1, output_mtok: 1}\n  - {provider: a, model: M, input_mtok: 2, output_mtok: 2}\n", "models[1] (a/M): a/m is listed twice"),
        ("models:\n  - {provider: a, model: m, input_mtok: {base: 1, tiers: [{start: 5, price: 2}, {start: 3, price: 3}]}, output_mtok: 1}\n", "ascending"),
        ("aliases:\n  - {provider: azure, name: dep, model: gpt-imaginary, model_provider: openai}\n", "aliases[0] (azure/dep): target openai/gpt-imaginary"),
        ("- just a list\n", "top level must be a mapping"),
        ("modles: []\n", "modles"),
        ("models: [\n", "price file"),
    ],
)
def test_validation_names_the_bad_entry(tmp_path, text, fragment):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(PriceFileError) as e:
        load_price_file(f)
    assert str(e.value).startswith(f"price file {f}")
    assert fragment in str(e.value)


def test_a_bad_file_leaves_the_installed_one(installed, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{provider: x}]\n")
    with pytest.raises(PriceFileError):
        install_price_file(bad)
    assert price("ollama", "qwen3:0.6b", Usage(uncached_input_tokens=1000), when=WHEN).total_usd == D("0.00002")


def test_missing_file(tmp_path):
    with pytest.raises(PriceFileError, match="price file"):
        load_price_file(tmp_path / "nope.yaml")
