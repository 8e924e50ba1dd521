"""Our hand-written ext_proc subset must speak Envoy's real ``envoy.service.ext_proc.v3`` API.

The reference is ``envoy-data-plane`` (betterproto2 dataclasses generated from Envoy's full API).
Four groups of checks:

* ours -> Envoy: every oneof case built with our stubs, serialized, parsed by the reference classes;
  each field is compared with the plain Python input it was built from.
* Envoy -> ours: messages built with the reference classes, including fields our subset does not
  declare, parsed by our stubs; declared fields must match the input, undeclared ones must land in
  the unknown-field set (skipped, not misread) and survive a re-serialization.
* descriptors: every message/enum we declare exists in Envoy's API under the same full name, every
  field has Envoy's number, name, type, cardinality and oneof, every enum value Envoy's number.
* service: ``/envoy.service.ext_proc.v3.ExternalProcessor/Process``, bidi streaming, also over a
  real in-process gRPC connection with a reference-class client.

Expected values are literals / the inputs below, never read back from the stubs under test.
"""

from __future__ import annotations

import datetime
import importlib
import warnings
from concurrent import futures
from typing import Any

import betterproto2
import grpc
import pytest
from google.protobuf import unknown_fields
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

with warnings.catch_warnings():  # the generated reference code trips pydantic deprecation warnings
    warnings.simplefilter("ignore")
    import envoy_data_plane.envoy.config.core.v3 as ref_core
    import envoy_data_plane.envoy.extensions.filters.http.ext_proc.v3 as ref_pm
    import envoy_data_plane.envoy.service.ext_proc.v3 as ref_ep
    import envoy_data_plane.envoy.type.v3 as ref_type
    import envoy_data_plane.google.protobuf as ref_gp
    from envoy_data_plane.message_pool import default_message_pool as REF_POOL
from nadir_extproc.pb import base_pb2, http_status_pb2, processing_mode_pb2
from nadir_extproc.pb import external_processor_pb2 as ep_pb2
from nadir_extproc.pb import external_processor_pb2_grpc as ep_grpc

PROCESS_METHOD = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"

# Building Envoy messages with deprecated fields (HttpHeaders.attributes, HeaderValueOption.append)
# is deliberate: they are fields our subset does not declare.
pytestmark = pytest.mark.filterwarnings("ignore:.* is deprecated:DeprecationWarning")

# ---------------------------------------------------------------------------------------------
# Inputs (plain Python; both sides are built from and checked against these)
# ---------------------------------------------------------------------------------------------

REQUEST_HEADERS = [
    (":method", b"POST"),
    (":path", b"/v1/chat/completions"),
    (":authority", b"llm.internal"),
    ("content-type", b"application/json"),
    ("authorization", b"Bearer sk-test-123"),
    ("x-nadir-tenant", b"acme"),
    ("x-binary", bytes([0xFF, 0x00, 0x80, 0x7F])),  # raw_value is bytes, not necessarily UTF-8
    ("x-empty", b""),
]
RESPONSE_HEADERS = [
    (":status", b"200"),
    ("content-type", b"text/event-stream"),
    ("x-request-id", b"7f3c2a9e-1d2b-4c55-9e0f-000000000001"),
]
TRAILERS = [("grpc-status", b"0"), ("x-usage-tokens", b"1234")]
REQUEST_BODY = b'{"model":"auto","messages":[{"role":"user","content":"hi \xc3\xa9"}]}'
RESPONSE_BODY = b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'

SET_HEADERS = [  # (key, raw_value, keep_empty_value)
    ("x-nadir-provider", b"openai", False),
    ("content-length", b"57", True),
    ("x-nadir-empty", b"", True),
]
REMOVE_HEADERS = ["x-nadir-model", "authorization"]
REPLACED_BODY = b'{"model":"gpt-4o-mini","messages":[]}'
TRAILER_SET = [("x-nadir-cost-usd", b"0.000123", False)]
TRAILER_REMOVE = ["x-usage-tokens"]

IMMEDIATE_HEADERS = [("retry-after", b"30", False), ("content-type", b"application/json", False)]
IMMEDIATE_BODY = b'{"error":{"type":"budget_exceeded","message":"tenant acme is over budget"}}'
IMMEDIATE_DETAILS = "nadir_budget_exceeded"

