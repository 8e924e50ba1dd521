"""Where nadir-extproc listens, and who may open an ext_proc stream (the trust boundary, SECURITY.md).

Whoever can open a ``Process`` stream can write ledger rows with any cost and tags and use up
budgets, so ``ExternalProcessor`` is served only where just our own Envoy can connect:

- **sidecar mode**: the Unix socket ``uds`` (an emptyDir shared by Envoy and nadir-extproc only)
  and/or ``listen`` on a loopback address (``127.0.0.1``, ``::1``, ``localhost``: the pod's own
  network namespace);
- **gateway mode**: ``listen`` on a network address with ``tls`` -- TLS that requires a client
  certificate signed by ``tls.client_ca_file`` and, when ``tls.allowed_client_sans`` is set,
  carrying one of those subject alternative names (the gateway's identity); any other caller gets
  ``PERMISSION_DENIED``, a caller without a certificate fails the handshake.

``health_listen`` is a second gRPC server that serves ``grpc.health.v1`` and nothing else (a
``Process`` call there is ``UNIMPLEMENTED``): the kubelet's gRPC probes reach it on the pod IP, in
plain text (kubelet probes cannot present certificates).

A plain-text ``listen`` on a non-loopback address is refused (``ListenerError``) unless
``allow_plaintext_listen`` is set, for networks where something else (a mesh's mTLS and
authorization policy) decides who connects.

Certificates are read again when their files change (checked at most once per second, on a new
TLS handshake), so a renewed cert-manager Secret is picked up without a restart.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2_grpc

if TYPE_CHECKING:
    from nadir_extproc.config import ListenerTLS, Settings

log = logging.getLogger("nadir_extproc.listeners")

#: gRPC methods that only a trusted client may call (everything but health).
PROTECTED_PREFIX = "/envoy.service.ext_proc.v3.ExternalProcessor/"


class BindError(RuntimeError):
    """A listener could not bind its address (in use, or not an address of this host)."""


def _add_port(server: grpc.aio.Server, address: str, creds: Any = None, what: str = "listen") -> int:
    """``server.add_(in)secure_port(address)``; raises ``BindError`` naming the setting when gRPC
    cannot bind it (gRPC itself raises a bare ``RuntimeError`` or returns 0)."""
    try:
        port = server.add_secure_port(address, creds) if creds is not None else server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if not port:
        _add_port_error(what, address)
    return port


def preflight(settings: Settings) -> None:
    """Raise ``BindError`` (the message ``_add_port`` would give) when a listener cannot bind, before
    the service starts its ledger writer and telemetry exporters: a Unix socket whose folder is
    missing or not writable, or a ``listen`` / ``health_listen`` TCP port another process listens on
    (tested with ``SO_REUSEADDR`` as gRPC binds, so a port in TIME_WAIT passes), or the
    ``telemetry.prometheus_port`` (a ``serve --workers`` worker's own ``prometheus_port + i``).
    Skipped for port 0; ``serve --workers`` processes (``NADIR_REUSEPORT=1``) skip ``listen`` and
    ``health_listen``, which they share on purpose."""
    import socket

    if settings.uds:
        folder = os.path.dirname(settings.uds) or "."
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            _add_port_error("uds", f"unix:{settings.uds}")
    tel = settings.telemetry
    checks = [("telemetry.prometheus_port", f"{tel.prometheus_host}:{tel.prometheus_port}")] if tel.prometheus_port else []
    if os.environ.get("NADIR_REUSEPORT") != "1":  # a worker's own /metrics port is never shared
        checks[:0] = [("listen", settings.listen), ("health_listen", settings.health_listen)]
    for what, address in checks:
        if not address or address.startswith("unix:"):
            continue
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or int(port) == 0:
            continue
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except OSError:
            continue  # gRPC says it at bind time
        fam, _, _, _, addr = infos[0]
        with socket.socket(fam, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(addr)
            except OSError:
                _add_port_error(what, address)


def _add_port_error(what: str, address: str) -> None:
    if address.startswith("unix:"):
        folder = os.path.dirname(address[5:]) or "."
        why = (f"the folder {folder} does not exist" if not os.path.isdir(folder) else
               f"the folder {folder} is not writable" if not os.access(folder, os.W_OK) else "the path cannot be bound")
        raise BindError(f"{what}: cannot listen on {address}: {why}")
    raise BindError(f"{what}: cannot listen on {address}: the port is in use or the address is not this host's")


class ListenerError(ValueError):
    """A listener setting would expose ``ExternalProcessor`` to untrusted clients, or its TLS
    files cannot be read (the message names the setting and the fix)."""


def host_of(address: str) -> str:
    """The host part of a gRPC ``host:port`` address (``[::1]:50051`` -> ``::1``)."""
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(address: str) -> bool:
    """True when ``host:port`` binds only loopback interfaces (``127.0.0.0/8``, ``::1``,
    ``localhost``); wildcard (``0.0.0.0``, ``[::]``), other addresses and host names are not."""
    host = host_of(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(name: str, address: str) -> None:
    """Raise ``ListenerError`` unless ``address`` has gRPC's ``host:port`` shape with a port number
    0-65535 (``127.0.0.1:50051``, ``[::1]:50051``, ``localhost:0``); ``name`` is the setting."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ListenerError(f"{name} {address!r} is not host:port (for example 127.0.0.1:50051 or [::1]:50051)")


def check_trust(settings: Settings) -> None:
    """Raise ``ListenerError`` when ``settings`` would serve ``ExternalProcessor`` in plain text on
    a non-loopback address, serve it nowhere (no ``listen``, no ``uds``), or when
    ``health_listen`` collides with ``listen``."""
    for name in ("listen", "health_listen"):
        address = getattr(settings, name)
        if address:
            check_address(name, address)
    if not settings.listen:
        if not settings.uds:
            raise ListenerError("listen is empty and uds is not set: ExternalProcessor would be served nowhere")
        if settings.tls is not None:
            raise ListenerError("tls is set but listen is empty: mTLS applies to the TCP listener only")
        return
    if not is_loopback(settings.listen) and settings.tls is None and not settings.allow_plaintext_listen:
        raise ListenerError(
            f"listen {settings.listen!r} is not a loopback address: in plain text, anything that reaches it "
            "could write ledger rows and use up budgets. Sidecar: listen on 127.0.0.1 (or only the Unix socket "
            "`uds`) and give the kubelet `health_listen` (health only). Gateway: configure `tls` with "
            "`client_ca_file` (mTLS). A network that authenticates callers itself: allow_plaintext_listen: true."
        )
    if settings.health_listen and settings.health_listen.rsplit(":", 1)[-1] == settings.listen.rsplit(":", 1)[-1]:
        port = settings.listen.rsplit(":", 1)[-1]
        if port != "0":
            raise ListenerError(f"health_listen {settings.health_listen!r} and listen {settings.listen!r} use the same port")


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ListenerError(f"tls.{what}: cannot read {path}: {e.strerror or e}") from None


class _CertFiles:
    """The TLS files of ``tls``, re-read when one of them changes (mtime or size), at most once per
    ``min_interval_s``; a half-written renewal (unreadable or empty file) keeps the old ones."""

    def __init__(self, tls: ListenerTLS, min_interval_s: float = 1.0) -> None:
        self.tls, self.min_interval_s = tls, min_interval_s
        self._stamp = self._stat()
        self._checked = time.monotonic()
        self.config = self._load()

    def _paths(self) -> tuple[str, str, str]:
        return self.tls.cert_file, self.tls.key_file, self.tls.client_ca_file

    def _stat(self) -> tuple:
        out = []
        for p in self._paths():
            try:
                st = os.stat(p)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def _load(self) -> Any:
        cert, key = _read(self.tls.cert_file, "cert_file"), _read(self.tls.key_file, "key_file")
        ca = _read(self.tls.client_ca_file, "client_ca_file")
        for data, what in ((cert, "cert_file"), (key, "key_file"), (ca, "client_ca_file")):
            if b"-----BEGIN" not in data:
                raise ListenerError(f"tls.{what}: no PEM data in {getattr(self.tls, what)}")
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self) -> Any:
        """gRPC's certificate-config fetcher: a new configuration when the files changed, else None."""
        now = time.monotonic()
        if now - self._checked < self.min_interval_s:
            return None
        self._checked = now
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        try:
            self.config = self._load()
        except ListenerError as e:
            log.warning("tls: files changed but cannot be loaded yet (%s); keeping the previous ones", e)
            return None
        self._stamp = stamp
        log.info("tls: certificate files changed; new handshakes use them")
        return self.config


