"""How :class:`~advml.models.http.HTTPClassifier`'s requests travel.

Two transports with one interface (``send`` gives a :class:`Response` or raises
:class:`TransportError`), chosen by :func:`open_transport`:

* :class:`DirectTransport`, for a target reached without a proxy (plain HTTP or TLS):
  keep-alive sockets, the request written in one ``sendall``, the response parsed by
  ``httptools`` (the C parser ``advml serve-model`` itself runs on, llhttp's binding).
* :class:`ProxyTransport`, through the proxy the environment names: urllib3's
  ``ProxyManager`` (absolute-form requests, ``CONNECT`` tunnels for HTTPS).

Why not urllib3 for both: a query-based attack sends one request per iteration and waits
for it, so the client's cost per request adds to every iteration. On the digits MLP
(39 inputs a request, loopback, ``advml serve-model``) a keep-alive round trip measured
366 µs on a bare socket, 375 µs here, 500 µs through ``http.client`` and 604 µs through
urllib3's connection pool (453 µs with pycurl); the model's own answer takes ~170 µs.
urllib3 parses the status line and headers with the ``email`` package and wraps the
socket in buffered file objects on every request; httptools needs neither.

Both read the environment as ``requests`` does (its own helpers), once per transport:
``HTTP(S)_PROXY``/``NO_PROXY``, ``~/.netrc`` (or ``$NETRC``) credentials, and
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (else certifi's bundle) for TLS. Neither follows
redirects (the headers may hold a secret) nor retries: the caller retries, counting what
it pays.
"""

from __future__ import annotations

import base64
import os
import re
import select
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DirectTransport",
    "ProxyTransport",
    "Response",
    "TLSFiles",
    "TransportError",
    "open_transport",
]

# Header names are tokens; values are visible latin-1 characters and spaces (RFC 9110 §5).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_READ = 1 << 16


class TransportError(OSError):
    """The request did not get a whole HTTP response: refused, reset, timed out,
    closed early or garbled. Worth a retry."""


class ResponseTooLargeError(TransportError):
    """The response is larger than the caller allows; not retried."""


@dataclass(frozen=True)
class TLSFiles:
    """A target's own TLS files: CA bundle (file or folder), client certificate and key,
    and the key's password (already read from the environment)."""

    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Response:
    """A whole HTTP response; ``headers`` are keyed by lower-case name."""

    status: int
    headers: dict[str, str]
    data: bytes


def open_transport(
    url: str, concurrency: int, tls: TLSFiles | None = None
) -> DirectTransport | ProxyTransport:
    """The transport for ``url``: through the environment's proxy if one applies to it
    (``NO_PROXY`` honoured), else direct."""
    import requests.utils

    proxies = requests.utils.get_environ_proxies(url)
    scheme = url.split("://", 1)[0].lower()
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy:
        return ProxyTransport(url, concurrency, proxy, tls)
    return DirectTransport(url, concurrency, tls)