# Every ProcessingMode field set to a non-default value, as enum member *names*.
MODE_NAMES = {
    "request_header_mode": "SKIP",
    "response_header_mode": "SEND",
    "request_body_mode": "BUFFERED",
    "response_body_mode": "STREAMED",
    "request_trailer_mode": "SEND",
    "response_trailer_mode": "SKIP",
}
# ... and their numbers in Envoy's processing_mode.proto.
MODE_NUMBERS = {
    "request_header_mode": 2,
    "response_header_mode": 1,
    "request_body_mode": 2,
    "response_body_mode": 1,
    "request_trailer_mode": 1,
    "response_trailer_mode": 2,
}
MODE_ENUM = {  # which enum each ProcessingMode field uses (Envoy's nested enum name)
    "request_header_mode": "HeaderSendMode",
    "response_header_mode": "HeaderSendMode",
    "request_body_mode": "BodySendMode",
    "response_body_mode": "BodySendMode",
    "request_trailer_mode": "HeaderSendMode",
    "response_trailer_mode": "HeaderSendMode",
}

REQUEST_ONEOF = [
    "request_headers",
    "response_headers",
    "request_body",
    "response_body",
    "request_trailers",
    "response_trailers",
]
RESPONSE_ONEOF = [*REQUEST_ONEOF, "immediate_response"]


# ---------------------------------------------------------------------------------------------
# Builders with OUR stubs
# ---------------------------------------------------------------------------------------------


def our_header_map(pairs: list[tuple[str, bytes]]) -> base_pb2.HeaderMap:
    return base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v) for k, v in pairs])


def our_mutation(sets: list[tuple[str, bytes, bool]], removes: list[str]) -> ep_pb2.HeaderMutation:
    return ep_pb2.HeaderMutation(
        set_headers=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=k, raw_value=v),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                keep_empty_value=keep,
            )
            for k, v, keep in sets
        ],
        remove_headers=removes,
    )


def our_common(clear_body: bool) -> ep_pb2.CommonResponse:
    body_mutation = (
        ep_pb2.BodyMutation(clear_body=True) if clear_body else ep_pb2.BodyMutation(body=REPLACED_BODY)
    )
    return ep_pb2.CommonResponse(
        status=ep_pb2.CommonResponse.CONTINUE_AND_REPLACE,
        header_mutation=our_mutation(SET_HEADERS, REMOVE_HEADERS),
        body_mutation=body_mutation,
        clear_route_cache=True,
    )


def our_mode() -> processing_mode_pb2.ProcessingMode:
    pm = processing_mode_pb2.ProcessingMode
    return pm(**{field: getattr(getattr(pm, MODE_ENUM[field]), name) for field, name in MODE_NAMES.items()})


def our_request(case: str, observability: bool = False) -> ep_pb2.ProcessingRequest:
    payload: Any
    if case == "request_headers":
        payload = ep_pb2.HttpHeaders(headers=our_header_map(REQUEST_HEADERS), end_of_stream=False)
    elif case == "response_headers":
        payload = ep_pb2.HttpHeaders(headers=our_header_map(RESPONSE_HEADERS), end_of_stream=True)
    elif case == "request_body":
        payload = ep_pb2.HttpBody(body=REQUEST_BODY, end_of_stream=True)
    elif case == "response_body":
        payload = ep_pb2.HttpBody(body=RESPONSE_BODY, end_of_stream=False)
    else:
        payload = ep_pb2.HttpTrailers(trailers=our_header_map(TRAILERS))
    return ep_pb2.ProcessingRequest(**{case: payload}, observability_mode=observability)


def our_response(case: str) -> ep_pb2.ProcessingResponse:
    payload: Any
    if case == "request_headers":
        payload = ep_pb2.HeadersResponse(response=our_common(clear_body=False))
    elif case == "response_headers":
        payload = ep_pb2.HeadersResponse(response=our_common(clear_body=True))
    elif case == "request_body":
        payload = ep_pb2.BodyResponse(response=our_common(clear_body=False))
    elif case == "response_body":
        payload = ep_pb2.BodyResponse(response=our_common(clear_body=True))
    elif case in ("request_trailers", "response_trailers"):
        payload = ep_pb2.TrailersResponse(header_mutation=our_mutation(TRAILER_SET, TRAILER_REMOVE))
    else:
        payload = ep_pb2.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=http_status_pb2.TooManyRequests),
            headers=our_mutation(IMMEDIATE_HEADERS, []),
            body=IMMEDIATE_BODY,
            details=IMMEDIATE_DETAILS,
        )
    return ep_pb2.ProcessingResponse(**{case: payload}, mode_override=our_mode())


# ---------------------------------------------------------------------------------------------
# Checks of reference-class (Envoy) objects against the inputs
# ---------------------------------------------------------------------------------------------


