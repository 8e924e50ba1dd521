"""The rule-based router: the fallback when the ONNX router is unavailable.

Rules, in order (the first that fires decides; thresholds are constructor arguments):
1. a code fence (three backticks) in the prompt -> strong, reason ``code_fence``;
2. prompt longer than ``long_prompt_chars`` characters (default 2,000, about 500 tokens) -> strong,
   reason ``long_prompt``;
3. a reasoning marker word (``prove``, ``derive``, ``step by step``, ``debug``, ``refactor``,
   ``analyze``/``analyse``, ``optimi[sz]e``, ``algorithm``, ``theorem``, ``complexity``,
   ``architecture``), case-insensitive on word boundaries -> strong, reason ``reasoning_marker``;
4. more than ``many_messages`` messages (default 8) -> strong, reason ``long_conversation``;
5. otherwise weak, reason ``short_simple``.
A tier the client pinned (``RouteRequest.pinned_tier``, the ``x-nadir-tier`` header, any case) that the policy
knows for the provider replaces the rules, reason ``pinned``. The policy's hard constraints
(``TierPolicy.pick``: context window, images, tools) then apply, and the constraints that changed
the model are appended to the reason (``code_fence+vision``).
Score is 1.0 for strong and 0.0 for weak (rules have no probability); ``None`` for a pinned tier.
"""

from __future__ import annotations

import re

from nadir_extproc.routing.base import Decision, RouteRequest
from nadir_extproc.routing.policy import TierPolicy

_MARKERS = re.compile(
    r"\b(prove|proof|derive|step[- ]by[- ]step|debug|refactor|analy[sz]e|optimi[sz]e|algorithm|"
    r"theorem|complexity|architecture)\b",
    re.IGNORECASE,
)


class RuleRouter:
    """Rule-based ``Router`` (see module docstring for the rules)."""

    def __init__(self, policy: TierPolicy, long_prompt_chars: int = 2000, many_messages: int = 8) -> None:
        self.policy = policy
        self.long_prompt_chars = long_prompt_chars
        self.many_messages = many_messages

    def _tier(self, req: RouteRequest) -> tuple[str, str]:
        p = req.prompt
        if "```" in p:
            return "strong", "code_fence"
        if len(p) > self.long_prompt_chars:
            return "strong", "long_prompt"
        if _MARKERS.search(p):
            return "strong", "reasoning_marker"
        if req.message_count > self.many_messages:
            return "strong", "long_conversation"
        return "weak", "short_simple"

    def route(self, request: RouteRequest) -> Decision:
        """Decide by the rules; raises ``KeyError`` if the policy has no model for the provider."""
        def judge() -> tuple[str, str, float]:
            tier, reason = self._tier(request)
            return tier, reason, 1.0 if tier == "strong" else 0.0

        return self.policy.decide(request, "rules", judge)
