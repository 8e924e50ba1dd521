"""Anthropic (api.anthropic.com): Messages.

Sources: Anthropic API reference — "Messages" (usage, ``usage.service_tier``,
``usage.server_tool_use.web_search_requests``), "Errors" (429 body), "Authentication"
(``x-api-key``).
"""

from nadir_extproc.providers.base import Provider

PROVIDER = Provider(
    id="anthropic",
    dialects=("anthropic_messages",),
    catalogue_id="anthropic",
    otel_name="anthropic",
    hosts=("api.anthropic.com",),
    billed_extras=("web_search_requests",),
    tier_signal="usage.service_tier (standard, priority, batch)",
    key_headers=("x-api-key", "authorization"),
    docs="https://docs.anthropic.com/en/api/messages",
)