def assert_ref_header_map(hmap: Any, pairs: list[tuple[str, bytes]]) -> None:
    assert isinstance(hmap, ref_core.HeaderMap)
    assert [(h.key, h.value, h.raw_value) for h in hmap.headers] == [(k, "", v) for k, v in pairs]


def assert_ref_mutation(mut: Any, sets: list[tuple[str, bytes, bool]], removes: list[str]) -> None:
    assert isinstance(mut, ref_ep.HeaderMutation)
    got = [
        (o.header.key, o.header.value, o.header.raw_value, o.append_action, o.keep_empty_value, o.append)
        for o in mut.set_headers
    ]
    overwrite = ref_core.HeaderValueOptionHeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
    assert overwrite == 2
    assert got == [(k, "", v, overwrite, keep, None) for k, v, keep in sets]
    assert mut.remove_headers == removes


def assert_ref_common(common: Any, clear_body: bool) -> None:
    assert isinstance(common, ref_ep.CommonResponse)
    assert common.status == ref_ep.CommonResponseResponseStatus.CONTINUE_AND_REPLACE
    assert int(common.status) == 1
    assert_ref_mutation(common.header_mutation, SET_HEADERS, REMOVE_HEADERS)
    name, value = betterproto2.which_one_of(common.body_mutation, "mutation")
    if clear_body:
        assert (name, value) == ("clear_body", True)
    else:
        assert (name, value) == ("body", REPLACED_BODY)
    assert common.clear_route_cache is True
    assert common.trailers is None


def assert_ref_mode(mode: Any) -> None:
    assert isinstance(mode, ref_pm.ProcessingMode)
    for field, name in MODE_NAMES.items():
        ref_enum = getattr(ref_pm, "ProcessingMode" + MODE_ENUM[field])
        value = getattr(mode, field)
        assert value == ref_enum[name], field
        assert int(value) == MODE_NUMBERS[field], field


# ---------------------------------------------------------------------------------------------
# 1. ours -> Envoy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("observability", [False, True])
@pytest.mark.parametrize("case", REQUEST_ONEOF)
def test_our_processing_request_decodes_in_envoy(case: str, observability: bool) -> None:
    ref = ref_ep.ProcessingRequest.parse(our_request(case, observability).SerializeToString())

    name, payload = betterproto2.which_one_of(ref, "request")
    assert name == case
    assert ref.observability_mode is observability
    assert ref.metadata_context is None and ref.attributes == {} and ref.protocol_config is None

    if case == "request_headers":
        assert_ref_header_map(payload.headers, REQUEST_HEADERS)
        assert payload.end_of_stream is False
        assert payload.attributes == {}
    elif case == "response_headers":
        assert_ref_header_map(payload.headers, RESPONSE_HEADERS)
        assert payload.end_of_stream is True
    elif case == "request_body":
        assert (payload.body, payload.end_of_stream) == (REQUEST_BODY, True)
    elif case == "response_body":
        assert (payload.body, payload.end_of_stream) == (RESPONSE_BODY, False)
    else:
        assert isinstance(payload, ref_ep.HttpTrailers)
        assert_ref_header_map(payload.trailers, TRAILERS)


@pytest.mark.parametrize("case", RESPONSE_ONEOF)
def test_our_processing_response_decodes_in_envoy(case: str) -> None:
    ref = ref_ep.ProcessingResponse.parse(our_response(case).SerializeToString())

    name, payload = betterproto2.which_one_of(ref, "response")
    assert name == case
    assert_ref_mode(ref.mode_override)
    assert ref.dynamic_metadata is None
    assert ref.override_message_timeout is None
    assert ref.request_drain is False

    if case in ("request_headers", "response_headers"):
        assert isinstance(payload, ref_ep.HeadersResponse)
        assert_ref_common(payload.response, clear_body=case == "response_headers")
    elif case in ("request_body", "response_body"):
        assert isinstance(payload, ref_ep.BodyResponse)
        assert_ref_common(payload.response, clear_body=case == "response_body")
    elif case in ("request_trailers", "response_trailers"):
        assert isinstance(payload, ref_ep.TrailersResponse)
        assert_ref_mutation(payload.header_mutation, TRAILER_SET, TRAILER_REMOVE)
    else:
        assert isinstance(payload, ref_ep.ImmediateResponse)
        assert payload.status.code == ref_type.StatusCode.TooManyRequests
        assert int(payload.status.code) == 429
        assert_ref_mutation(payload.headers, IMMEDIATE_HEADERS, [])
        assert payload.body == IMMEDIATE_BODY
        assert payload.details == IMMEDIATE_DETAILS
        assert payload.grpc_status is None


