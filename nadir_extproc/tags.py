"""Request tags and API-key identity: who and what a request's spend belongs to.

Tags come from request headers (``x-nadir-user``, ``x-nadir-feature``, ``x-nadir-team``,
``x-nadir-env``, ``x-nadir-session`` by default; names and set configurable in
``Settings.tags.headers``) and the generic ``x-nadir-tag-<name>`` form for names on the configured
allow-list (``Settings.tags.allow``). When no ``user`` tag came from a header, the body's own user
field is used: OpenAI ``user`` (Chat Completions and Responses), Anthropic ``metadata.user_id``.

Values are validated: at most ``max_len`` characters, printable (``str.isprintable``; header bytes
are read as UTF-8). A bad value is dropped and counted (``nadir_extproc.stats``, event
``tag_dropped_<reason>``) — never an error for the caller.

API-key identity: the key from ``authorization: Bearer …``, ``x-api-key``, ``x-goog-api-key`` or the
``key`` query parameter becomes a key id = HMAC-SHA256(per-installation secret, key), hex,
truncated (16 hex characters = 64 bits by default). The raw key stays inside ``key_id()``: it is
never stored, logged or returned. The secret comes from ``$NADIR_KEY_ID_SECRET`` or a file that is
generated (32 random bytes, hex) with mode 0600 on first start if absent.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nadir_extproc import headers as hn
from nadir_extproc.httpcodec import query_param
from nadir_extproc.providers import PROVIDERS
from nadir_extproc.stats import count

log = logging.getLogger("nadir_extproc")

#: Tag name -> request header, the default set (names in ``nadir_extproc.headers``).
DEFAULT_TAG_HEADERS: dict[str, str] = dict(hn.DEFAULT_TAG_HEADERS)
GENERIC_PREFIX = hn.TAG_PREFIX
#: Environment variable that supplies the key-id secret directly (hex or any string).
SECRET_ENV = "NADIR_KEY_ID_SECRET"

# Reasons a tag is dropped (counted as ``tag_dropped_<reason>``).
TOO_LONG = "too_long"
NOT_PRINTABLE = "not_printable"
EMPTY = "empty"
NOT_ALLOWED = "not_allowed"


@dataclass
class TagResult:
    """Tags read from one request.

    - ``tags``: tag name -> validated value.
    - ``tag_headers``: the request headers that carried tags (to remove before upstream).
    - ``dropped``: ``(tag name, reason)`` for each value that was rejected.
    """

    tags: dict[str, str] = field(default_factory=dict)
    tag_headers: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)


def check_value(value: Any, max_len: int) -> tuple[str | None, str | None]:
    """``(clean value, None)`` or ``(None, reason)``. Header values arrive latin-1-decoded and
    are re-read as UTF-8 when they are valid UTF-8; surrounding whitespace is stripped."""
    if not isinstance(value, str):
        return None, NOT_PRINTABLE
    try:
        value = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    value = value.strip()
    if not value:
        return None, EMPTY
    if len(value) > max_len:
        return None, TOO_LONG
    if not value.isprintable():
        return None, NOT_PRINTABLE
    return value, None


def read_tags(
    headers: Mapping[str, str],
    tag_headers: Mapping[str, str] = DEFAULT_TAG_HEADERS,
    allow: frozenset[str] | set[str] = frozenset(),
    max_len: int = 128,
    prefix: str = GENERIC_PREFIX,
) -> TagResult:
    """Tags from lower-cased request ``headers``: each configured ``tag_headers`` entry (tag name ->
    header) and each ``<prefix><name>`` header whose ``name`` is in ``allow``. Headers with the
    generic prefix but a name off the allow-list are dropped (reason ``not_allowed``) and still
    listed in ``tag_headers`` so they do not leak upstream. Never raises."""
    out = TagResult()
    for name, header in tag_headers.items():
        raw = headers.get(header)
        if raw is None:
            continue
        out.tag_headers.append(header)
        _add(out, name, raw, max_len)
    if prefix:
        for header, raw in headers.items():
            if not header.startswith(prefix) or header in out.tag_headers:
                continue
            out.tag_headers.append(header)
            name = header[len(prefix):]
            if name not in allow:
                _drop(out, name or "?", NOT_ALLOWED)
                continue
            _add(out, name, raw, max_len)
    return out


def _add(out: TagResult, name: str, raw: str, max_len: int) -> None:
    value, reason = check_value(raw, max_len)
    if reason is not None:
        _drop(out, name, reason)
    else:
        out.tags[name] = value  # type: ignore[assignment]


def _drop(out: TagResult, name: str, reason: str) -> None:
    out.dropped.append((name, reason))
    count(f"tag_dropped_{reason}", f"tag {name!r}")


def identify(headers: Mapping[str, str], cfg: Any, identity: KeyIdentity | None) -> tuple[TagResult, str | None, str | None]:
    """``(tags read, x-request-id, API key id)`` of a request from its lower-cased headers, with
    the tag settings ``cfg`` (``config.TagSettings``) and the key-id hasher (``None``: no key ids).
    The tag headers to remove before upstream are ``result.tag_headers`` unless ``cfg.forward``."""
    res = read_tags(headers, cfg.headers, frozenset(cfg.allow), cfg.max_len, cfg.generic_prefix)
    request_id = check_value(headers.get("x-request-id", ""), 128)[0]
    return res, request_id, identity.key_id(headers) if identity is not None else None


def body_user(dialect: str | None, body: Mapping[str, Any] | None) -> Any:
    """The request body's own end-user field as its dialect reads it (``Dialect.request_user``:
    OpenAI ``user``, Anthropic ``metadata.user_id``); ``None`` when absent."""
    if not isinstance(body, dict) or dialect is None:
        return None
    from nadir_extproc.dialects import DIALECTS

    d = DIALECTS.get(dialect)
    return d.request_user(body) if d is not None else None


def apply_body_fallback(tags: dict[str, str], dialect: str | None, body: Mapping[str, Any] | None, max_len: int = 128) -> None:
    """Set ``tags["user"]`` from the body's user field when no header gave one (validated the
    same way; a bad value is dropped and counted)."""
    if "user" in tags:
        return
    raw = body_user(dialect, body)
    if raw is None:
        return
    value, reason = check_value(raw, max_len)
    if reason is not None:
        count(f"tag_dropped_{reason}", "tag 'user' (body)")
    else:
        tags["user"] = value  # type: ignore[assignment]


def api_key(headers: Mapping[str, str]) -> str | None:
    """The API key a request carries, looked up in this order: ``authorization: Bearer <key>``,
    ``x-api-key`` (Anthropic), ``x-goog-api-key`` (Gemini), the ``key`` query parameter of
    ``:path``. ``None`` when there is none. The result must not be stored or logged."""
    auth = headers.get("authorization", "")
    scheme, _, rest = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    for h in _KEY_HEADERS:
        v = headers.get(h, "").strip()
        if v:
            return v
    path = headers.get(":path", "")
    for name in _KEY_QUERY:
        v = query_param(path, name)
        if v:
            return v
    return None


#: Where the registered providers' API keys travel besides ``authorization: Bearer``
#: (``Provider.key_headers`` / ``key_query``): ``x-api-key`` (Anthropic), ``x-goog-api-key`` and
#: ``?key=`` (Gemini).
_KEY_HEADERS = tuple(dict.fromkeys(h for p in PROVIDERS.values() for h in p.key_headers if h != "authorization"))
_KEY_QUERY = tuple(dict.fromkeys(p.key_query for p in PROVIDERS.values() if p.key_query))


class KeyIdentity:
    """Key ids: HMAC-SHA256 of the API key under a per-installation ``secret`` (bytes), lower-case
    hex, first ``length`` characters (4–64)."""

    __slots__ = ("_secret", "length")

    def __init__(self, secret: bytes, length: int = 16) -> None:
        if not secret:
            raise ValueError("key-id secret must not be empty")
        if not 4 <= length <= 64:
            raise ValueError("key-id length must be 4..64 hex characters")
        self._secret = secret
        self.length = length

    def __repr__(self) -> str:  # never show the secret
        return f"KeyIdentity(length={self.length})"

    def of(self, key: str) -> str:
        """The key id of ``key``."""
        # hmac.digest: the one-shot C path, the same bytes as hmac.new(...).digest(), ~3x cheaper.
        return hmac.digest(self._secret, key.encode("utf-8"), "sha256").hex()[: self.length]

    def key_id(self, headers: Mapping[str, str]) -> str | None:
        """The key id of the request's API key (see ``api_key``), ``None`` when it has none."""
        key = api_key(headers)
        return self.of(key) if key is not None else None


