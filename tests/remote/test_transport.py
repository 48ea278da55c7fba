"""The client's own HTTP/1.1 transport (``advml.models.http_transport``) against what
real servers send: TLS with a private CA, chunked bodies, bodies that end with the
connection, interim ``100 Continue`` answers, keep-alive connections the server has
closed, responses too large to hold, garbage, and headers that would split a request."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from _servers import Server

from advml.models import http as http_module
from advml.models.http import HTTPClassifier, RemoteModelError, RemoteResponseError, TargetSpec
from advml.models.http_transport import DirectTransport, ProxyTransport, open_transport
from advml.models.torch import TorchClassifier

PROBS = json.dumps({"probabilities": [[0.25, 0.75]]}).encode()


def _ok(body: bytes = PROBS, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


class Canned:
    """A bare TCP server on 127.0.0.1 answering each request with the next reply of
    ``replies``: bytes (the connection is then kept), ``(bytes, "close")`` (closed after
    it) or ``None`` (closed without an answer). It records each request's head."""

    def __init__(self, replies: list[bytes | tuple[bytes, str] | None]) -> None:
        self.replies = list(replies)
        self.heads: list[str] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/predict"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.replies and self._one(conn):
                    pass

    def _one(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        text = head.decode("latin-1")
        length = next(
            (int(line.split(":", 1)[1]) for line in text.split("\r\n")
             if line.lower().startswith("content-length:")),
            0,
        )  # fmt: skip
        while len(body) < length:
            body += conn.recv(65536)
        self.heads.append(text)
        self.bodies.append(body)
        reply = self.replies.pop(0)
        if reply is None:
            return False
        if isinstance(reply, tuple):
            conn.sendall(reply[0])
            return False
        conn.sendall(reply)
        return True

    def close(self) -> None:
        self.replies = []
        self.sock.close()


@pytest.fixture
def canned() -> Iterator[Callable[..., Canned]]:
    made: list[Canned] = []

    def make(replies: list[bytes | tuple[bytes, str] | None]) -> Canned:
        made.append(Canned(replies))
        return made[-1]

    yield make
    for c in made:
        c.close()


def _model(url: str, **spec: object) -> HTTPClassifier:
    options: dict[str, object] = {"returns": "probs", "backoff": 0.01, **spec}
    target = TargetSpec(url=url, **options)  # type: ignore[arg-type]
    return HTTPClassifier(target, input_shape=(3,), n_classes=2, bounds=(0.0, 1.0))


X = np.array([[0.1, 0.2, 0.3]], dtype=np.float32)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A private CA (``ca.pem``), a server certificate for 127.0.0.1 (``server.pem``,
    ``server.key``) and a client certificate (``client.pem``, ``client.key``), in
    ``tmp_path``."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    for name, identity in (("server", "127.0.0.1"), ("client", "auditor@example.com")):
        cert = ca.issue_cert(identity)
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / f"{name}.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
    return tmp_path


def test_a_chunked_answer_is_read_whole(canned: Callable[..., Canned]) -> None:
    half = len(PROBS) // 2
    chunks = f"{half:x}\r\n".encode() + PROBS[:half] + b"\r\n"
    chunks += f"{len(PROBS) - half:x}\r\n".encode() + PROBS[half:] + b"\r\n0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    server = canned([head + chunks, _ok()])
    model = _model(server.url)
    np.testing.assert_allclose(model.predict_proba(X), [[0.25, 0.75]])
    model.predict_proba(X + 0.1)  # the same connection, kept after a chunked answer
    assert server.connections == 1


def test_an_answer_ended_by_closing_the_connection(canned: Callable[..., Canned]) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    server = canned([(head + PROBS, "close"), _ok()])
    model = _model(server.url)
    np.testing.assert_allclose(model.predict_proba(X), [[0.25, 0.75]])
    model.predict_proba(X + 0.1)  # a new connection: the first one was closed
    assert server.connections == 2
    assert model.retries_done == 0


def test_an_interim_100_continue_is_skipped(canned: Callable[..., Canned]) -> None:
    server = canned([b"HTTP/1.1 100 Continue\r\n\r\n" + _ok()])
    np.testing.assert_allclose(_model(server.url).predict_proba(X), [[0.25, 0.75]])


def test_a_keep_alive_connection_the_server_closed_is_replaced(
    canned: Callable[..., Canned],
) -> None:
    # The server closes after each answer without saying so (an idle timeout), and once
    # closes a kept connection just as the next request arrives: neither costs a retry.
    server = canned([(_ok(), "close"), _ok(), None, _ok(), _ok()])
    model = _model(server.url)
    for i in range(4):
        np.testing.assert_allclose(model.predict_proba(X + 0.1 * i), [[0.25, 0.75]])
    assert model.retries_done == 0
    assert model.requests_sent == 4
    assert len(server.heads) == 5  # the request the server dropped was sent again once


def test_a_response_too_large_is_refused_before_it_is_read(
    canned: Callable[..., Canned], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_module, "_MAX_RESPONSE", 1000)
    huge = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n"
    server = canned([(huge, "close")])
    model = _model(server.url, retries=3)
    with pytest.raises(RemoteResponseError, match=r"over 1,128 bytes.*inputs_per_request") as err:
        model.predict_proba(X)
    assert err.value.field == "$"
    assert model.requests_sent == 1  # not retried: a larger answer will not shrink

    # Without a length: refused once the chunks pass the limit.
    stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    stream += b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(8))
    server = canned([(stream, "close")])
    with pytest.raises(RemoteResponseError, match="over 1,128 bytes"):
        _model(server.url, retries=3).predict_proba(X)


