"""``nadir-extproc demo``: the local stack with sample traffic from the official SDKs.

Starts the provider emulator, nadir-extproc and the real Envoy (``nadir_extproc.stack``), sends
~20 prompts from trivial to hard with ``model="auto"`` through Envoy using the official ``openai``
(Chat Completions and Responses) and ``anthropic`` SDKs — only the base URL changed — and prints
what came back in the ``x-nadir-*`` headers; then a few requests that name a frontier model, and
what routing would have saved on them (shadow routing, ``report --opportunity``). Then it times the same request sent straight to the
emulator and through Envoy + ext_proc, and stops every process it started.
"""

from __future__ import annotations

import os
import statistics
import time
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from nadir_extproc import headers as hn
from nadir_extproc.inband import parse_fields
from nadir_extproc.stack import Stack
from nadir_extproc.tables import new_table, output_console

PROMPTS: list[tuple[str, str]] = [
    ("openai_chat", "Hi! What's the capital of France?"),
    ("openai_chat", "Translate 'good morning' into Spanish."),
    ("openai_chat", "Give me three synonyms for 'happy'."),
    ("openai_chat", "Prove that the square root of 2 is irrational."),
    ("openai_chat", "Debug this:\n```python\ndef avg(xs): return sum(xs)/len(xs)\nprint(avg([]))\n```"),
    ("openai_chat", "Write a haiku about autumn leaves."),
    ("openai_chat", "Analyze the time complexity of quicksort in the worst case and explain why."),
    ("openai_chat", "Summarise this report for a CFO: " + "Quarterly revenue grew while cloud spend rose faster. " * 45),
    ("openai_responses", "What is 17 + 25?"),
    ("openai_responses", "Refactor a 2,000-line Django view into services; outline the architecture step by step."),
    ("openai_responses", "Name a fruit that is yellow."),
    ("openai_responses", "Derive the closed form of the sum 1 + 2 + ... + n."),
    ("anthropic_messages", "Say hello in Japanese."),
    ("anthropic_messages", "What's a good name for a golden retriever?"),
    ("anthropic_messages", "Design an algorithm to detect cycles in a directed graph and prove it correct."),
    ("anthropic_messages", "```sql\nSELECT * FROM orders o JOIN users u ON o.uid = u.id;\n```\nWhy is this slow?"),
    ("anthropic_messages", "Is a tomato a fruit or a vegetable? One sentence."),
    ("anthropic_messages", "Optimize this bash loop: for f in $(ls); do cat $f | grep x; done"),
    ("openai_chat", "Convert 5 miles to kilometres."),
    ("anthropic_messages", "List the planets of the solar system."),
    # Streamed: the cost arrives in-band, as an SSE comment before the terminal event.
    ("openai_chat+stream", "Tell me a one-line joke about accountants."),
    ("openai_chat+stream", "Explain step by step how TCP slow start works."),
    ("openai_responses+stream", "What colour is the sky on Mars?"),
    ("anthropic_messages+stream", "Write a limerick about cloud bills."),
]

API_KEY = "sk-demo-not-a-real-key"
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def _key(provider: str, real: dict[str, str]) -> str:
    """The SDK key: the real one from the environment when that provider is real, else a dummy."""
    return os.environ.get(KEY_ENV[provider], API_KEY) if provider in real else API_KEY


def _streamed(dialect: str, raw: bytes) -> tuple[dict[str, str], int | str, int | str]:
    """The in-band cost fields of a streamed answer and its input / output tokens, as its API's
    stream reader counts them (``Dialect.read_stream``; "—" when the stream reports no usage).
    Input counts cache reads and writes, as the non-streamed rows do."""
    from nadir_extproc.dialects import DIALECTS

    u = DIALECTS[dialect].read_stream(raw)[0].usage()
    if u is None:
        return parse_fields(raw), "—", "—"
    return (parse_fields(raw), u.uncached_input_tokens + u.cache_read_tokens + u.cache_write_tokens + u.cache_write_1h_tokens,
            u.output_tokens)


