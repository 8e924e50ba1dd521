"""OpenAI (api.openai.com): Chat Completions and Responses.

Sources: OpenAI API reference — "The chat completion object" and "The response object" (usage,
``service_tier``), "Error codes" (429 body), "Authentication" (bearer key).
"""

from nadir_extproc.providers.base import Provider

PROVIDER = Provider(
    id="openai",
    dialects=("openai_chat", "openai_responses"),
    catalogue_id="openai",
    otel_name="openai",
    hosts=("api.openai.com",),
    tier_signal="top-level service_tier (default, flex, priority, scale)",
    key_headers=("authorization",),
    docs="https://platform.openai.com/docs/api-reference",
)