def test_garbage_instead_of_http_is_a_clear_error(canned: Callable[..., Canned]) -> None:
    server = canned([(b"SSH-2.0-OpenSSH_9.6\r\n", "close")] * 2)
    with pytest.raises(RemoteModelError, match=r"failed 2 times.*not HTTP"):
        _model(server.url, retries=1).predict_proba(X)


def test_a_header_that_would_split_the_request_is_refused(
    canned: Callable[..., Canned], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = canned([_ok()])
    monkeypatch.setenv("TOK", "abc\r\nX-Evil: 1")
    model = _model(server.url, headers={"Authorization": "Bearer ${TOK}"})
    with pytest.raises(ValueError, match=r"'Authorization'.*line break"):
        model.predict_proba(X)
    assert server.heads == []  # nothing was sent


def test_credentials_in_the_url_are_sent_as_basic_auth(canned: Callable[..., Canned]) -> None:
    server = canned([_ok()])
    url = server.url.replace("http://", "http://user:p%40ss@")
    _model(url).predict_proba(X)
    head = server.heads[0].lower()
    assert "authorization: basic dxnlcjpwqhnz" in head  # base64 of user:p@ss
    assert "host: 127.0.0.1:" in head and "user-agent: advml/" in head


def test_a_proxy_from_the_environment_selects_urllib3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert isinstance(open_transport("http://api.example.com/predict", 4), ProxyTransport)
    assert isinstance(open_transport("http://127.0.0.1:9/predict", 4), DirectTransport)
    with pytest.raises(ValueError, match="http:// or https://"):
        open_transport("ftp://example.com/predict", 1)


def test_https_with_a_private_ca(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data,
    pki: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = serve(digits_mlp, tls=(pki / "server.pem", pki / "server.key"))
    assert s.url.startswith("https://")
    x = digits_data.x_test[:5]

    # Not trusted by default (certifi's roots): refused, naming the reason.
    spec = TargetSpec(url=s.url, returns="probs", retries=0)
    untrusted = HTTPClassifier(spec, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    with pytest.raises(RemoteModelError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.predict_proba(x)

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki / "ca.pem"))
    model = HTTPClassifier(s.url, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    np.testing.assert_allclose(
        model.predict_proba(x), digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6
    )
    model.predict_proba(digits_data.x_test[5:9])
    assert model.retries_done == 0


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 that relays absolute-form requests to their
    target and tunnels ``CONNECT`` (HTTPS), recording the request lines it saw."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        import http.client
        import urllib.parse

        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            first, *rest = head.decode("latin-1").split("\r\n")
            self.lines.append(first)
            method, target, _ = first.split(" ")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                with socket.create_connection((host, int(port))) as upstream:
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    _pipe(conn, upstream)
                return
            headers = dict(line.split(": ", 1) for line in rest)
            length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), 0))
            while len(body) < length:
                body += conn.recv(65536)
            parts = urllib.parse.urlsplit(target)
            upstream = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            upstream.request(method, parts.path, body, headers)
            answer = upstream.getresponse()
            payload = answer.read()
            out = f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
            for k, v in answer.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    out += f"{k}: {v}\r\n"
            out += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            conn.sendall(out.encode("latin-1") + payload)

    def close(self) -> None:
        self.sock.close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways between ``a`` and ``b`` until one side closes."""
    import select

    while True:
        ready, _, _ = select.select([a, b], [], [], 10)
        if not ready:
            return
        for src in ready:
            data = src.recv(65536)
            if not data:
                return
            (b if src is a else a).sendall(data)


@pytest.fixture
def forward_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    """A running :class:`ForwardProxy`, with no ``NO_PROXY`` that would skip it."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = ForwardProxy()
    yield proxy
    proxy.close()


