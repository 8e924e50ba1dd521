"""The shared pricing cases (../shared/cases 01, 02, 07, 18, 26) as normalised Usage -> exact USD.

Every expected value is hand arithmetic: tokens x the list rate stated next to it (USD per million
tokens), written here. The case files are read only to check that they still say the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.usage import Usage
from tests.conftest import load_case

WHEN = datetime(2026, 11, 1, tzinfo=UTC)
MTOK = D(1_000_000)


def test_case01_openai_cached_tokens_are_a_subset_of_prompt_tokens():
    # prompt_tokens 3150 includes cached_tokens 2944 -> uncached 206. gpt-4o-2024-08-06 list price:
    # $2.50 input, $1.25 cached input, $10.00 output per MTok.
    usage = Usage(uncached_input_tokens=206, cache_read_tokens=2944, output_tokens=412)
    cost = price("openai", "gpt-4o-2024-08-06", usage, when=WHEN)
    assert cost.model == "gpt-4o"
    assert cost.breakdown["input"] == 206 * D("2.50") / MTOK == D("0.000515")
    assert cost.breakdown["cache_read"] == 2944 * D("1.25") / MTOK == D("0.00368")
    assert cost.breakdown["output"] == 412 * D("10.00") / MTOK == D("0.00412")
    assert cost.breakdown["cache_write"] == 0
    assert cost.total_usd == D("0.008315")  # 515 + 3680 + 4120 millionths of a dollar
    assert cost.total_usd not in (D("0.015675"), D("0.011995"))  # cached billed twice / cache ignored


def test_case02_anthropic_cache_buckets_are_disjoint_and_each_has_its_rate():
    # Anthropic input_tokens 48 excludes cache_creation 9210 (5m TTL) and cache_read 31744.
    # claude-sonnet-4-5: $3 input, $3.75 5m write, $0.30 read, $15 output per MTok.
    usage = Usage(uncached_input_tokens=48, cache_write_tokens=9210, cache_read_tokens=31744, output_tokens=655)
    cost = price("anthropic", "claude-sonnet-4-5-20250929", usage, when=WHEN)
    assert cost.model == "claude-sonnet-4-5"
    assert cost.breakdown == {
        "input": D("0.000144"),  # 48 x 3
        "cache_write": D("0.0345375"),  # 9210 x 3.75
        "cache_read": D("0.0095232"),  # 31744 x 0.30
        "output": D("0.009825"),  # 655 x 15
    }
    assert cost.total_usd == D("0.0540297")


def test_case07_routed_request_is_priced_by_the_served_snapshot():
    # response.model gpt-4o-mini-2024-07-18 -> gpt-4o-mini: $0.15 input, $0.60 output per MTok.
    cost = price("openai", "gpt-4o-mini-2024-07-18", Usage(uncached_input_tokens=41, output_tokens=11), when=WHEN)
    assert cost.model == "gpt-4o-mini"
    assert cost.total_usd == (41 * D("0.15") + 11 * D("0.60")) / MTOK == D("0.00001275")
    assert not price("openai", "auto", Usage(uncached_input_tokens=41, output_tokens=11), when=WHEN).priced


def test_case18_openai_reasoning_is_inside_completion_tokens():
    # o4-mini: $1.10 input, $4.40 output per MTok. completion 2300 already includes 1800 reasoning.
    usage = Usage(uncached_input_tokens=5200, output_tokens=2300, reasoning_tokens=1800)
    cost = price("openai", "o4-mini-2025-04-16", usage, when=WHEN)
    assert cost.model == "o4-mini"
    assert cost.total_usd == (5200 * D("1.10") + 2300 * D("4.40")) / MTOK == D("0.01584")
    assert cost.total_usd != D("0.02376")  # reasoning billed a second time


def test_case18_anthropic_thinking_is_inside_output_tokens():
    # claude-sonnet-4-5: $3 input, $15 output per MTok.
    cost = price("anthropic", "claude-sonnet-4-5-20250929", Usage(uncached_input_tokens=900, output_tokens=2300), when=WHEN)
    assert cost.total_usd == (900 * D(3) + 2300 * D(15)) / MTOK == D("0.0372")


def test_case26_anthropic_compaction_iterations_summed():
    # Sum of usage.iterations (compaction + message): input 150+240, cache read 30000,
    # 5m write 1200, output 60+12. claude-sonnet-4-6: $3 in, $3.75 5m write, $0.30 read, $15 out.
    usage = Usage(uncached_input_tokens=390, cache_read_tokens=30000, cache_write_tokens=1200, output_tokens=72)
    cost = price("anthropic", "claude-sonnet-4-6", usage, when=WHEN)
    assert cost.breakdown == {
        "input": D("0.00117"),  # 390 x 3
        "cache_read": D("0.009"),  # 30000 x 0.30
        "cache_write": D("0.0045"),  # 1200 x 3.75
        "output": D("0.00108"),  # 72 x 15
    }
    assert cost.total_usd == D("0.01575")
    assert cost.total_usd != D("0.0009")  # top-level usage only


@pytest.mark.parametrize(
    ("name", "path", "literal"),
    [
        ("01-openai-cached-tokens-subset", ("cost_usd",), "0.008315"),
        ("02-anthropic-cache-buckets-additive", ("cost_usd",), "0.0540297"),
        ("07-model-auto-rewrite-route-and-price", ("cost_usd",), "0.00001275"),
        ("18-reasoning-tokens-subset-of-output", ("openai", "cost_usd"), "0.01584"),
        ("18-reasoning-tokens-subset-of-output", ("anthropic", "cost_usd"), "0.0372"),
        ("26-anthropic-usage-iterations-compaction", ("cost_usd",), "0.01575"),
    ],
)
def test_case_files_still_expect_the_values_above(cases_dir, name, path, literal):
    value = load_case(cases_dir, name)["expected"]
    for key in path:
        value = value[key]
    assert D(value) == D(literal)
