"""Tags from headers and bodies, their validation, and API-key identity (HMAC-SHA256 key ids,
the per-installation secret file)."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat

import pytest

from nadir_extproc.stats import COUNTS
from nadir_extproc.tags import (
    DEFAULT_TAG_HEADERS,
    KeyIdentity,
    api_key,
    apply_body_fallback,
    identity_from_settings,
    load_secret,
    read_tags,
)

MARKER = "sk-MARKER-7f3a9c-never-store-me"


def test_default_headers_and_allowed_generic_tags():
    h = {
        "x-nadir-user": "alice", "x-nadir-feature": "search", "x-nadir-team": "growth", "x-nadir-env": "prod",
        "x-nadir-session": "s-1", "x-nadir-tag-cost-center": "cc42", "content-type": "application/json",
    }
    r = read_tags(h, DEFAULT_TAG_HEADERS, {"cost-center"})
    assert r.tags == {"user": "alice", "feature": "search", "team": "growth", "env": "prod", "session": "s-1", "cost-center": "cc42"}
    assert sorted(r.tag_headers) == sorted([*DEFAULT_TAG_HEADERS.values(), "x-nadir-tag-cost-center"])
    assert r.dropped == []


def test_configured_header_names_replace_the_defaults():
    r = read_tags({"x-team": "core", "x-nadir-team": "ignored"}, {"team": "x-team"})
    assert r.tags == {"team": "core"}
    assert r.tag_headers == ["x-team"]


def test_bad_values_are_dropped_with_a_counted_reason():
    before = {k: COUNTS[k] for k in ("tag_dropped_too_long", "tag_dropped_not_printable", "tag_dropped_empty", "tag_dropped_not_allowed")}
    h = {
        "x-nadir-user": "u" * 129,            # over the 128-character cap
        "x-nadir-team": "a\x07b",            # BEL is not printable
        "x-nadir-feature": "   ",            # empty after stripping
        "x-nadir-env": " staging ",          # kept, stripped
        "x-nadir-tag-secret": "x",           # not on the allow-list
    }
    r = read_tags(h, DEFAULT_TAG_HEADERS, set(), max_len=128)
    assert r.tags == {"env": "staging"}
    assert sorted(r.dropped) == [("feature", "empty"), ("secret", "not_allowed"), ("team", "not_printable"), ("user", "too_long")]
    # every tag header is still listed for removal, the dropped ones included
    assert "x-nadir-tag-secret" in r.tag_headers and "x-nadir-user" in r.tag_headers
    for k, n in before.items():
        assert COUNTS[k] == n + 1, k


def test_value_at_the_cap_and_utf8_header_bytes_are_kept():
    # Envoy hands header bytes over as latin-1; "Zoë" in UTF-8 is b"Zo\xc3\xab" -> "ZoÃ«" as latin-1.
    r = read_tags({"x-nadir-user": "u" * 8, "x-nadir-team": "Zo\u00c3\u00ab"}, DEFAULT_TAG_HEADERS, max_len=8)
    assert r.tags == {"user": "uuuuuuuu", "team": "Zoë"}


@pytest.mark.parametrize(
    "dialect, body, expected",
    [
        ("openai_chat", {"user": "end-user-7"}, "end-user-7"),
        ("openai_responses", {"user": "end-user-8"}, "end-user-8"),
        ("anthropic_messages", {"metadata": {"user_id": "a-9"}}, "a-9"),
        ("anthropic_messages", {"user": "not-anthropic"}, None),
        ("openai_chat", {"user": "bad\nvalue"}, None),
        ("openai_chat", {"user": 12}, None),
    ],
)
def test_body_user_fallback(dialect, body, expected):
    tags: dict[str, str] = {}
    apply_body_fallback(tags, dialect, body)
    assert tags.get("user") == expected


def test_header_user_wins_over_body_user():
    tags = {"user": "from-header"}
    apply_body_fallback(tags, "openai_chat", {"user": "from-body"})
    assert tags == {"user": "from-header"}


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {MARKER}"},
        {"authorization": f"bearer   {MARKER}  "},
        {"x-api-key": MARKER},
        {"x-goog-api-key": MARKER},
        {":path": f"/v1beta/models/gemini-2.5-flash:generateContent?alt=sse&key={MARKER}"},
    ],
)
def test_api_key_found_in_every_place(headers):
    assert api_key(headers) == MARKER


def test_no_key_and_non_bearer_authorization():
    assert api_key({":path": "/v1/chat/completions"}) is None
    assert api_key({"authorization": "Basic dXNlcjpwYXNz"}) is None


def test_key_id_is_truncated_hmac_sha256_of_the_key():
    secret = b"0123456789abcdef-secret"
    ident = KeyIdentity(secret, 16)
    expected = hmac.new(secret, MARKER.encode(), hashlib.sha256).hexdigest()[:16]
    assert ident.key_id({"authorization": f"Bearer {MARKER}"}) == expected
    assert ident.key_id({"x-api-key": MARKER}) == expected  # same key, same id, wherever it came from
    assert KeyIdentity(b"another-installation", 16).of(MARKER) != expected
    assert MARKER not in repr(ident) and "secret" not in repr(ident)


def test_secret_file_is_created_0600_once_and_reused(tmp_path):
    path = tmp_path / "state" / "key_id.secret"
    s1 = load_secret(path, env={})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(s1) == 64 and all(c in b"0123456789abcdef" for c in s1)  # 32 random bytes as hex
    assert load_secret(path, env={}) == s1


def test_secret_from_environment_wins(tmp_path):
    path = tmp_path / "key_id.secret"
    assert load_secret(path, env={"NADIR_KEY_ID_SECRET": "from-env"}) == b"from-env"
    assert not path.exists()


def test_empty_secret_file_is_an_error(tmp_path):
    path = tmp_path / "key_id.secret"
    path.write_bytes(b"\n")
    with pytest.raises(ValueError):
        load_secret(path, env={})


def test_identity_from_settings_uses_the_state_dir(tmp_path, monkeypatch):
    from nadir_extproc.config import Settings

    monkeypatch.delenv("NADIR_KEY_ID_SECRET", raising=False)
    s = Settings(state_dir=str(tmp_path), key_id={"length": 12})
    ident = identity_from_settings(s)
    secret = (tmp_path / "key_id.secret").read_bytes()
    assert ident.of(MARKER) == hmac.new(secret, MARKER.encode(), hashlib.sha256).hexdigest()[:12]
    assert identity_from_settings(Settings(state_dir=str(tmp_path), key_id={"enabled": False})) is None