def test_a_target_behind_a_proxy_is_reached_through_it(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = serve(digits_mlp)
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    model = HTTPClassifier(s.url, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    x = digits_data.x_test[:12]
    np.testing.assert_allclose(
        model.predict_proba(x), digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6
    )
    assert isinstance(model._transport(), ProxyTransport)
    assert model._raw_ok  # the server's protocol header came through the proxy
    lines = forward_proxy.lines
    assert lines and all(line.startswith(f"POST {s.url} ") for line in lines)


def test_mutual_tls_and_a_per_target_ca_bundle(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data,
    pki: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from advml.models.http import load_target

    s = serve(
        digits_mlp,
        tls=(pki / "server.pem", pki / "server.key"),
        client_ca=pki / "ca.pem",
    )
    x = digits_data.x_test[:4]
    shape = {"input_shape": (1, 8, 8), "n_classes": 10, "bounds": (0.0, 1.0)}

    # The CA from the target file (relative to it), no certificate: the server refuses.
    (pki / "no-cert.yaml").write_text(f"url: {s.url}\nca_bundle: ca.pem\nretries: 0\n")
    spec = load_target(pki / "no-cert.yaml")
    assert spec.ca_bundle == str(pki / "ca.pem")
    with pytest.raises(RemoteModelError, match="failed 1 times"):
        HTTPClassifier(spec, **shape).predict_proba(x)  # type: ignore[arg-type]

    # With the client's certificate and key the same target answers.
    (pki / "target.yaml").write_text(
        f"url: {s.url}\nca_bundle: ca.pem\nclient_cert: client.pem\nclient_key: client.key\n"
    )
    model = HTTPClassifier(load_target(pki / "target.yaml"), **shape)  # type: ignore[arg-type]
    np.testing.assert_allclose(
        model.predict_proba(x), digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6
    )

    # An encrypted key: its password from the environment, never from the file.
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((pki / "client.key").read_bytes(), None)
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    (pki / "locked.key").write_bytes(locked)
    base = {"url": s.url, "ca_bundle": str(pki / "ca.pem"),
            "client_cert": str(pki / "client.pem"),
            "client_key": str(pki / "locked.key")}  # fmt: skip
    with pytest.raises(ValueError, match="client_key_password must name an environment"):
        TargetSpec(**base, client_key_password="s3cret")  # type: ignore[arg-type]
    monkeypatch.setenv("KEY_PASS", "s3cret")
    spec = TargetSpec(**base, returns="probs", client_key_password="${KEY_PASS}")  # type: ignore[arg-type]
    np.testing.assert_allclose(
        HTTPClassifier(spec, **shape).predict_proba(x),  # type: ignore[arg-type]
        digits_mlp.predict_proba(x),
        rtol=1e-5,
        atol=1e-6,
    )
    monkeypatch.setenv("KEY_PASS", "wrong")
    wrong = HTTPClassifier(spec, **shape)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"could not be loaded.*client_key_password"):
        wrong.predict_proba(x)


def test_tls_settings_are_checked_when_the_target_is_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not https://"):
        TargetSpec(url="http://127.0.0.1:1/predict", ca_bundle=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="client_cert: no file"):
        TargetSpec(url="https://127.0.0.1:1/predict", client_cert=str(tmp_path / "nope.pem"))
    with pytest.raises(ValueError, match="need client_cert"):
        TargetSpec(url="https://127.0.0.1:1/predict", client_key=str(tmp_path))
    (tmp_path / "junk.pem").write_text("not a certificate")
    spec = TargetSpec(url="https://127.0.0.1:1/predict", returns="probs",
                      ca_bundle=str(tmp_path / "junk.pem"))  # fmt: skip
    model = HTTPClassifier(spec, input_shape=(3,), n_classes=2, bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"ca_bundle .*junk.pem.* is not a PEM file"):
        model.predict_proba(X)
    assert model.query_count == 0  # refused before anything was counted


def test_an_https_target_behind_a_proxy_is_tunnelled(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data,
    pki: Path,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = serve(digits_mlp, tls=(pki / "server.pem", pki / "server.key"))
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
    spec = TargetSpec(url=s.url, ca_bundle=str(pki / "ca.pem"))
    model = HTTPClassifier(spec, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    x = digits_data.x_test[:6]
    np.testing.assert_allclose(
        model.predict_proba(x), digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6
    )
    assert isinstance(model._transport(), ProxyTransport)
    assert forward_proxy.lines[0].startswith(f"CONNECT 127.0.0.1:{s.port} HTTP/1.")


def test_json_inputs_carry_the_exact_float32_values(canned: Callable[..., Canned]) -> None:
    server = canned([_ok(json.dumps({"probabilities": [[0.25, 0.75]] * 2}).encode())])
    model = _model(server.url, body={"instances": "$inputs", "meta": {1: "int key"}})
    x = np.array([[0.1, 1 / 3, 2e-8], [0.7, 0.123456789, 1.0]], dtype=np.float32)
    model.predict_proba(x)
    sent = json.loads(server.bodies[0])
    assert sent["meta"] == {"1": "int key"}  # keys written as strings, as json does
    values = np.array(sent["instances"], dtype=np.float64)
    np.testing.assert_array_equal(values, x.astype(np.float64))  # no digit lost or added