def test_every_status_code_we_name_is_envoys() -> None:
    """Each named StatusCode of ours decodes to Envoy's member of the same name and number."""
    expected = {
        "Empty": 0, "OK": 200, "BadRequest": 400, "PayloadTooLarge": 413, "TooManyRequests": 429,
        "InternalServerError": 500, "BadGateway": 502, "ServiceUnavailable": 503, "GatewayTimeout": 504,
    }  # fmt: skip
    for name, number in expected.items():
        wire = ep_pb2.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=http_status_pb2.StatusCode.Value(name))
        ).SerializeToString()
        code = ref_ep.ImmediateResponse.parse(wire).status.code
        assert code == ref_type.StatusCode[name], name
        assert int(code) == number, name


# ---------------------------------------------------------------------------------------------
# 2. Envoy -> ours (with fields our subset does not declare)
# ---------------------------------------------------------------------------------------------


def ref_struct(**kv: str) -> Any:
    return ref_gp.Struct(fields={k: ref_gp.Value(string_value=v) for k, v in kv.items()})


def ref_header_map(pairs: list[tuple[str, bytes]]) -> Any:
    return ref_core.HeaderMap(headers=[ref_core.HeaderValue(key=k, raw_value=v) for k, v in pairs])


def ref_mutation(sets: list[tuple[str, bytes, bool]], removes: list[str]) -> Any:
    return ref_ep.HeaderMutation(
        set_headers=[
            ref_core.HeaderValueOption(
                header=ref_core.HeaderValue(key=k, raw_value=v),
                append=True,  # deprecated field 2, not declared by us
                append_action=ref_core.HeaderValueOptionHeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
                keep_empty_value=keep,
            )
            for k, v, keep in sets
        ],
        remove_headers=removes,
    )


def ref_common(clear_body: bool) -> Any:
    return ref_ep.CommonResponse(
        status=ref_ep.CommonResponseResponseStatus.CONTINUE_AND_REPLACE,
        header_mutation=ref_mutation(SET_HEADERS, REMOVE_HEADERS),
        body_mutation=(
            ref_ep.BodyMutation(clear_body=True) if clear_body else ref_ep.BodyMutation(body=REPLACED_BODY)
        ),
        trailers=ref_header_map(TRAILERS),  # field 4, not declared by us
        clear_route_cache=True,
    )


def ref_mode() -> Any:
    return ref_pm.ProcessingMode(
        **{
            field: getattr(ref_pm, "ProcessingMode" + MODE_ENUM[field])[name]
            for field, name in MODE_NAMES.items()
        }
    )


def unknown_numbers(msg: Any) -> set[int]:
    return {f.field_number for f in unknown_fields.UnknownFieldSet(msg)}


def assert_our_header_map(hmap: base_pb2.HeaderMap, pairs: list[tuple[str, bytes]]) -> None:
    assert [(h.key, h.value, h.raw_value) for h in hmap.headers] == [(k, "", v) for k, v in pairs]


def assert_our_mutation(
    mut: ep_pb2.HeaderMutation, sets: list[tuple[str, bytes, bool]], removes: list[str]
) -> None:
    got = [
        (o.header.key, o.header.value, o.header.raw_value, o.append_action, o.keep_empty_value)
        for o in mut.set_headers
    ]
    assert got == [(k, "", v, 2, keep) for k, v, keep in sets]  # 2 = OVERWRITE_IF_EXISTS_OR_ADD
    assert list(mut.remove_headers) == removes
    for option in mut.set_headers:  # the deprecated `append` (2) was skipped, not misread
        assert unknown_numbers(option) == {2}


def assert_our_common(common: ep_pb2.CommonResponse, clear_body: bool) -> None:
    assert common.status == 1  # CONTINUE_AND_REPLACE
    assert_our_mutation(common.header_mutation, SET_HEADERS, REMOVE_HEADERS)
    if clear_body:
        assert common.body_mutation.WhichOneof("mutation") == "clear_body"
        assert common.body_mutation.clear_body is True
    else:
        assert common.body_mutation.WhichOneof("mutation") == "body"
        assert common.body_mutation.body == REPLACED_BODY
    assert common.clear_route_cache is True
    assert unknown_numbers(common) == {4}  # CommonResponse.trailers


