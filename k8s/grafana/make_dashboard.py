"""Writes nadir-extproc.json, the Grafana dashboard over nadir-extproc's Prometheus metrics
(names as the service's OpenTelemetry Prometheus exporter serves them on :9464/metrics; see
nadir_extproc/telemetry/metrics.py). tests/deploy checks that the file is this script's output and
that every metric and label it queries is served by a running nadir-extproc.

    .venv/bin/python k8s/grafana/make_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("nadir-extproc.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
#: Dashboard filters -> metric labels (request tags from x-nadir-team / -feature / -env headers).
FILTER = 'nadir_tag_team=~"$team", nadir_tag_feature=~"$feature", nadir_tag_env=~"$env"'
COST = f"nadir_llm_cost_USD_total{{{FILTER}}}"  # counter, USD
SAVED = f"nadir_llm_savings_USD{{{FILTER}}}"  # cumulative, may go down (negative savings): use delta()
OPP = f"nadir_llm_opportunity_USD_total{{{FILTER}}}"  # counter, USD: shadow routing's estimated saving


def build() -> dict:
    """The dashboard as a dict (Grafana schemaVersion 39)."""
    panels: list[dict] = []

    def panel(kind, title, targets, x, y, w, h, unit, desc, **extra):
        p = {
            "id": len(panels) + 1, "type": kind, "title": title, "description": desc, "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": l, **({"interval": iv} if iv else {})}
                        for i, (e, l, iv) in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
        }
        for k, v in extra.items():
            p[k] = {**p.get(k, {}), **v} if isinstance(v, dict) else v
        panels.append(p)

    panel("stat", "Spend", [(f"sum(increase({COST}[$__range]))", "spend", None)], 0, 0, 6, 4, "currencyUSD",
          "USD spent in the time range (priced requests only, list prices).")
    panel("stat", "Saved by routing", [(f"sum(delta({SAVED}[$__range]))", "saved", None)], 6, 0, 6, 4, "currencyUSD",
          "Sum of x-nadir-cost-saved: baseline model's cost at the same usage minus actual cost (negative when routing cost more).")
    panel("stat", "Saved share", [(f"sum(delta({SAVED}[$__range])) / (sum(increase({COST}[$__range])) + sum(delta({SAVED}[$__range])))", "saved share", None)],
          12, 0, 6, 4, "percentunit", "Saved / (spend + saved): the part of the baseline bill routing avoided.")
    panel("stat", "Unpriced requests", [("sum(increase(nadir_unpriced_requests_total[$__range]))", "unpriced", None)], 18, 0, 6, 4, "short",
          "Requests with no cost (unknown model, no usage, provider error, ...); never counted as $0.")
    panel("timeseries", "Spend and savings per day", [
        (f"sum(increase({COST}[1d]))", "spend", "1d"),
        (f"sum(delta({SAVED}[1d]))", "saved", "1d")], 0, 4, 24, 8, "currencyUSD",
        "Daily totals (each point: the 24 h ending there).",
        fieldConfig={"defaults": {"unit": "currencyUSD", "custom": {"drawStyle": "bars", "fillOpacity": 60}}})
    for i, (label, title) in enumerate([("nadir_tag_feature", "feature"), ("nadir_tag_team", "team"), ("gen_ai_response_model", "model")]):
        panel("bargauge", f"Spend and savings by {title}", [
            (f"sort_desc(sum by ({label}) (increase({COST}[$__range])))", f"{{{{{label}}}}} spend", None),
            (f"sort_desc(sum by ({label}) (delta({SAVED}[$__range])))", f"{{{{{label}}}}} saved", None)],
            8 * i, 12, 8, 9, "currencyUSD", f"Totals over the time range per {title} (empty = untagged).",
            options={"orientation": "horizontal", "displayMode": "gradient", "reduceOptions": {"calcs": ["lastNotNull"], "values": False}})
    panel("timeseries", "Tokens by type", [
        ("sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_sum[$__rate_interval]))", "{{gen_ai_token_type}}", None)],
        0, 21, 12, 8, "short", "Tokens per second by gen_ai.token.type (input includes cached input, as the GenAI convention counts it).")
    panel("piechart", "Routing mix: tier chosen for model=\"auto\"", [
        ("sum by (nadir_route_tier) (increase(nadir_router_decisions_total[$__range]))", "{{nadir_route_tier}}", None)],
        12, 21, 6, 8, "short", "Routing decisions by tier.")
    panel("piechart", "Routing mix: models serving model=\"auto\"", [
        ('sum by (gen_ai_response_model) (increase(gen_ai_client_operation_duration_seconds_count{gen_ai_request_model="auto"}[$__range]))',
         "{{gen_ai_response_model}}", None)],
        18, 21, 6, 8, "short", "Which concrete model answered the routed requests.")
    panel("timeseries", "Unpriced requests by reason", [
        ("sum by (nadir_cost_unpriced_reason) (rate(nadir_unpriced_requests_total[$__rate_interval]))", "{{nadir_cost_unpriced_reason}}", None)],
        0, 29, 12, 8, "reqps", "Unknown model, no usage in the response, provider error, unsupported encoding, ...")
    panel("timeseries", "nadir-extproc latency (time we add)", [
        (f"histogram_quantile({q}, sum by (le) (rate(nadir_extproc_processing_duration_seconds_bucket[$__rate_interval])))", f"p{round(q * 100)}", None)
        for q in (0.5, 0.95, 0.99)], 12, 29, 12, 8, "s",
        "Time nadir-extproc spent on a request, all phases (x-nadir-latency-ms); not the provider's time.")
    panel("timeseries", "LLM call duration (client view)", [
        (f"histogram_quantile({q}, sum by (le) (rate(gen_ai_client_operation_duration_seconds_bucket[$__rate_interval])))", f"p{round(q * 100)}", None)
        for q in (0.5, 0.95)], 0, 37, 24, 7, "s", "gen_ai.client.operation.duration: the whole call, provider included.")
    panel("timeseries", "What routing would save (shadow routing, explicit-model traffic)", [
        (f"sum(increase({OPP}[1d]))", "would save (estimate)", "1d"),
        (f"sum by (gen_ai_response_model, nadir_shadow_tier) (increase({OPP}[1d]))",
         "{{gen_ai_response_model}} -> {{nadir_shadow_tier}}", "1d")], 0, 44, 24, 8, "currencyUSD",
        "nadir.llm.opportunity per day: on requests that name their model, actual cost minus the cost of the same tokens on the "
        "model the router would have chosen, when positive. An estimate (another model would answer with other token counts), "
        "and routing has a quality cost: `nadir-extproc report --opportunity` states the router's measured quality at its "
        "thresholds (MODEL_CARD.md) beside the figures.",
        fieldConfig={"defaults": {"unit": "currencyUSD", "custom": {"drawStyle": "bars", "fillOpacity": 60}}})

    def var(name, label, lbl):
        q = f"label_values(nadir_llm_cost_USD_total, {lbl})"
        return {"name": name, "label": label, "type": "query", "datasource": DS, "query": {"query": q, "refId": name},
                "definition": q, "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}

    return {
        "uid": "nadir-extproc-spend", "title": "nadir-extproc: LLM spend",
        "description": "Spend, savings, tokens, routing and latency from nadir-extproc's Prometheus metrics.",
        "tags": ["nadir-extproc", "llm", "finops"], "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": "now-7d", "to": "now"}, "refresh": "1m", "timezone": "browser",
        "annotations": {"list": []}, "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {"text": "Prometheus", "value": "prometheus"}},
            var("team", "Team", "nadir_tag_team"), var("feature", "Feature", "nadir_tag_feature"), var("env", "Environment", "nadir_tag_env")]},
        "panels": panels,
    }


def render() -> str:
    """The file's exact text."""
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