def _call_stream(dialect: str, prompt: str, base_url: str, real: dict[str, str]):
    """One streamed SDK call with model="auto"; the cost fields come from the in-band comment."""
    if dialect == "anthropic_messages":
        import anthropic

        c = anthropic.Anthropic(base_url=base_url, api_key=_key("anthropic", real), max_retries=0)
        with c.messages.with_streaming_response.create(
            model="auto", max_tokens=256, stream=True, messages=[{"role": "user", "content": prompt}]
        ) as resp:
            fields, tin, tout = _streamed(dialect, b"".join(resp.iter_bytes()))
            return {**resp.headers, **fields}, tin, tout
    import openai

    c = openai.OpenAI(base_url=f"{base_url}/v1", api_key=_key("openai", real), max_retries=0)
    if dialect == "openai_responses":
        cm = c.responses.with_streaming_response.create(model="auto", stream=True, input=prompt)
    else:
        cm = c.chat.completions.with_streaming_response.create(
            model="auto", stream=True, messages=[{"role": "user", "content": prompt}]
        )
    with cm as resp:
        fields, tin, tout = _streamed(dialect, b"".join(resp.iter_bytes()))
        return {**resp.headers, **fields}, tin, tout


def _why(e: Exception) -> str:
    """A failed SDK call in one line: its HTTP status and the first line of the answer's body
    (Envoy's own 503 names the cause: ``upstream connect error … Connection refused``), else the
    exception's class and message."""
    status = getattr(e, "status_code", None)
    resp = getattr(e, "response", None)
    try:
        body = (resp.text or "").strip().splitlines()[0][:160] if resp is not None and (resp.text or "").strip() else ""
    except Exception:  # noqa: BLE001 — a streamed or unread body: the status alone
        body = ""
    if status is not None:
        return f"HTTP {status}: {body}" if body else f"HTTP {status}"
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) else type(e).__name__


def _call(dialect: str, prompt: str, base_url: str, real: dict[str, str]):
    """One SDK call with model="auto"; returns (headers, input tokens, output tokens)."""
    if dialect.endswith("+stream"):
        return _call_stream(dialect.removesuffix("+stream"), prompt, base_url, real)
    if dialect == "anthropic_messages":
        import anthropic

        c = anthropic.Anthropic(base_url=base_url, api_key=_key("anthropic", real), max_retries=0)
        raw = c.messages.with_raw_response.create(
            model="auto", max_tokens=256, messages=[{"role": "user", "content": prompt}]
        )
        msg = raw.parse()
        u = msg.usage
        return raw.headers, u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0), u.output_tokens
    import openai

    c = openai.OpenAI(base_url=f"{base_url}/v1", api_key=_key("openai", real), max_retries=0)
    if dialect == "openai_responses":
        raw = c.responses.with_raw_response.create(model="auto", input=prompt)
        r = raw.parse()
        return raw.headers, r.usage.input_tokens, r.usage.output_tokens
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": prompt}])
    r = raw.parse()
    return raw.headers, r.usage.prompt_tokens, r.usage.completion_tokens


#: Explicit-model traffic (frontier models named by the client): shadow routing scores each prompt
#: and the ledger records what routing would have saved (``report --opportunity``).
EXPLICIT: list[tuple[str, str, str]] = [
    ("openai_chat", "gpt-4o", "Convert 5 miles to kilometres."),
    ("openai_chat", "gpt-4o", "Name three primary colours."),
    ("openai_chat", "gpt-4o", "Derive the closed form of the sum 1 + 2 + ... + n and prove it by induction."),
    ("openai_chat", "gpt-4o", "Summarise this report for a CFO: " + "Quarterly revenue grew while cloud spend rose faster. " * 45),
    ("anthropic_messages", "claude-sonnet-4-5", "What is the boiling point of water at sea level?"),
    ("anthropic_messages", "claude-sonnet-4-5", "Design an algorithm to detect cycles in a directed graph and prove it correct."),
]