class _Settings:
    """What both transports read from the URL and the environment, once."""

    proxy: str | None = None

    def __init__(self, url: str, tls: TLSFiles | None) -> None:
        import requests.utils

        self.tls_files = tls or TLSFiles()
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self.scheme = parts.scheme.lower()
        if self.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the target URL must be http:// or https://HOST/..., got {url!r}")
        # Credentials: the URL's own user:password, else the netrc entry for its host.
        user = (
            (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
            if parts.username
            else requests.utils.get_netrc_auth(url)
        )
        self.auth: dict[str, str] = {}
        if user:
            token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode("ascii")
            self.auth = {"authorization": f"Basic {token}"}
        self.ca_certs: str | None = (
            self.tls_files.ca_bundle
            or os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or None
        )
        if self.ca_certs is None and self.scheme == "https":
            import certifi  # what requests verifies with by default

            self.ca_certs = certifi.where()

    def _tls_context(self) -> ssl.SSLContext:
        """Certificates verified against the CA bundle; the client's own certificate
        loaded when the target gives one. Errors name the target's setting."""
        ca = self.ca_certs or ""
        try:
            context = (
                ssl.create_default_context(capath=ca)
                if os.path.isdir(ca)
                else ssl.create_default_context(cafile=ca or None)
            )
        except (ssl.SSLError, OSError) as err:
            source = "ca_bundle" if self.tls_files.ca_bundle else "REQUESTS_CA_BUNDLE"
            if not self.tls_files.ca_bundle and not os.environ.get("REQUESTS_CA_BUNDLE"):
                source = "CURL_CA_BUNDLE"
            raise ValueError(
                f"{source} {ca!r} is not a PEM file (or folder) of CA certificates: {err}"
            ) from None
        files = self.tls_files
        if files.client_cert:
            password = files.password or ""  # never OpenSSL's prompt on the terminal
            try:
                context.load_cert_chain(files.client_cert, files.client_key, lambda: password)
            except (ssl.SSLError, OSError) as err:
                raise ValueError(
                    f"client_cert {files.client_cert!r} (key: {files.client_key or 'in it'}) "
                    f"could not be loaded ({err}); check that the key matches the "
                    f"certificate and, if the key is encrypted, set client_key_password"
                ) from None
        return context

    def with_auth(self, headers: dict[str, str]) -> dict[str, str]:
        if self.auth and not any(k.lower() == "authorization" for k in headers):
            return {**headers, **self.auth}
        return headers


class DirectTransport(_Settings):
    """Keep-alive HTTP/1.1 connections to one target, at most ``concurrency`` kept idle.

    Thread-safe: each request holds a connection of its own; idle ones are shared.
    """

    def __init__(self, url: str, concurrency: int, tls: TLSFiles | None = None) -> None:
        super().__init__(url, tls)
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        default = parts.port is None or parts.port == (443 if self.scheme == "https" else 80)
        name = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        self.host_header = name if default else f"{name}:{self.port}"
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.tls = self._tls_context() if self.scheme == "https" else None
        self.keep = max(1, int(concurrency))
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()

    def send(
        self,
        method: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        max_bytes: int,
    ) -> Response:
        """One request and its whole response; :class:`TransportError` if none came."""
        head = _request_head(method, self.target, self.host_header, self.with_auth(headers),
                             len(body))  # fmt: skip
        message = head + body
        sock, reused = self._take(timeout)
        try:
            try:
                response, keep = _exchange(sock, message, max_bytes)
            except _NothingReceived:
                if not reused:
                    raise
                # The server closed an idle keep-alive connection as this request went
                # out: nothing was answered, so it is sent again on a new connection.
                sock.close()
                sock = self._connect(timeout)
                response, keep = _exchange(sock, message, max_bytes)
        except ResponseTooLargeError:
            sock.close()
            raise
        except (OSError, _NothingReceived) as err:
            sock.close()
            raise TransportError(_describe(err, self.url, timeout)) from None
        if keep:
            self._give_back(sock)
        else:
            sock.close()
        return response

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    def _take(self, timeout: float) -> tuple[socket.socket, bool]:
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                try:
                    return self._connect(timeout), False
                except OSError as err:
                    raise TransportError(_describe(err, self.url, timeout)) from None
            if _readable(sock):  # while idle: closed by the server (or garbage)
                sock.close()
                continue
            sock.settimeout(timeout)
            return sock, True

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                return self.tls.wrap_socket(sock, server_hostname=self.host)
            except OSError:
                sock.close()
                raise
        return sock

    def _give_back(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(sock)
                return
        sock.close()


class ProxyTransport(_Settings):
    """Requests through an HTTP(S) proxy, by urllib3's ``ProxyManager``."""

    def __init__(self, url: str, concurrency: int, proxy: str, tls: TLSFiles | None = None) -> None:
        import urllib3

        super().__init__(url, tls)
        self.proxy = proxy
        options: dict[str, Any] = {"maxsize": max(1, concurrency), "retries": False}
        if self.scheme == "https":
            options["ssl_context"] = self._tls_context()
        self.pool = urllib3.ProxyManager(proxy, **options)
        self._timeouts: dict[float, Any] = {}

    def send(
        self,
        method: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        max_bytes: int,
    ) -> Response:
        """One request and its whole response; :class:`TransportError` if none came."""
        import urllib3

        timeouts = self._timeouts.get(timeout)
        if timeouts is None:
            timeouts = self._timeouts[timeout] = urllib3.Timeout(connect=timeout, read=timeout)
        try:
            r = self.pool.urlopen(
                method, self.url, body=body, headers=self.with_auth(headers),
                timeout=timeouts, retries=False, redirect=False, preload_content=False,
            )  # fmt: skip
            try:
                declared = r.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise ResponseTooLargeError(_too_large(max_bytes))
                data = r.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise ResponseTooLargeError(_too_large(max_bytes))
            finally:
                r.release_conn()
        except urllib3.exceptions.HTTPError as err:
            raise TransportError(f"{type(err).__name__}: {str(err)[:200]}") from None
        headers_out = {k.lower(): v for k, v in r.headers.items()}
        return Response(r.status, headers_out, data)

    def close(self) -> None:
        """Close the pool's connections."""
        self.pool.clear()


# -- one request on a socket ---------------------------------------------------------------
def _request_head(
    method: str, target: str, host: str, headers: dict[str, str], length: int
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    names = {k.lower() for k in headers}
    if "user-agent" not in names:
        lines.append(_USER_AGENT)
    if "accept" not in names:
        lines.append("Accept: */*")
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise ValueError(
                f"the request header {name!r} has a character HTTP does not allow in a "
                f"header (a line break?); check the target's headers and the environment "
                f"variables they read"
            )
        if name.lower() in ("host", "content-length"):
            continue  # set above, from the URL and the body
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            "a request header holds a character outside latin-1; HTTP headers cannot carry "
            "it (percent-encode it, or put it in the body)"
        ) from None


def _user_agent() -> str:
    from advml import __version__

    return f"User-Agent: advml/{__version__}"


_USER_AGENT = _user_agent()


class _NothingReceived(Exception):
    """The connection ended before the first byte of a response."""


class _Reader:
    """httptools' callbacks: the status, headers and body of one response."""

    def __init__(self, max_bytes: int) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.max_bytes = max_bytes
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.headers_done = False
        self.keep = False
        self.done = False
        self.too_large = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            self.headers = {}  # an interim answer (100 Continue): the real one follows
            return
        self.headers_done = True
        self.keep = bool(self.parser.should_keep_alive())
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            self.too_large = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_bytes:
            self.too_large = True
        elif not self.too_large:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.done = True


def _exchange(sock: socket.socket, message: bytes, max_bytes: int) -> tuple[Response, bool]:
    """Send ``message`` on ``sock``, read the response."""
    try:
        sock.sendall(message)
    except (BrokenPipeError, ConnectionResetError):
        raise _NothingReceived from None
    return _read_response(sock, max_bytes)


def _read_response(sock: socket.socket, max_bytes: int) -> tuple[Response, bool]:
    """The response on ``sock`` and whether the connection may be reused."""
    import httptools

    reader = _Reader(max_bytes)
    received = 0
    while not reader.done:
        try:
            data = sock.recv(_READ)
        except ConnectionResetError:
            if received == 0:
                raise _NothingReceived from None
            raise
        if not data:
            if received == 0:
                raise _NothingReceived
            framed = "content-length" in reader.headers or "transfer-encoding" in reader.headers
            if reader.headers_done and not framed:
                reader.keep = False  # a body that ends with the connection: complete
                break
            raise ConnectionError("the server closed the connection in the middle of a response")
        received += len(data)
        try:
            reader.parser.feed_data(data)
        except httptools.HttpParserError as err:
            raise ConnectionError(f"the answer is not HTTP ({err})") from None
        if reader.too_large:
            raise ResponseTooLargeError(_too_large(max_bytes))
    status = int(reader.parser.get_status_code())
    return Response(status, reader.headers, b"".join(reader.chunks)), reader.keep


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read now (poll: select stops at fd 1024)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


def _too_large(max_bytes: int) -> str:
    return (
        f"the response is over {max_bytes:,} bytes, more than the answers to this request "
        f"can need; lower inputs_per_request if the API really sends that much"
    )


def _describe(err: BaseException, url: str, timeout: float) -> str:
    if isinstance(err, TimeoutError | socket.timeout):
        return f"TimeoutError: no answer from {url} within {timeout:g} s"
    if isinstance(err, _NothingReceived):
        return f"ConnectionError: {url} closed the connection without answering"
    if isinstance(err, ssl.SSLError):
        return f"SSLError: {err}"
    return f"{type(err).__name__}: {err}"