def check_tls_files(settings: Settings) -> None:
    """Raise ``ListenerError`` naming the ``tls`` file that cannot be read or holds no PEM data
    (what ``server_credentials`` would raise once the service has started); nothing without ``tls``."""
    if settings.tls is not None:
        _CertFiles(settings.tls)


def server_credentials(tls: ListenerTLS) -> grpc.ServerCredentials:
    """mTLS server credentials for ``tls``: our certificate, client certificates required and
    verified against ``tls.client_ca_file``; files re-read when they change. Raises
    ``ListenerError`` naming an unreadable file."""
    files = _CertFiles(tls)
    return grpc.dynamic_ssl_server_credentials(files.config, files.fetch, require_client_authentication=True)


def client_allowed(auth_context: dict[str, list[bytes]], allowed_sans: list[str]) -> bool:
    """Whether a connection's gRPC auth context may call ``ExternalProcessor``: plain-text
    connections (they exist only on the Unix socket and loopback) always; TLS connections when
    ``allowed_sans`` is empty or the client certificate carries one of them as a subject
    alternative name (DNS or URI, exact match)."""
    kind = b"".join(auth_context.get("transport_security_type", []))
    if kind != b"ssl" or not allowed_sans:
        return True
    sans = {v.decode("utf-8", "replace") for v in auth_context.get("x509_subject_alternative_name", [])}
    return bool(sans & set(allowed_sans))


