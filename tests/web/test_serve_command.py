"""``advml serve``: options are checked, and a real server answers on 127.0.0.1 only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from advml.cli import main


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--port", "0"),
        ("--port", "70000"),
        ("--timeout", "0"),
        ("--max-upload-mb", "-1"),
        ("--max-wait", "-1"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--dataset", "digits", option, value]) == 2
    assert option in capsys.readouterr().err


def test_model_file_of_another_shape_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from advml.models import TorchClassifier, build_architecture
    from advml.models.io import save_model

    model = TorchClassifier(
        build_architecture("mlp", input_shape=(1, 8, 8), n_classes=10),
        input_shape=(1, 8, 8),
        n_classes=10,
    )
    path = save_model(model, tmp_path / "digits.pt")
    assert main(["serve", "--dataset", "mnist-5k", "--model", str(path)]) == 2
    assert "shape" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "expected"), [([], 2.0), (["--max-wait", "0.25"], 0.25)])
def test_max_wait_reaches_the_app(
    argv: list[str],
    expected: float,
    digits_mlp: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    import advml.web
    from advml.models.io import save_model
    from advml.web.app import DEFAULT_MAX_WAIT

    model = save_model(digits_mlp, tmp_path / "digits.pt")
    made: dict[str, Any] = {}
    real = advml.web.create_app

    def create_app(service: Any, **kwargs: Any) -> Any:
        made.update(kwargs)
        # No background autoencoder training: only the app's settings are checked.
        return real(service, **kwargs, prepare_defences=False)

    def run(server: Any, sockets: Any = None) -> None:
        made.update(app=server.config.app, host=server.config.host, sockets=sockets)

    monkeypatch.setattr(advml.web, "create_app", create_app)
    monkeypatch.setattr(uvicorn.Server, "run", run)
    port = str(_free_port())
    assert main(["serve", "--dataset", "digits", "--model", str(model), "--port", port, *argv]) == 0
    assert made["max_wait"] == expected
    assert made["host"] == "127.0.0.1"
    assert DEFAULT_MAX_WAIT == 2.0  # the CLI's default is the library's


def test_help_documents_max_wait(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-wait MAX_WAIT" in text and "answered 503 with Retry-After (default 2" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_server_answers_on_loopback_with_loopback_host_names_only() -> None:
    port = _free_port()
    advml = Path(sys.executable).with_name("advml")
    proc = subprocess.Popen(
        [str(advml), "serve", "--dataset", "digits", "--port", str(port), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                info = httpx2.get(f"{url}/api/info", timeout=5)
                break
            except httpx2.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {proc.communicate()}") from None
                time.sleep(0.3)
        assert info.status_code == 200 and info.json()["dataset"] == "digits"
        assert httpx2.get(url, headers={"Host": "localhost"}).status_code == 200
        # A page on another site reaching 127.0.0.1 through DNS rebinding sends its own host.
        foreign = httpx2.get(f"{url}/api/info", headers={"Host": "attacker.example"})
        assert foreign.status_code == 400
        other = socket.gethostbyname(socket.gethostname())
        if not other.startswith("127."):  # not listening on the machine's other address
            with pytest.raises(httpx2.TransportError):
                httpx2.get(f"http://{other}:{port}/api/info", timeout=2)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out


def test_binds_first_then_announces_and_serves_on_that_socket(
    digits_mlp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import uvicorn

    import advml.web
    from advml.models.io import save_model

    model = save_model(digits_mlp, tmp_path / "digits.pt")
    port = _free_port()
    seen: dict[str, Any] = {}
    real = advml.web.create_app

    def run(server: Any, sockets: Any = None) -> None:
        (sock,) = sockets
        seen["bound"] = sock.getsockname()[1]
        seen["out"] = capsys.readouterr().out
        # The port is taken while the URL is on screen: nobody else can get it.
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))

    monkeypatch.setattr(
        advml.web, "create_app", lambda service, **kw: real(service, **kw, prepare_defences=False)
    )
    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", "--dataset", "digits", "--model", str(model), "--port", str(port)]) == 0
    assert seen["bound"] == port
    assert f"http://127.0.0.1:{port}/" in seen["out"]


def test_a_busy_port_is_one_line_naming_port_before_any_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import advml.commands._common as common

    def never(*args: Any) -> Any:
        raise AssertionError("the model was loaded before the port was bound")

    monkeypatch.setattr(common, "load_model_and_data", never)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--dataset", "digits", "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert "http://" not in captured.out  # no URL announced for a server that never ran
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert (
        f"--port {port}: the port is in use" in lines[0]
        and "choose another with --port" in lines[0]
    )