def load_secret(path: str | Path, env: Mapping[str, str] | None = None) -> bytes:
    """The key-id secret: ``$NADIR_KEY_ID_SECRET`` if set, else the contents of ``path``; when the
    file does not exist it is created (parents too) with 32 random bytes as hex and mode 0600.

    Raises ``OSError`` when the file cannot be read or created, ``ValueError`` when it is empty.
    A file readable by group or others is used but logged as a warning."""
    env = os.environ if env is None else env
    if env.get(SECRET_ENV):
        return env[SECRET_ENV].encode("utf-8")
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = secrets.token_hex(32).encode("ascii")
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            data = p.read_bytes()
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(fresh)
            log.info("generated a new key-id secret at %s (mode 0600)", p)
            data = fresh
    else:
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            log.warning("key-id secret %s is readable by group/others (mode %o); use 0600", p, mode)
    data = data.strip()
    if not data:
        raise ValueError(f"key-id secret file {p} is empty")
    return data


def identity_from_settings(settings: Any) -> KeyIdentity | None:
    """The ``KeyIdentity`` that ``settings.key_id`` describes (secret from the environment or
    ``secret_path``, default ``<state_dir>/key_id.secret``); ``None`` when disabled. Raises what
    ``load_secret`` raises."""
    cfg = settings.key_id
    if not cfg.enabled:
        return None
    path = cfg.secret_path or Path(settings.state_dir) / "key_id.secret"
    return KeyIdentity(load_secret(path), cfg.length)
