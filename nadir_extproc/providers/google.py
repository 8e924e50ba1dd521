"""Google Gemini (generativelanguage.googleapis.com, and Vertex AI): ``generateContent``.

Sources: Gemini API reference — ``GenerateContentResponse.UsageMetadata`` (usage,
``serviceTier``), "API keys" (``x-goog-api-key`` header or ``?key=``), AIP-193 (error body).
"""

from nadir_extproc.providers.base import Provider

PROVIDER = Provider(
    id="google",
    dialects=("gemini",),
    catalogue_id="google",
    otel_name="gcp.gemini",
    hosts=("generativelanguage.googleapis.com", "aiplatform.googleapis.com"),
    clusters=("google", "gemini"),
    tier_signal="usageMetadata.serviceTier (standard, flex, priority)",
    key_headers=("x-goog-api-key",),
    key_query="key",
    key_query_header="x-goog-api-key",
    docs="https://ai.google.dev/api/generate-content",
)
