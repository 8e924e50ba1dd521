"""Every span attribute and metric name nadir-extproc exports, in one place.

``gen_ai.*`` names are the OpenTelemetry GenAI semantic conventions as released in core semconv
v1.41.1 (the last core release carrying them; later ones moved them to a separate GenAI repo),
imported from ``opentelemetry-semantic-conventions`` so a typo cannot creep in. Names that the
convention does not define live under ``nadir.*``; ``gen_ai.usage.cost`` is not in the convention
but is the name several GenAI tools already read (emitted unless ``telemetry.emit_usage_cost`` is
off).

Units: token counts in tokens; money in USD (exact decimal strings on spans, floats only where a
number is required: ``gen_ai.usage.cost`` and the cost counters); durations in the unit the name
says (``*_ms`` in milliseconds, metric durations in seconds).
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _ga
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gm
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.semconv.schemas import Schemas

#: Schema of the conventions we follow.
SCHEMA_URL: Final = Schemas.V1_41_1.value
INSTRUMENTATION_NAME: Final = "nadir_extproc"

# --------------------------------------------------------------------- gen_ai.* (semconv v1.41.1)
OPERATION_NAME: Final = _ga.GEN_AI_OPERATION_NAME
PROVIDER_NAME: Final = _ga.GEN_AI_PROVIDER_NAME
REQUEST_MODEL: Final = _ga.GEN_AI_REQUEST_MODEL
RESPONSE_MODEL: Final = _ga.GEN_AI_RESPONSE_MODEL
RESPONSE_ID: Final = _ga.GEN_AI_RESPONSE_ID
RESPONSE_FINISH_REASONS: Final = _ga.GEN_AI_RESPONSE_FINISH_REASONS
REQUEST_MAX_TOKENS: Final = _ga.GEN_AI_REQUEST_MAX_TOKENS
REQUEST_TEMPERATURE: Final = _ga.GEN_AI_REQUEST_TEMPERATURE
REQUEST_TOP_P: Final = _ga.GEN_AI_REQUEST_TOP_P
REQUEST_TOP_K: Final = _ga.GEN_AI_REQUEST_TOP_K
REQUEST_FREQUENCY_PENALTY: Final = _ga.GEN_AI_REQUEST_FREQUENCY_PENALTY
REQUEST_PRESENCE_PENALTY: Final = _ga.GEN_AI_REQUEST_PRESENCE_PENALTY
REQUEST_SEED: Final = _ga.GEN_AI_REQUEST_SEED
REQUEST_STOP_SEQUENCES: Final = _ga.GEN_AI_REQUEST_STOP_SEQUENCES
REQUEST_CHOICE_COUNT: Final = _ga.GEN_AI_REQUEST_CHOICE_COUNT
#: All input tokens, cache reads and writes included (the convention's definition).
USAGE_INPUT_TOKENS: Final = _ga.GEN_AI_USAGE_INPUT_TOKENS
USAGE_OUTPUT_TOKENS: Final = _ga.GEN_AI_USAGE_OUTPUT_TOKENS
USAGE_CACHE_READ_INPUT_TOKENS: Final = _ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _ga.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
USAGE_REASONING_OUTPUT_TOKENS: Final = _ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
TOKEN_TYPE: Final = _ga.GEN_AI_TOKEN_TYPE
INPUT_MESSAGES: Final = _ga.GEN_AI_INPUT_MESSAGES
OUTPUT_MESSAGES: Final = _ga.GEN_AI_OUTPUT_MESSAGES
SYSTEM_INSTRUCTIONS: Final = _ga.GEN_AI_SYSTEM_INSTRUCTIONS
ERROR_TYPE_ATTR: Final = ERROR_TYPE
HTTP_STATUS: Final = HTTP_RESPONSE_STATUS_CODE

TOKEN_TYPE_INPUT: Final = _ga.GenAiTokenTypeValues.INPUT.value
TOKEN_TYPE_OUTPUT: Final = _ga.GenAiTokenTypeValues.OUTPUT.value

#: Widely read by GenAI tools (not in the convention): cost of the call in USD, as a float.
USAGE_COST: Final = "gen_ai.usage.cost"

#: ``gen_ai.operation.name`` values the dialects use (each dialect owns its own: ``Dialect.operation``).
OPERATION_CHAT: Final = _ga.GenAiOperationNameValues.CHAT.value
OPERATION_GENERATE_CONTENT: Final = _ga.GenAiOperationNameValues.GENERATE_CONTENT.value
DEFAULT_OPERATION: Final = OPERATION_CHAT
#: ``gen_ai.provider.name`` per provider: ``nadir_extproc.providers.known`` (each entry's ``otel_name``).

# --------------------------------------------------------------------- nadir.* (ours)
COST_USD: Final = "nadir.cost.usd"  # exact decimal string, e.g. "0.00045"
COST_SAVED_USD: Final = "nadir.cost.saved_usd"  # exact decimal string; may be negative
COST_BASELINE_MODEL: Final = "nadir.cost.baseline_model"
COST_BASELINE_USD: Final = "nadir.cost.baseline_usd"  # exact decimal string
COST_UNPRICED_REASON: Final = "nadir.cost.unpriced_reason"
#: A stream that ended with an error event: what its usage so far would cost (never its price).
COST_PARTIAL_USD: Final = "nadir.cost.partial_usd"
#: The provider's own figure for the request (OpenRouter / Perplexity ``usage.cost``) and ours.
COST_REPORTED_USD: Final = "nadir.cost.reported_usd"
COST_CATALOGUE_USD: Final = "nadir.cost.catalogue_usd"
COST_CORRECTIONS: Final = "nadir.cost.corrections"  # catalogue corrections applied (ids)
COST_CATALOGUE: Final = "nadir.cost.catalogue"  # e.g. "genai-prices 0.2.3"
ROUTE_MODEL: Final = "nadir.route.model"  # the concrete model sent upstream
ROUTE_TIER: Final = "nadir.route.tier"
ROUTE_SCORE: Final = "nadir.route.score"
ROUTE_REASON: Final = "nadir.route.reason"
ROUTE_ROUTER: Final = "nadir.route.router"
ROUTE_LATENCY_MS: Final = "nadir.route.latency_ms"
#: Shadow routing (explicit-model requests): what the router would have chosen, and what that
#: would have cost at the same usage (an estimate), and actual - what-if when positive.
SHADOW_TIER: Final = "nadir.shadow.tier"
SHADOW_MODEL: Final = "nadir.shadow.model"
SHADOW_SCORE: Final = "nadir.shadow.score"
SHADOW_ROUTER: Final = "nadir.shadow.router"
SHADOW_COST_USD: Final = "nadir.shadow.cost_usd"  # exact decimal string
SHADOW_OPPORTUNITY_USD: Final = "nadir.shadow.opportunity_usd"  # exact decimal string, >= 0
PROCESSING_LATENCY_MS: Final = "nadir.latency_ms"  # our time on this request across phases
STREAM: Final = "nadir.stream"
STREAM_CUT: Final = "nadir.stream.cut"  # the response ended before its end (client/upstream cut)
DIALECT: Final = "nadir.dialect"
KEY_ID: Final = "nadir.key_id"  # a key *id* from the ledger; never a raw key
TAG_PREFIX: Final = "nadir.tag."  # + tag name: user, feature, team, environment, ...

# --------------------------------------------------------------------- metrics
M_TOKEN_USAGE: Final = _gm.GEN_AI_CLIENT_TOKEN_USAGE
M_OPERATION_DURATION: Final = _gm.GEN_AI_CLIENT_OPERATION_DURATION
M_COST: Final = "nadir.llm.cost"  # counter, USD
M_SAVINGS: Final = "nadir.llm.savings"  # counter, USD (may go down: negative savings)
M_OPPORTUNITY: Final = "nadir.llm.opportunity"  # counter, USD: what routing would save (shadow)
M_ROUTER_DECISIONS: Final = "nadir.router.decisions"  # counter, {decision}
M_UNPRICED: Final = "nadir.unpriced.requests"  # counter, {request}
M_PROCESSING_DURATION: Final = "nadir.extproc.processing.duration"  # histogram, s
M_SPANS_DROPPED: Final = "nadir.telemetry.spans.dropped"  # observable counter, {span}
M_EVENTS: Final = "nadir.events"  # observable counter of nadir_extproc.stats events

#: Bucket boundaries the GenAI convention advises.
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS_S: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
#: Our own processing time is sub-millisecond to tens of ms.
PROCESSING_BUCKETS_S: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

#: Tags that may become metric labels (bounded); ``user``, ``session`` and key ids never do.
#: (``env`` is the tag name ``nadir_extproc.tags`` uses for the environment.)
METRIC_TAGS: Final = ("feature", "team", "env", "environment")