def assert_our_mode(mode: processing_mode_pb2.ProcessingMode) -> None:
    for field, number in MODE_NUMBERS.items():
        assert getattr(mode, field) == number, field


@pytest.mark.parametrize("case", REQUEST_ONEOF)
def test_envoy_processing_request_decodes_in_ours(case: str) -> None:
    payload: Any
    if case in ("request_headers", "response_headers"):
        pairs = REQUEST_HEADERS if case == "request_headers" else RESPONSE_HEADERS
        payload = ref_ep.HttpHeaders(
            headers=ref_header_map(pairs),
            attributes={"envoy.filters.http.ext_proc": ref_struct(**{"request.path": "/v1"})},  # field 2
            end_of_stream=True,
        )
    elif case in ("request_body", "response_body"):
        payload = ref_ep.HttpBody(body=REQUEST_BODY, end_of_stream=True)
    else:
        payload = ref_ep.HttpTrailers(trailers=ref_header_map(TRAILERS))
    ref = ref_ep.ProcessingRequest(
        **{case: payload},
        metadata_context=ref_core.Metadata(filter_metadata={"envoy.lb": ref_struct(canary="true")}),  # 8
        attributes={"envoy.filters.http.ext_proc": ref_struct(**{"source.address": "10.0.0.7"})},  # 9
        observability_mode=True,
        protocol_config=ref_ep.ProtocolConfiguration(  # 11
            request_body_mode=ref_pm.ProcessingModeBodySendMode.BUFFERED,
            response_body_mode=ref_pm.ProcessingModeBodySendMode.STREAMED,
            send_body_without_waiting_for_header_response=True,
        ),
    )
    wire = bytes(ref)

    ours = ep_pb2.ProcessingRequest.FromString(wire)

    assert ours.WhichOneof("request") == case
    assert ours.observability_mode is True
    assert unknown_numbers(ours) == {8, 11}
    # attributes (9) are in our subset (docs/extproc-phases.md) and decode to Envoy's values.
    assert ours.attributes["envoy.filters.http.ext_proc"].fields["source.address"].string_value == "10.0.0.7"
    got = getattr(ours, case)
    if case in ("request_headers", "response_headers"):
        assert_our_header_map(got.headers, pairs)
        assert got.end_of_stream is True
        assert unknown_numbers(got) == {2}
    elif case in ("request_body", "response_body"):
        assert (got.body, got.end_of_stream) == (REQUEST_BODY, True)
        assert unknown_numbers(got) == set()
    else:
        assert_our_header_map(got.trailers, TRAILERS)
        assert unknown_numbers(got) == set()

    # Skipped fields are kept, not lost: re-serialized, Envoy's classes read them back intact.
    assert ref_ep.ProcessingRequest.parse(ours.SerializeToString()) == ref


@pytest.mark.parametrize("case", RESPONSE_ONEOF)
def test_envoy_processing_response_decodes_in_ours(case: str) -> None:
    payload: Any
    if case in ("request_headers", "response_headers"):
        payload = ref_ep.HeadersResponse(response=ref_common(clear_body=case == "response_headers"))
    elif case in ("request_body", "response_body"):
        payload = ref_ep.BodyResponse(response=ref_common(clear_body=case == "response_body"))
    elif case in ("request_trailers", "response_trailers"):
        payload = ref_ep.TrailersResponse(header_mutation=ref_mutation(TRAILER_SET, TRAILER_REMOVE))
    else:
        payload = ref_ep.ImmediateResponse(
            status=ref_type.HttpStatus(code=ref_type.StatusCode.TooManyRequests),
            headers=ref_mutation(IMMEDIATE_HEADERS, []),
            body=IMMEDIATE_BODY,
            grpc_status=ref_ep.GrpcStatus(status=8),  # field 4, not declared by us
            details=IMMEDIATE_DETAILS,
        )
    ref = ref_ep.ProcessingResponse(
        **{case: payload},
        dynamic_metadata=ref_struct(nadir_route="openai/gpt-4o-mini"),  # 8
        mode_override=ref_mode(),
        override_message_timeout=datetime.timedelta(milliseconds=750),  # 10
        request_drain=True,  # 12
    )
    wire = bytes(ref)

    ours = ep_pb2.ProcessingResponse.FromString(wire)

    assert ours.WhichOneof("response") == case
    assert_our_mode(ours.mode_override)
    assert unknown_numbers(ours) == {8, 10, 12}
    got = getattr(ours, case)
    if case in ("request_headers", "response_headers", "request_body", "response_body"):
        assert_our_common(got.response, clear_body=case in ("response_headers", "response_body"))
    elif case in ("request_trailers", "response_trailers"):
        assert_our_mutation(got.header_mutation, TRAILER_SET, TRAILER_REMOVE)
    else:
        assert got.status.code == 429
        assert_our_mutation(got.headers, IMMEDIATE_HEADERS, [])
        assert got.body == IMMEDIATE_BODY
        assert got.details == IMMEDIATE_DETAILS
        assert unknown_numbers(got) == {4}

    assert ref_ep.ProcessingResponse.parse(ours.SerializeToString()) == ref


