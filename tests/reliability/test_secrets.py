"""Issue 18, secrets: marker API keys in every place a key travels (``authorization: Bearer``,
``x-api-key``, ``x-goog-api-key``, Gemini ``?key=``, Azure ``api-key``) and marker prompt text,
through the real Envoy to a real OTLP receiver, with ``capture_content`` off and on. Then every
byte we emit is searched: the ext_proc's and Envoy's logs (debug level for the ext_proc), every
file of the ledger and state folder, every exported span and metric, the Prometheus text, and the
error bodies we answer (Envoy's 413, our 413, the fail-closed 503). No key marker anywhere; the
prompt marker only in the documented content attributes when ``capture_content`` is on."""

from __future__ import annotations

import json
import urllib.request

import pytest

from nadir_extproc.stack import Stack, free_port
from tests.integration.conftest import raw_post, upstream_requests
from tests.telemetry.otlp_receiver import OTLPReceiver

KEYS = {  # where the key travels -> its marker
    "bearer": "sk-MARKKEYbearer0001-not-real",
    "x-api-key": "sk-ant-MARKKEYxapikey0002-not-real",
    "x-goog-api-key": "AIzaMARKKEYgoog0003notreal",
    "query": "AIzaMARKKEYquery0004notreal",
    "azure": "MARKKEYazure0005notreal",
}
PROMPT = "MARKPROMPTq8Rk"
CONTENT_ATTRS = {"gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.output.messages"}
USAGE = {"x-emulator-usage": json.dumps({"input": 3, "output": 2})}


def _traffic(stack) -> list[bytes]:
    """Send the markers every way; returns the bodies of the responses (error bodies included)."""
    chat = json.dumps({"model": "auto", "user": "u1", "messages": [{"role": "system", "content": PROMPT},
                                                                  {"role": "user", "content": PROMPT}]}).encode()
    bodies = []
    calls = [
        ("/v1/chat/completions", chat, {"authorization": f"Bearer {KEYS['bearer']}"}),
        ("/v1/chat/completions", json.dumps({"model": "auto", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}).encode(),
         {"authorization": f"Bearer {KEYS['bearer']}"}),
        ("/v1/messages", json.dumps({"model": "auto", "max_tokens": 5, "system": PROMPT,
                                     "messages": [{"role": "user", "content": PROMPT}]}).encode(), {"x-api-key": KEYS["x-api-key"]}),
        ("/v1beta/models/auto:generateContent", json.dumps({"contents": [{"parts": [{"text": PROMPT}]}]}).encode(),
         {"x-goog-api-key": KEYS["x-goog-api-key"]}),
        (f"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key={KEYS['query']}",
         json.dumps({"contents": [{"parts": [{"text": PROMPT}]}]}).encode(), {}),
        ("/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21", chat, {"api-key": KEYS["azure"]}),
        # a provider error, and a body over Envoy's buffer limit (its own 413)
        ("/v1/chat/completions", chat, {"authorization": f"Bearer {KEYS['bearer']}", "x-emulator-status": "500"}),
        ("/v1/chat/completions", json.dumps({"model": "auto", "messages": [{"role": "user", "content": PROMPT + "x" * (9 << 20)}]}).encode(),
         {"authorization": f"Bearer {KEYS['bearer']}"}),
    ]
    for path, body, h in calls:
        status, _, out = raw_post(f"{stack.base_url}{path}", body, {**USAGE, **h})
        bodies.append(out)
    # The fail-closed 503 (ext_proc stopped) carries nothing of the request either.
    stack.stop_process("extproc")
    status, _, out = raw_post(f"{stack.base_url}/v1/chat/completions", chat, {"authorization": f"Bearer {KEYS['bearer']}"})
    assert status == 503
    bodies.append(out)
    return bodies


def _where(blob: bytes, marker: bytes) -> str:
    i = blob.index(marker)
    return repr(blob[max(0, i - 160): i + 40])


@pytest.mark.parametrize("capture", [False, True])
def test_no_key_anywhere_and_prompt_text_only_where_documented(tmp_path, capture):
    cfg = tmp_path / "settings.yaml"
    cfg.write_text(f"telemetry:\n  capture_content: {'true' if capture else 'false'}\n")
    prom = free_port()
    receiver = OTLPReceiver()
    receiver.start()
    try:
        env = {"NADIR_CONFIG": str(cfg), "NADIR_LOG_LEVEL": "DEBUG", "OTEL_BSP_SCHEDULE_DELAY": "50",
               "OTEL_METRIC_EXPORT_INTERVAL": "300", "NADIR_PROMETHEUS_PORT": str(prom)}
        with Stack(otlp_endpoint=receiver.endpoint, extproc_env=env, log_dir=tmp_path) as stack:
            (tmp_path / "state").mkdir(exist_ok=True)
            n = len(receiver.metric_requests)
            receiver.wait_for(lambda: len(receiver.metric_requests) > n, 30)
            with urllib.request.urlopen(f"http://127.0.0.1:{prom}/metrics", timeout=10) as r:
                prom_text = r.read()
            bodies = _traffic(stack)  # ends with the ext_proc stopped (SIGTERM: ledger and exports flushed)
            # The markers did travel upstream (the test has teeth).
            sent = b"".join(r["body"] + json.dumps(r["hdrs"]).encode() + r.get("path", "").encode()
                            for r in upstream_requests(stack))
            for k in ("bearer", "x-api-key", "x-goog-api-key", "query", "azure"):
                assert KEYS[k].encode() in sent, k
            assert PROMPT.encode() in sent
            logs = (stack.log("extproc") + stack.log("envoy")).encode()
            state = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
            assert state, "the ledger was written"
        exported = receiver.all_bytes()
        assert exported
        keymarks = [b"MARKKEY"]
        for name, blob in [("logs", logs), ("ledger/state", state), ("otlp", exported), ("prometheus", prom_text),
                           ("error bodies", b"".join(bodies[-3:]))]:
            for m in keymarks:
                assert m not in blob, f"{name}: {_where(blob, m)}"
            if name != "otlp":
                assert PROMPT.encode() not in blob, f"{name}: {_where(blob, PROMPT.encode())}"
        # Prompt text in spans: only with capture_content, only in the content attributes.
        spans = receiver.spans()
        holding = {k for s in spans for k, v in s.attrs.items() if PROMPT in json.dumps(v, default=str)}
        if capture:
            assert holding and holding <= CONTENT_ATTRS, holding
        else:
            assert not holding and PROMPT.encode() not in exported, _where(exported, PROMPT.encode()) if PROMPT.encode() in exported else ""
    finally:
        receiver.stop()
