"""The demo's table shows input / output tokens for streamed rows too, as the stream's own usage
reports them (newcomer finding: streamed rows showed "—")."""

from __future__ import annotations

from nadir_extproc.demo import _streamed

def test_streamed_rows_count_tokens_from_the_stream_usage(provider_responses):
    root = provider_responses
    # 30-anthropic-stream-basic: message_start input_tokens 20 (no cache), message_delta output_tokens 5
    _, tin, tout = _streamed("anthropic_messages", (root / "30-anthropic-stream-basic.response.sse").read_bytes())
    assert (tin, tout) == (20, 5)
    # 03-openai-chat-stream-include-usage: the usage chunk says prompt_tokens 12, completion_tokens 100
    _, tin, tout = _streamed("openai_chat", (root / "03-openai-chat-stream-include-usage.response.sse").read_bytes())
    assert (tin, tout) == (12, 100)
    # 04-openai-chat-stream-no-usage: no usage chunk -> nothing to show
    _, tin, tout = _streamed("openai_chat", (root / "04-openai-chat-stream-no-usage.response.sse").read_bytes())
    assert (tin, tout) == ("—", "—")
    fields, _, _ = _streamed("openai_chat", b": x-nadir-cost-usd=0.001\n\ndata: [DONE]\n\n")
    assert fields == {"x-nadir-cost-usd": "0.001"}
