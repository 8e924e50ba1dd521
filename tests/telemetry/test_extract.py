"""What telemetry reads from bodies: request parameters, response id and finish reasons, and content
only when opted in. Bodies are written by hand in each API's documented shape."""

from __future__ import annotations

import json

import pytest

from nadir_extproc.record import Outcome
from nadir_extproc.dialects import DIALECTS
from nadir_extproc.telemetry.extract import note_request, note_response_content, request_params


def response_info(body):
    # Each dialect reads its own response: (gen_ai.response.id, gen_ai.response.finish_reasons).
    d = DIALECTS["openai_chat" if "choices" in body else "anthropic_messages" if "stop_reason" in body
                 else "openai_responses" if body.get("object") == "response" else "gemini"]
    info = d.response_info(body)
    return info.response_id, info.finish_reasons


def test_chat_parameters():
    body = {"model": "auto", "messages": [], "max_completion_tokens": 300, "temperature": 0.7, "top_p": 1,
            "frequency_penalty": -0.5, "presence_penalty": 0.25, "seed": 42, "n": 3, "stop": "END"}
    assert request_params(body, DIALECTS["openai_chat"]) == {
        "gen_ai.request.max_tokens": 300, "gen_ai.request.temperature": 0.7, "gen_ai.request.top_p": 1.0,
        "gen_ai.request.frequency_penalty": -0.5, "gen_ai.request.presence_penalty": 0.25,
        "gen_ai.request.seed": 42, "gen_ai.request.choice.count": 3, "gen_ai.request.stop_sequences": ["END"],
    }


def test_anthropic_responses_and_gemini_parameters():
    assert request_params({"max_tokens": 1024, "top_k": 40, "stop_sequences": ["a", "b"]}, DIALECTS["anthropic_messages"]) == {
        "gen_ai.request.max_tokens": 1024, "gen_ai.request.top_k": 40.0, "gen_ai.request.stop_sequences": ["a", "b"]}
    assert request_params({"max_output_tokens": 77, "temperature": 0}, DIALECTS["openai_responses"]) == {
        "gen_ai.request.max_tokens": 77, "gen_ai.request.temperature": 0.0}
    assert request_params({"contents": [], "generationConfig": {"maxOutputTokens": 9, "topP": 0.5, "candidateCount": 1}}, DIALECTS["gemini"]) == {
        "gen_ai.request.max_tokens": 9, "gen_ai.request.top_p": 0.5}  # choice count 1 is left out


@pytest.mark.parametrize("name", ["openai_chat", "anthropic_messages"])
@pytest.mark.parametrize("bad", [None, "0.5", True, [1], {"x": 1}])
def test_odd_parameter_values_are_left_out(bad, name):
    assert request_params({"temperature": bad, "max_tokens": bad}, DIALECTS[name]) == {}


@pytest.mark.parametrize("bad", [None, True, 3, [], [1], ["a", 2], {"x": 1}])
def test_odd_stop_values_are_left_out(bad):
    assert request_params({"stop": bad}, DIALECTS["openai_chat"]) == {}


def test_max_tokens_must_be_a_whole_number():
    assert request_params({"max_tokens": 12.5}, DIALECTS["openai_chat"]) == {}
    assert request_params({"max_tokens": 12.0}, DIALECTS["openai_chat"]) == {"gen_ai.request.max_tokens": 12}


def test_response_id_and_finish_reasons_per_api():
    assert response_info({"id": "chatcmpl-1", "object": "chat.completion",
                          "choices": [{"finish_reason": "stop"}, {"finish_reason": "length"}]}) == ("chatcmpl-1", ["stop", "length"])
    assert response_info({"id": "msg_1", "type": "message", "stop_reason": "end_turn"}) == ("msg_1", ["end_turn"])
    assert response_info({"id": "resp_1", "object": "response", "status": "completed"}) == ("resp_1", ["completed"])
    assert response_info({"id": "resp_2", "object": "response", "status": "incomplete",
                          "incomplete_details": {"reason": "max_output_tokens"}}) == ("resp_2", ["max_output_tokens"])
    assert response_info({"responseId": "g-1", "candidates": [{"finishReason": "STOP"}]}) == ("g-1", ["STOP"])
    assert response_info({"choices": [{"finish_reason": None}]}) == (None, None)


def test_notes_keep_no_content_unless_opted_in():
    body = {"model": "auto", "max_tokens": 5, "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}]}
    off = Outcome()
    note_request(off, body, DIALECTS["anthropic_messages"])
    assert off.request_params == {"gen_ai.request.max_tokens": 5}
    assert off.content is None
    on = Outcome()
    note_request(on, body, DIALECTS["anthropic_messages"], capture_content=True)
    assert json.loads(on.content["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}, {"type": "image"}]}]
    assert json.loads(on.content["gen_ai.system_instructions"]) == [{"type": "text", "content": "be brief"}]
    reply = {"id": "msg_9", "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn"}
    note_response_content(on, reply, DIALECTS["anthropic_messages"])
    assert response_info(reply) == ("msg_9", ["end_turn"])
    assert json.loads(on.content["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "end_turn"}]
