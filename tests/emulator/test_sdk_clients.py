"""The official OpenAI and Anthropic SDKs parse the emulator's responses, streamed and not.

Expected values: reply 'You asked: "Hello!". This is a canned reply from the emulator.' and usage
from the x-emulator-usage header (input 7 uncached, cache_read 3, output 11 with reasoning 2), so
OpenAI reports prompt 7 + 3 = 10, Anthropic input 7 and cache_read 3.
"""

from __future__ import annotations

import json

import anthropic
import openai

REPLY = 'You asked: "Hello!". This is a canned reply from the emulator.'
USAGE = {"x-emulator-usage": json.dumps({"input": 7, "output": 11, "cache_read": 3, "reasoning": 2})}
HELLO = [{"role": "user", "content": "Hello!"}]


def openai_client(emulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=emulator.base_url + "/v1", api_key="sk-test", max_retries=0,
                              default_headers=USAGE)


def anthropic_client(emulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=emulator.base_url, api_key="sk-ant-test", max_retries=0,
                                    default_headers=USAGE)


async def test_openai_chat_sdk(emulator):
    async with openai_client(emulator) as client:
        done = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert done.model == "gpt-4o-mini-2024-07-18"
        assert done.choices[0].message.content == REPLY
        assert done.usage.prompt_tokens == 10 and done.usage.prompt_tokens_details.cached_tokens == 3
        assert done.usage.completion_tokens == 11 and done.usage.completion_tokens_details.reasoning_tokens == 2

        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True,
                                                      stream_options={"include_usage": True})
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                usage = chunk.usage
        assert text == REPLY
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 11, 21)


async def test_openai_chat_sdk_stream_helper_and_tool_call(emulator):
    tools = [{"type": "function", "function": {"name": "get_capital", "parameters": {
        "type": "object", "properties": {"country": {"type": "string"}}, "required": ["country"]}}}]
    async with openai_client(emulator) as client:
        async with client.chat.completions.stream(model="gpt-5", messages=HELLO, tools=tools,
                                                  stream_options={"include_usage": True}) as stream:
            final = await stream.get_final_completion()
        call = final.choices[0].message.tool_calls[0]
        assert call.function.name == "get_capital" and json.loads(call.function.arguments) == {"country": "example"}
        assert final.choices[0].finish_reason == "tool_calls"
        assert final.usage.prompt_tokens == 10


async def test_openai_responses_sdk(emulator):
    async with openai_client(emulator) as client:
        done = await client.responses.create(model="gpt-5-nano", input="Hello!")
        assert done.model == "gpt-5-nano-2025-08-07"
        assert done.output_text == REPLY
        assert done.usage.input_tokens == 10 and done.usage.input_tokens_details.cached_tokens == 3
        assert done.usage.output_tokens_details.reasoning_tokens == 2

        text, final = "", None
        stream = await client.responses.create(model="gpt-5-nano", input="Hello!", stream=True)
        async for event in stream:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "response.completed":
                final = event.response
        assert text == REPLY and final.output_text == REPLY
        assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (10, 11, 21)

        async with client.responses.stream(model="gpt-5-nano", input="Hello!") as helper:
            got = await helper.get_final_response()
        assert got.output_text == REPLY


async def test_anthropic_sdk(emulator):
    async with anthropic_client(emulator) as client:
        msg = await client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=HELLO)
        assert msg.model == "claude-sonnet-4-5-20250929"
        assert msg.content[0].text == REPLY and msg.stop_reason == "end_turn"
        assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (7, 3, 11)

        async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=256, messages=HELLO) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
        assert text == REPLY
        assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (7, 3, 11)

        raw = await client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=HELLO, stream=True)
        types = [event.type async for event in raw]
        assert types[0] == "message_start" and types[-1] == "message_stop"


async def test_anthropic_sdk_tool_use_stream(emulator):
    tools = [{"name": "lookup", "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}},
                                                 "required": ["n"]}}]
    async with anthropic_client(emulator) as client:
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=HELLO,
                                          tools=tools) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "tool_use"
        assert final.content[0].name == "lookup" and final.content[0].input == {"n": 42}


async def test_sdk_errors_are_typed(emulator):
    async with openai_client(emulator) as client:
        try:
            await client.chat.completions.create(model="auto", messages=HELLO)
        except openai.NotFoundError as exc:
            assert exc.code == "model_not_found"
        else:
            raise AssertionError("model 'auto' must be unknown upstream")
    async with anthropic_client(emulator) as client:
        try:
            await client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=HELLO,
                                         extra_headers={"x-emulator-status": "529"})
        except anthropic.APIStatusError as exc:
            assert exc.status_code == 529 and exc.body["error"]["type"] == "overloaded_error"
        else:
            raise AssertionError("forced 529 must raise")