@pytest.mark.parametrize("code", [100, 201, 418, 451, 599])
def test_unnamed_status_codes_round_trip(code: int) -> None:
    """Proto3 enums are open: a status we do not name still reaches Envoy with its number."""
    ours = ep_pb2.ImmediateResponse.FromString(
        bytes(ref_ep.ImmediateResponse(status=ref_type.HttpStatus(code=ref_type.StatusCode(code))))
    )
    assert ours.status.code == code
    assert int(ref_ep.ImmediateResponse.parse(ours.SerializeToString()).status.code) == code


# ---------------------------------------------------------------------------------------------
# 3. Descriptors vs Envoy's API (betterproto2 field metadata)
# ---------------------------------------------------------------------------------------------

OUR_FILES = [
    base_pb2.DESCRIPTOR,
    http_status_pb2.DESCRIPTOR,
    processing_mode_pb2.DESCRIPTOR,
    ep_pb2.DESCRIPTOR,
]

_SCALAR = {
    FieldDescriptor.TYPE_DOUBLE: betterproto2.TYPE_DOUBLE,
    FieldDescriptor.TYPE_FLOAT: betterproto2.TYPE_FLOAT,
    FieldDescriptor.TYPE_INT64: betterproto2.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64: betterproto2.TYPE_UINT64,
    FieldDescriptor.TYPE_INT32: betterproto2.TYPE_INT32,
    FieldDescriptor.TYPE_FIXED64: betterproto2.TYPE_FIXED64,
    FieldDescriptor.TYPE_FIXED32: betterproto2.TYPE_FIXED32,
    FieldDescriptor.TYPE_BOOL: betterproto2.TYPE_BOOL,
    FieldDescriptor.TYPE_STRING: betterproto2.TYPE_STRING,
    FieldDescriptor.TYPE_BYTES: betterproto2.TYPE_BYTES,
    FieldDescriptor.TYPE_UINT32: betterproto2.TYPE_UINT32,
    FieldDescriptor.TYPE_SFIXED32: betterproto2.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64: betterproto2.TYPE_SFIXED64,
    FieldDescriptor.TYPE_SINT32: betterproto2.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64: betterproto2.TYPE_SINT64,
    FieldDescriptor.TYPE_ENUM: betterproto2.TYPE_ENUM,
    FieldDescriptor.TYPE_MESSAGE: betterproto2.TYPE_MESSAGE,
}


def _nested_messages(desc: Descriptor) -> list[Descriptor]:
    out = [desc]
    for nested in desc.nested_types:
        out += _nested_messages(nested)
    return out


def our_messages() -> list[Descriptor]:
    out: list[Descriptor] = []
    for f in OUR_FILES:
        for m in f.message_types_by_name.values():
            out += [d for d in _nested_messages(m) if not d.GetOptions().map_entry]
    return out


def our_enums() -> list[EnumDescriptor]:
    out = [e for f in OUR_FILES for e in f.enum_types_by_name.values()]
    for m in our_messages():
        out += list(m.enum_types)
    return out


def ref_message_class(full_name: str) -> type | None:
    return REF_POOL.url_to_type.get(f"type.googleapis.com/{full_name}")


def ref_enum_class(desc: EnumDescriptor) -> type | None:
    """betterproto2 flattens nested names.

    ``envoy.x.v3.Outer.Inner`` -> class ``OuterInner`` in module ``envoy_data_plane.envoy.x.v3``.
    """
    package = desc.file.package
    module = importlib.import_module(f"envoy_data_plane.{package}")
    return getattr(module, desc.full_name[len(package) + 1 :].replace(".", ""), None)


def ref_full_name(cls: type) -> str | None:
    url = REF_POOL.type_to_url.get(cls)
    return url.removeprefix("type.googleapis.com/") if url else None