class ClientIdentityInterceptor(grpc.aio.ServerInterceptor):
    """Refuses ``ExternalProcessor`` calls over TLS whose client certificate lacks an allowed
    subject alternative name (``PERMISSION_DENIED``, logged); health calls pass."""

    def __init__(self, allowed_sans: list[str]) -> None:
        self.allowed_sans = list(allowed_sans)

    async def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.stream_stream is None or not details.method.startswith(PROTECTED_PREFIX):
            return handler
        inner, allowed = handler.stream_stream, self.allowed_sans

        async def check(context: grpc.aio.ServicerContext) -> None:
            auth = context.auth_context()
            if not client_allowed(auth, allowed):
                sans = [v.decode("utf-8", "replace") for v in auth.get("x509_subject_alternative_name", [])]
                log.warning("refused ext_proc stream from %s: client certificate names %s, allowed %s", context.peer(), sans, allowed)
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "client certificate is not the gateway's")

        # Keep the servicer's own style: an async generator, or a coroutine using context.read()/write().
        if inspect.isasyncgenfunction(inner):

            async def checked(request_iterator: AsyncIterator, context: grpc.aio.ServicerContext) -> AsyncIterator:
                await check(context)
                async for reply in inner(request_iterator, context):
                    yield reply

        else:

            async def checked(request_iterator: AsyncIterator, context: grpc.aio.ServicerContext) -> Any:
                await check(context)
                return await inner(request_iterator, context)

        return grpc.stream_stream_rpc_method_handler(
            checked, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


def interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """Server interceptors for the ext_proc server (the client-identity check in gateway mode)."""
    if settings.tls is not None and settings.tls.allowed_client_sans:
        return [ClientIdentityInterceptor(settings.tls.allowed_client_sans)]
    return []


class Listeners:
    """The listeners of one service: ``bind(server)`` adds ``listen`` (TLS in gateway mode) and
    ``uds`` to the ext_proc server; ``start_health()`` runs the health-only server on
    ``health_listen``. Raises ``ListenerError`` (see ``check_trust``) on construction."""

    def __init__(self, settings: Settings, health: Any, options: list[tuple[str, Any]] | None = None) -> None:
        check_trust(settings)
        self.settings, self.health, self.options = settings, health, options or []
        self.port: int | None = None
        self.health_port: int | None = None
        self.health_server: grpc.aio.Server | None = None

    def bind(self, server: grpc.aio.Server) -> int | None:
        """Add the ext_proc ports to ``server``; returns the bound ``listen`` port (None without
        ``listen``). Raises ``RuntimeError`` if binding fails, ``ListenerError`` for unreadable TLS
        files."""
        s = self.settings
        if s.listen:
            creds = server_credentials(s.tls) if s.tls is not None else None
            self.port = _add_port(server, s.listen, creds)
        if s.uds:
            _add_port(server, f"unix:{s.uds}", what="uds")
        if s.listen and not is_loopback(s.listen) and s.tls is None:
            log.warning("ExternalProcessor is served in plain text on %s (allow_plaintext_listen): anything that "
                        "reaches it can write ledger rows and use up budgets", s.listen)
        return self.port

    async def start_health(self) -> int | None:
        """Start the health-only server on ``health_listen`` (if set); returns its port."""
        if not self.settings.health_listen:
            return None
        reuse = [o for o in self.options if o[0] == "grpc.so_reuseport"] or [("grpc.so_reuseport", 0)]
        self.health_server = grpc.aio.server(options=reuse)  # `serve --workers`: workers share it too
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
        self.health_port = _add_port(self.health_server, self.settings.health_listen, what="health_listen")
        await self.health_server.start()
        return self.health_port

    async def stop_health(self, grace_s: float | None = None) -> None:
        if self.health_server is not None:
            await self.health_server.stop(grace_s)

    def describe(self) -> str:
        """One line for the start-up log: every address and what it serves."""
        s = self.settings
        parts = [f"ext_proc on {s.listen} ({'mTLS' if s.tls else 'plain text'}, port {self.port})"] if s.listen else []
        parts += [f"ext_proc on unix:{s.uds}"] if s.uds else []
        if s.health_listen:
            parts.append(f"health only on {s.health_listen} (port {self.health_port})")
        return "; ".join(parts)