def _explicit_traffic_and_opportunity(stack: Stack, console: Console, real: dict[str, str], ledger_dir: Path) -> int:
    """Send ``EXPLICIT`` (the models the client names are kept), then print the opportunity
    report (``nadir-extproc report --opportunity --by model``) over this run's rows of the demo's
    ledger (``ledger_dir``). Returns the number of failed calls."""
    from datetime import datetime, timezone

    import anthropic
    import openai

    since = datetime.now(timezone.utc)

    failures = 0
    for dialect, model, prompt in EXPLICIT:
        try:
            if dialect == "anthropic_messages":
                anthropic.Anthropic(base_url=stack.base_url, api_key=_key("anthropic", real), max_retries=0).messages.create(
                    model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}])
            else:
                openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=_key("openai", real), max_retries=0).chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt}])
        except Exception as e:  # noqa: BLE001 — report and keep going
            failures += 1
            console.print(f"[red]{escape(model)}: {escape(_why(e))}[/red]", highlight=False)
    console.print(f"\n[bold]Explicit-model traffic[/bold]: {len(EXPLICIT)} requests naming gpt-4o / claude-sonnet-4-5, "
                  "served as asked; shadow routing scored each prompt. What routing would save "
                  "(nadir-extproc report --opportunity --by model):")
    from nadir_extproc.ledger import opportunity as op
    from nadir_extproc.ledger.store import open_store

    deadline = time.monotonic() + 10
    rep = None
    while time.monotonic() < deadline:  # the ledger writer flushes within ledger.flush_interval_s
        try:
            st = open_store(sqlite_dir=ledger_dir, create=False)
        except FileNotFoundError:
            time.sleep(0.3)
            continue
        try:
            rep = op.from_store(st, ["model"], since=since)
        finally:
            st.close()
        # Every call that reached Envoy has its row, a failed one too (provider_error, scored in
        # shadow like the rest): counting only the calls that succeeded stopped before the last
        # rows were written (4 failed gpt-4o rows met "2 left", one Claude row was missing).
        if rep.total.requests >= len(EXPLICIT):
            break
        time.sleep(0.3)
    if rep is not None:
        op.print_table(rep, console)
    return failures


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run_demo(
    keep_logs: Path | None = None, console: Console | None = None, upstream_urls: dict[str, str] | None = None,
    state_dir: Path | None = None,
) -> int:
    """Run the demo; returns a process exit code (0 when every call was routed and priced).

    ``upstream_urls`` (provider -> ``https://host``) sends those providers to real endpoints; the
    rest stay on the local emulator. ``state_dir``: where nadir-extproc keeps its ledger (so
    ``nadir-extproc report`` reads the demo's rows afterwards); default a temp folder removed at
    the end."""
    real = upstream_urls or {}
    console = console or output_console()
    if keep_logs:
        keep_logs.mkdir(parents=True, exist_ok=True)
    console.print("[bold]Starting emulator + nadir-extproc + Envoy 1.40 ...[/bold]")
    failures = 0
    env = {"NADIR_STATE_DIR": str(state_dir.resolve())} if state_dir else {}
    with Stack(log_dir=keep_logs, upstream_urls=real, extproc_env=env) as stack:
        console.print(f"Envoy listening on {stack.base_url} (upstream emulator {stack.emulator_url})")
        table = new_table(console, 'model="auto" through Envoy + nadir-extproc', show_lines=False)
        for col, just, width in [("prompt", "left", 32), ("API", "left", 16), ("routed to", "left", 26),
                                 ("in tok", "right", 6), ("out tok", "right", 7), ("cost USD", "right", 11),
                                 ("saved USD", "right", 11), ("ext_proc ms", "right", 11)]:
            table.add_column(col, justify=just, no_wrap=True, overflow="ellipsis", min_width=width)
        total_cost = Decimal(0)
        total_saved = Decimal(0)
        ours = []
        why: dict[str, int] = {}  # each distinct failure, once, under the table
        for dialect, prompt in PROMPTS:
            snippet = prompt.replace("\n", " ")[:31] + ("…" if len(prompt) > 31 else "")
            api = {"openai_chat": "chat", "openai_responses": "responses", "anthropic_messages": "messages"}[
                dialect.removesuffix("+stream")] + (" (stream)" if dialect.endswith("+stream") else "")
            try:
                h, tin, tout = _call(dialect, prompt, stack.base_url, real)
            except Exception as e:  # noqa: BLE001 — show the failure in the table, keep going
                failures += 1
                why[_why(e)] = why.get(_why(e), 0) + 1
                table.add_row(snippet, api, f"[red]{type(e).__name__}[/red]", "", "", "", "", "")
                continue
            cost = h.get(hn.COST)
            saved = h.get(hn.SAVED)
            if cost is None:
                failures += 1
            else:
                total_cost += Decimal(cost)
            if saved is not None:
                total_saved += Decimal(saved)
            lat = h.get(hn.LATENCY, "")
            if lat:
                ours.append(float(lat))
            table.add_row(snippet, api, h.get(hn.ROUTED_TO, "?"), str(tin), str(tout),
                          cost or f"[yellow]{h.get(hn.UNPRICED, 'n/a')}[/yellow]", saved or "", lat)
        console.print(table)
        for reason, k in why.items():
            console.print(f"[red]{k} call(s) failed:[/red] {escape(reason)}", highlight=False)
        console.print(f"Total cost [bold]${total_cost}[/bold], saved by routing vs the baseline models [bold]${total_saved}[/bold] "
                      f"over {len(PROMPTS)} requests.")
        failures += _explicit_traffic_and_opportunity(stack, console, real, (state_dir or stack.dir / "state") / "ledger")
        # Added latency: the same request straight to the emulator vs through Envoy + ext_proc.
        import openai

        direct = openai.OpenAI(base_url=f"{stack.emulator_url}/v1", api_key=API_KEY, max_retries=0)
        # Through Envoy with the real key when OpenAI is real (a dummy one there is 30 refusals).
        via = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=_key("openai", real), max_retries=0)
        msgs = [{"role": "user", "content": "What's the capital of France?"}]
        try:
            d_ms = _median_ms(lambda: direct.chat.completions.create(model="gpt-4o-mini", messages=msgs), 30)
            v_ms = _median_ms(lambda: via.chat.completions.create(model="auto", messages=msgs), 30)
        except openai.APIError as e:  # e.g. a real upstream that refuses the key or cannot be reached
            failures += 1
            console.print(f"[red]Latency probe failed[/red] ({type(e).__name__}: {e}); no latency figures.",
                          soft_wrap=True)
        else:
            console.print(
                f"Latency (median of 30, SDK wall time): direct to emulator {d_ms:.2f} ms, through Envoy + ext_proc "
                f"{v_ms:.2f} ms (+{v_ms - d_ms:.2f} ms); ext_proc's own processing median "
                f"{statistics.median(ours) if ours else float('nan'):.3f} ms per request."
            )
    console.print(_traces_line(after=True), soft_wrap=True)
    console.print("All processes stopped.")
    if state_dir:
        console.print(f"Ledger rows kept in {state_dir}/ledger: NADIR_STATE_DIR={state_dir} nadir-extproc report --by model",
                      soft_wrap=True)
    return 1 if failures else 0


def _traces_line(after: bool = False) -> str:
    """Where the spans and metrics went (Envoy's and nadir-extproc's): the OTLP gRPC collector of
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default localhost:4317), and whether anything listens there."""
    import socket
    from urllib.parse import urlsplit

    ep = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317")
    u = urlsplit(ep if "://" in ep else f"http://{ep}")
    host, port = u.hostname or "localhost", u.port or 4317
    try:
        with socket.create_connection((host, port), timeout=0.5):
            up = True
    except OSError:
        up = False
    where = f"Traces + metrics: OTLP gRPC to {host}:{port} (services nadir-envoy, nadir-extproc)"
    if up:
        return f"{where}{' sent' if after else ''}; with Jaeger there, open http://localhost:16686"
    return (f"{where}: nothing listens there, so they are dropped (counted). See them in Jaeger: "
            "docker run --rm -p 16686:16686 -p 4317:4317 jaegertracing/jaeger:latest, then rerun")
