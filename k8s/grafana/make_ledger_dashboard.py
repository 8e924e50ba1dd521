"""Writes nadir-ledger.json, the Grafana dashboard over the ledger in PostgreSQL: spend by day, ISO
week and month; by team, feature, key id and model; savings; unpriced requests by reason; tokens.

Every panel is SQL on the daily rollups (``nadir_rollup_daily``, see
nadir_extproc/ledger/rollup.py), never on raw request rows, so it stays fast at tens of millions of
requests. Money is exact ``NUMERIC`` USD; days are UTC. It sits beside nadir-extproc.json (the
Prometheus dashboard, for real-time rates). tests/ledger/test_ledger_dashboard.py checks that the
file is this script's output and runs every query against a real PostgreSQL holding generated rows.

    .venv/bin/python k8s/grafana/make_ledger_dashboard.py

Data source: Grafana's PostgreSQL data source (type ``grafana-postgresql-datasource``) pointed at
the ledger database, read-only user recommended (docs/ledger.md).
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("nadir-ledger.json")
DS = {"type": "grafana-postgresql-datasource", "uid": "${datasource}"}
ROLLUP = "nadir_rollup_daily"


def dim(col: str) -> str:
    """A rollup dimension for display and filtering: missing ('') shows as (none)."""
    return f"COALESCE(NULLIF({col}, ''), '(none)')"


#: Dashboard variables -> rollup columns.
VARS = {"team": "team", "feature": "feature", "env": "env", "model": "model"}
WHERE = "$__timeFilter(day) AND " + " AND ".join(f"{dim(c)} IN (${v})" for v, c in VARS.items())


def build() -> dict:
    """The dashboard as a dict (Grafana schemaVersion 39)."""
    panels: list[dict] = []

    def panel(kind, title, sql, x, y, w, h, unit, desc, fmt="table", **extra):
        p = {
            "id": len(panels) + 1, "type": kind, "title": title, "description": desc, "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [{"refId": "A", "datasource": DS, "editorMode": "code", "format": fmt, "rawQuery": True, "rawSql": sql}],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
        }
        for k, v in extra.items():
            p[k] = {**p.get(k, {}), **v} if isinstance(v, dict) else v
        panels.append(p)

    def stat(title, expr, x, unit, desc):
        panel("stat", title, f"SELECT {expr} AS value FROM {ROLLUP} WHERE {WHERE}", x, 0, 4, 4, unit, desc,
              options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False}})

    stat("Spend", "COALESCE(SUM(cost_usd), 0)", 0, "currencyUSD", "USD spent in the time range (priced requests; exact sums of the ledger).")
    stat("Saved by routing", "COALESCE(SUM(saved_usd), 0)", 4, "currencyUSD",
         "Baseline model's cost at the same usage minus actual cost (x-nadir-cost-saved), summed; negative when routing cost more.")
    stat("Saved share", "COALESCE(SUM(saved_usd) / NULLIF(SUM(cost_usd) + SUM(saved_usd), 0), 0)", 8, "percentunit",
         "Saved / (spend + saved): the part of the baseline bill routing avoided.")
    stat("Requests", "COALESCE(SUM(requests), 0)", 12, "short", "Requests in the ledger for the time range.")
    stat("Unpriced requests", "COALESCE(SUM(unpriced), 0)", 16, "short",
         "Requests without a cost (unknown model, no usage, provider error, ...): their spend is unknown, never counted as $0.")
    stat("Tokens", "COALESCE(SUM(input_tokens) + SUM(output_tokens), 0)", 20, "short", "Input (incl. cached) plus output tokens.")

    for i, (unit, trunc, title) in enumerate([("day", "day", "day (UTC)"), ("week", "date_trunc('week', day::timestamp)", "ISO week"),
                                              ("month", "date_trunc('month', day::timestamp)", "month")]):
        panel("timeseries", f"Spend and savings per {title}",
              f"SELECT ({trunc})::timestamp AT TIME ZONE 'UTC' AS time, SUM(cost_usd) AS spend, SUM(saved_usd) AS saved "
              f"FROM {ROLLUP} WHERE {WHERE} GROUP BY 1 ORDER BY 1",
              8 * i, 4, 8, 8, "currencyUSD", f"Totals per {title}; weeks start on Monday (ISO 8601).", fmt="time_series",
              fieldConfig={"defaults": {"unit": "currencyUSD", "custom": {"drawStyle": "bars", "fillOpacity": 60}}})
    panel("timeseries", "Spend per day by team",
          f"SELECT day::timestamp AT TIME ZONE 'UTC' AS time, {dim('team')} AS metric, SUM(cost_usd) AS value "
          f"FROM {ROLLUP} WHERE {WHERE} GROUP BY 1, 2 ORDER BY 1, 2",
          0, 12, 24, 8, "currencyUSD", "Daily spend, one series per team.", fmt="time_series",
          fieldConfig={"defaults": {"unit": "currencyUSD", "custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}, "fillOpacity": 70}}})

    def by(title, col, x, y, extra_cols=""):
        panel("table", f"Spend by {title}",
              f"SELECT {dim(col)} AS {title.replace(' ', '_')}{extra_cols}, SUM(cost_usd) AS spend_usd, SUM(saved_usd) AS saved_usd, "
              f"SUM(requests) AS requests, SUM(unpriced) AS unpriced, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens "
              f"FROM {ROLLUP} WHERE {WHERE} GROUP BY 1{', 2' if extra_cols else ''} ORDER BY spend_usd DESC LIMIT 100",
              x, y, 12, 9, "none", f"Totals over the time range per {title} ((none) = not tagged), most expensive first.",
              fieldConfig={"defaults": {"unit": "none"}, "overrides": [
                  {"matcher": {"id": "byRegexp", "options": "spend_usd|saved_usd"}, "properties": [{"id": "unit", "value": "currencyUSD"}]}]})

    by("team", "team", 0, 20)
    by("feature", "feature", 12, 20)
    by("key id", "key_id", 0, 29)
    by("model", "model", 12, 29, extra_cols=f", {dim('provider')} AS provider")
    panel("table", "Unpriced requests by reason",
          f"SELECT {dim('unpriced_reason')} AS reason, {dim('status')} AS status, SUM(unpriced) AS requests FROM {ROLLUP} "
          f"WHERE {WHERE} AND unpriced > 0 GROUP BY 1, 2 ORDER BY requests DESC",
          0, 38, 12, 8, "short", "Why requests have no cost: unknown model, no usage in the response, provider error, ...")
    panel("timeseries", "Tokens per day by type",
          f"SELECT day::timestamp AT TIME ZONE 'UTC' AS time, SUM(input_tokens - cache_read_tokens - cache_write_tokens) AS uncached_input, "
          f"SUM(cache_read_tokens) AS cache_read, SUM(cache_write_tokens) AS cache_write, SUM(output_tokens) AS output, "
          f"SUM(reasoning_tokens) AS reasoning_in_output FROM {ROLLUP} WHERE {WHERE} GROUP BY 1 ORDER BY 1",
          12, 38, 12, 8, "short", "Tokens per UTC day; reasoning tokens are part of output.", fmt="time_series")
    panel("table", "What routing would save (shadow routing, explicit-model traffic)",
          f"SELECT COALESCE(SUM(cost_usd), 0) AS spend_usd, COALESCE(SUM(shadow_requests), 0) AS shadow_requests, "
          f"COALESCE(SUM(downgradable_requests), 0) AS downgradable_requests, COALESCE(SUM(downgradable_cost_usd), 0) AS downgradable_spend_usd, "
          f"COALESCE(SUM(downgradable_cost_usd) / NULLIF(SUM(cost_usd), 0), 0) AS downgradable_share, "
          f"COALESCE(SUM(opportunity_usd), 0) AS would_save_usd FROM {ROLLUP} WHERE {WHERE}",
          0, 46, 24, 5, "none",
          "As `nadir-extproc report --opportunity`: spend, spend on requests the router would have sent to a cheaper model and its "
          "share, and the estimated saving (same tokens at the cheaper model's rates; another model would answer with other token "
          "counts). Routing has a quality cost: the report states the router's measured quality at its thresholds (MODEL_CARD.md).",
          fieldConfig={"defaults": {"unit": "none"}, "overrides": [
              {"matcher": {"id": "byRegexp", "options": ".*_usd"}, "properties": [{"id": "unit", "value": "currencyUSD"}]},
              {"matcher": {"id": "byName", "options": "downgradable_share"}, "properties": [{"id": "unit", "value": "percentunit"}]}]})

    def var(name, label, col):
        q = f"SELECT DISTINCT {dim(col)} FROM {ROLLUP} ORDER BY 1"
        return {"name": name, "label": label, "type": "query", "datasource": DS, "query": q, "definition": q,
                "includeAll": True, "multi": True, "refresh": 2, "sort": 1,
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}

    return {
        "uid": "nadir-ledger-spend", "title": "nadir-extproc: ledger spend (PostgreSQL)",
        "description": "Spend, savings, unpriced requests and tokens from the nadir-extproc ledger's daily rollups (exact USD, UTC days).",
        "tags": ["nadir-extproc", "llm", "finops", "ledger"], "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": "now-30d", "to": "now"}, "refresh": "5m", "timezone": "utc",
        "annotations": {"list": []}, "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Ledger (PostgreSQL)", "type": "datasource", "query": "grafana-postgresql-datasource",
             "current": {"text": "Ledger", "value": "nadir-ledger"}},
            *[var(v, v.capitalize(), c) for v, c in VARS.items()]]},
        "panels": panels,
    }


def render() -> str:
    """The file's exact text."""
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
