"""The client's per-request savings keep its behaviour: batch keys equal the per-row keys
(answers cached by an earlier run are found), and the environment's proxy, netrc and
CA-bundle settings, read once per session, still apply."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from _servers import Server

from advml.models.http import HTTPClassifier, TargetSpec, input_key, input_keys
from advml.models.torch import TorchClassifier


@pytest.mark.parametrize("shape", [(7, 1, 8, 8), (3, 13), (1, 3, 4, 4), (0, 5)])
def test_batch_keys_equal_the_per_row_keys(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).random(shape)  # float64: converted as input_key does
    assert input_keys(x) == [input_key(row) for row in x]
    # A strided view (every other row) is hashed by value, not by memory layout.
    big = np.random.default_rng(1).random((10, 6)).astype(np.float32)
    assert input_keys(big[::2]) == [input_key(row) for row in big[::2]]


def test_session_reads_the_environment_once_and_keeps_it(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> None:
    s = serve(digits_mlp)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    model = HTTPClassifier(s.url, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    p = model.predict_proba(digits_data.x_test[:5])
    np.testing.assert_allclose(p, digits_mlp.predict_proba(digits_data.x_test[:5]), atol=1e-6)
    transport = model._transport()
    assert transport is model._transport()  # read once, kept
    assert transport.ca_certs == str(tmp_path / "ca.pem")
    # 127.0.0.1 is in NO_PROXY, so the loopback target is reached directly...
    assert transport.proxy is None
    # ...and a target outside it goes through the proxy the environment names.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    spec = TargetSpec(url="http://example.invalid/predict", returns="probs")
    other = HTTPClassifier(spec, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    assert other._transport().proxy == "http://proxy.invalid:3128"


def test_netrc_credentials_are_sent_unless_the_target_sets_authorization(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> None:
    s = serve(digits_mlp, api_key="netrc-secret")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login user password pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    plain = TargetSpec(url=s.url, returns="probs")  # no probe: the server wants a key
    model = HTTPClassifier(plain, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    assert model._transport().auth == {"authorization": "Basic dXNlcjpwYXNz"}
    # The target's own Authorization header wins over the netrc entry.
    spec = TargetSpec(url=s.url, returns="probs", headers={"Authorization": "Bearer ${TOK}"})
    monkeypatch.setenv("TOK", "netrc-secret")
    own = HTTPClassifier(spec, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    p = own.predict_proba(digits_data.x_test[:3])
    np.testing.assert_allclose(p, digits_mlp.predict_proba(digits_data.x_test[:3]), atol=1e-6)
