"""Tool calls: offered function tools are called (first or named one) with arguments filled by type;
after a tool result, or with tool_choice none, the emulator answers in text (so agent loops end).

Output tokens of a call = ceil(bytes(name + compact JSON arguments) / 4):
``lookup`` + ``{"n":42}`` = 6 + 8 = 14 bytes -> 4 tokens.
"""

from __future__ import annotations

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "opt": {"type": "string"}}, "required": ["n"]}
CHAT_TOOLS = [{"type": "function", "function": {"name": "other", "parameters": {}}},
              {"type": "function", "function": {"name": "lookup", "parameters": SCHEMA}}]


async def post(http, emulator, path, body):
    async with http.post(emulator.base_url + path, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_chat_named_tool_and_loop_end(emulator, http):
    body = await post(http, emulator, "/v1/chat/completions", {
        "model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "tools": CHAT_TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "lookup"}}})
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "lookup", "arguments": '{"n":42}'} and call["id"].startswith("call_")
    assert body["choices"][0]["message"]["content"] is None and body["usage"]["completion_tokens"] == 4
    after = await post(http, emulator, "/v1/chat/completions", {"model": "gpt-4o", "tools": CHAT_TOOLS, "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": call["id"], "type": "function",
                                                              "function": call["function"]}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "7"}]})
    assert after["choices"][0]["finish_reason"] == "stop"
    assert after["choices"][0]["message"]["content"] == 'You asked: "7". This is a canned reply from the emulator.'
    none = await post(http, emulator, "/v1/chat/completions", {
        "model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "tools": CHAT_TOOLS, "tool_choice": "none"})
    assert "tool_calls" not in none["choices"][0]["message"]


async def test_responses_function_call_then_text(emulator, http):
    tools = [{"type": "function", "name": "lookup", "parameters": SCHEMA}]
    body = await post(http, emulator, "/v1/responses", {"model": "gpt-5", "input": "Hi", "tools": tools})
    [item] = body["output"]
    assert (item["type"], item["name"], item["arguments"]) == ("function_call", "lookup", '{"n":42}')
    after = await post(http, emulator, "/v1/responses", {"model": "gpt-5", "tools": tools, "input": [
        {"role": "user", "content": "Hi"}, item, {"type": "function_call_output", "call_id": item["call_id"],
                                                  "output": "seven"}]})
    assert after["output"][0]["type"] == "message"
    assert after["output"][0]["content"][0]["text"].startswith('You asked: "seven".')


async def test_anthropic_tool_choice_none_and_tool_result(emulator, http):
    tools = [{"name": "lookup", "input_schema": SCHEMA}]
    none = await post(http, emulator, "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 99, "tools": tools,
                                                       "tool_choice": {"type": "none"},
                                                       "messages": [{"role": "user", "content": "Hi"}]})
    assert none["content"][0]["type"] == "text"
    after = await post(http, emulator, "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 99, "tools": tools,
                                                        "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"n": 42}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "seven"}]}]})
    assert after["stop_reason"] == "end_turn"
    assert after["content"][0]["text"].startswith('You asked: "seven".')


async def test_gemini_function_call(emulator, http):
    body = await post(http, emulator, "/v1beta/models/gemini-2.5-flash:generateContent", {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "tools": [{"functionDeclarations": [{"name": "lookup", "parameters": SCHEMA}]}]})
    assert body["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "lookup", "args": {"n": 42}}}]
    assert body["usageMetadata"]["candidatesTokenCount"] == 4