def test_subset_is_not_empty() -> None:
    names = {m.full_name for m in our_messages()}
    assert {
        "envoy.service.ext_proc.v3.ProcessingRequest",
        "envoy.service.ext_proc.v3.ProcessingResponse",
        "envoy.config.core.v3.HeaderValue",
        "envoy.extensions.filters.http.ext_proc.v3.ProcessingMode",
        "envoy.type.v3.HttpStatus",
    } <= names
    assert len(our_enums()) >= 4


def _field_problems(field: FieldDescriptor, ref_cls: type) -> list[str]:
    where = f"{field.full_name} = {field.number}"
    meta_all = ref_cls._betterproto
    ref_name = meta_all.field_name_by_number.get(field.number)
    if ref_name is None:
        return [f"{where}: Envoy has no field number {field.number} in {ref_full_name(ref_cls)}"]
    meta = meta_all.meta_by_field_name[ref_name]
    problems = []
    if ref_name != field.name:
        problems.append(f"{where}: Envoy calls field {field.number} {ref_name!r}")

    is_map = field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
    if is_map:
        if meta.proto_type != betterproto2.TYPE_MAP:
            problems.append(f"{where}: map here, Envoy type {meta.proto_type!r}")
        else:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            ours = (_SCALAR[key.type], _SCALAR[value.type])
            theirs = (meta.map_meta[0].proto_type, meta.map_meta[1].proto_type)
            if ours != theirs:
                problems.append(f"{where}: map{ours} here, Envoy map{theirs}")
        return problems

    if _SCALAR[field.type] != meta.proto_type:
        problems.append(f"{where}: type {_SCALAR[field.type]!r} here, Envoy {meta.proto_type!r}")
    if bool(field.is_repeated) != bool(meta.repeated):
        problems.append(f"{where}: repeated={field.is_repeated} here, Envoy repeated={meta.repeated}")

    oneof = field.containing_oneof
    our_group = oneof.name if oneof is not None and not oneof.name.startswith("_") else None
    if our_group != meta.group:
        problems.append(f"{where}: oneof {our_group!r} here, Envoy oneof {meta.group!r}")

    if field.type == FieldDescriptor.TYPE_MESSAGE:
        target = meta.unwrap() if meta.unwrap else meta_all.cls_by_field[ref_name]
        if ref_full_name(target) != field.message_type.full_name:
            problems.append(
                f"{where}: message {field.message_type.full_name} here,"
                f" Envoy {ref_full_name(target) or target}"
            )
    elif field.type == FieldDescriptor.TYPE_ENUM:
        target = meta_all.cls_by_field[ref_name]
        expected = ref_enum_class(field.enum_type)
        if expected is None or target is not expected:
            problems.append(f"{where}: enum {field.enum_type.full_name} here, Envoy {target.__qualname__}")
    return problems


@pytest.mark.parametrize("desc", our_messages(), ids=lambda d: d.full_name)
def test_message_matches_envoy(desc: Descriptor) -> None:
    ref_cls = ref_message_class(desc.full_name)
    assert ref_cls is not None, f"Envoy's API has no message {desc.full_name}"
    problems = [p for field in desc.fields for p in _field_problems(field, ref_cls)]
    assert not problems, "\n".join(problems)
    # oneofs: same name, and each of our oneofs is a subset of Envoy's group
    ref_groups = {g: {f.name for f in fs} for g, fs in ref_cls._betterproto.oneof_field_by_group.items()}
    for oneof in desc.oneofs:
        if oneof.name.startswith("_"):
            continue
        assert oneof.name in ref_groups, f"{desc.full_name}: Envoy has no oneof {oneof.name}"
        assert {f.name for f in oneof.fields} <= ref_groups[oneof.name]


@pytest.mark.parametrize("desc", our_enums(), ids=lambda d: d.full_name)
def test_enum_matches_envoy(desc: EnumDescriptor) -> None:
    ref_cls = ref_enum_class(desc)
    assert ref_cls is not None, f"Envoy's API has no enum {desc.full_name}"
    ref_values = {(m.proto_name or m.name): int(m.value) for m in ref_cls}
    problems = []
    for value in desc.values:
        if value.name not in ref_values:
            problems.append(f"{desc.full_name}.{value.name}: not in Envoy")
        elif ref_values[value.name] != value.number:
            problems.append(f"{desc.full_name}.{value.name} = {value.number}: Envoy {ref_values[value.name]}")
    assert not problems, "\n".join(problems)


