"""Routing: the Router interface, tier policy and the rule-based router."""