def test_reference_metadata_is_read_correctly() -> None:
    """Guards the helper above: known facts of Envoy's API, as betterproto2 stores them."""
    meta = ref_ep.ProcessingRequest._betterproto
    assert meta.field_name_by_number[2] == "request_headers"
    assert meta.meta_by_field_name["observability_mode"].number == 10
    assert meta.meta_by_field_name["attributes"].proto_type == betterproto2.TYPE_MAP
    assert ref_ep.HeaderMutation._betterproto.meta_by_field_name["remove_headers"].repeated is True
    assert ref_enum_class(base_pb2.HeaderValueOption.DESCRIPTOR.enum_types_by_name["HeaderAppendAction"]) is (
        ref_core.HeaderValueOptionHeaderAppendAction
    )
    assert ref_message_class("envoy.service.ext_proc.v3.HttpHeaders") is ref_ep.HttpHeaders


# ---------------------------------------------------------------------------------------------
# 4. Service
# ---------------------------------------------------------------------------------------------


def test_service_descriptor() -> None:
    service = ep_pb2.DESCRIPTOR.services_by_name["ExternalProcessor"]
    assert service.full_name == "envoy.service.ext_proc.v3.ExternalProcessor"
    assert [m.name for m in service.methods] == ["Process"]
    method = service.methods_by_name["Process"]
    assert method.client_streaming is True and method.server_streaming is True
    assert method.input_type.full_name == "envoy.service.ext_proc.v3.ProcessingRequest"
    assert method.output_type.full_name == "envoy.service.ext_proc.v3.ProcessingResponse"
    # Envoy's own service table agrees on path and cardinality.
    handler = ref_ep.ExternalProcessorBase().__mapping__()[PROCESS_METHOD]
    assert handler.cardinality.value.client_streaming and handler.cardinality.value.server_streaming


def test_client_stub_uses_bidi_process_path() -> None:
    calls: list[tuple[str, str]] = []

    class Channel:
        def __getattr__(self, kind: str):
            return lambda path, **kw: calls.append((kind, path))

    ep_grpc.ExternalProcessorStub(Channel())
    assert calls == [("stream_stream", PROCESS_METHOD)]


def test_server_registration_is_bidi() -> None:
    recorded: dict[str, Any] = {}

    class Server:
        def add_generic_rpc_handlers(self, handlers):
            recorded["generic"] = handlers

        def add_registered_method_handlers(self, service, handlers):
            recorded["registered"] = (service, handlers)

    ep_grpc.add_ExternalProcessorServicer_to_server(ep_grpc.ExternalProcessorServicer(), Server())
    service, handlers = recorded["registered"]
    assert service == "envoy.service.ext_proc.v3.ExternalProcessor"
    assert set(handlers) == {"Process"}
    assert handlers["Process"].request_streaming is True
    assert handlers["Process"].response_streaming is True


def test_bidi_stream_over_grpc_with_envoy_client() -> None:
    """A real gRPC round trip: Envoy's message classes on the client, our stubs on the server."""

    class Echo(ep_grpc.ExternalProcessorServicer):
        def Process(self, request_iterator, context):
            for request in request_iterator:
                kind = request.WhichOneof("request")
                if kind == "request_headers":
                    yield ep_pb2.ProcessingResponse(
                        request_headers=ep_pb2.HeadersResponse(
                            response=ep_pb2.CommonResponse(
                                header_mutation=our_mutation([("x-seen", b"headers", False)], [])
                            )
                        )
                    )
                else:
                    yield ep_pb2.ProcessingResponse(
                        immediate_response=ep_pb2.ImmediateResponse(
                            status=http_status_pb2.HttpStatus(code=http_status_pb2.TooManyRequests),
                            body=request.request_body.body,
                        )
                    )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ep_grpc.add_ExternalProcessorServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream(
                PROCESS_METHOD,
                request_serializer=bytes,
                response_deserializer=ref_ep.ProcessingResponse.parse,
            )
            requests = [
                ref_ep.ProcessingRequest(
                    request_headers=ref_ep.HttpHeaders(headers=ref_header_map(REQUEST_HEADERS))
                ),
                ref_ep.ProcessingRequest(request_body=ref_ep.HttpBody(body=REQUEST_BODY, end_of_stream=True)),
            ]
            replies = list(call(iter(requests), timeout=10))
    finally:
        server.stop(grace=None)

    assert [betterproto2.which_one_of(r, "response")[0] for r in replies] == [
        "request_headers",
        "immediate_response",
    ]
    opt = replies[0].request_headers.response.header_mutation.set_headers[0]
    assert (opt.header.key, opt.header.raw_value) == ("x-seen", b"headers")
    assert int(replies[1].immediate_response.status.code) == 429
    assert replies[1].immediate_response.body == REQUEST_BODY
