"""The same network gives the same answers with 1 and 2 torch threads, to float32 tolerance.

tests/conftest.py runs the suite on one thread (faster for tiny models); users run with
however many threads torch picks. With two threads the GEMMs and convolutions split their
sums differently, so results agree to float32 tolerance (the policy in tests/conftest.py),
not bit for bit, and labels agree wherever the top class is clear.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from advml.models import TorchClassifier


@pytest.fixture
def threads() -> Iterator[None]:
    """Restores the thread count the suite runs with, whatever the test sets."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _outputs(model: TorchClassifier, x: np.ndarray, n_threads: int) -> dict[str, np.ndarray]:
    torch.set_num_threads(n_threads)
    assert torch.get_num_threads() == n_threads
    xt = torch.as_tensor(x).clone().requires_grad_(True)
    with model.evaluating():
        logits = model.logits(xt)
        # The input gradient every white-box attack follows.
        (grad,) = torch.autograd.grad(torch.log_softmax(logits, 1)[:, 0].sum(), xt)
    return {
        "logits": logits.detach().numpy(),
        "proba": np.asarray(model.predict_proba(x)),
        "labels": np.asarray(model.predict(x)),
        "grad": grad.numpy(),
    }


@pytest.mark.parametrize("which", ["digits_mlp", "small_cnn"])
def test_one_and_two_threads_agree_to_float32_tolerance(
    which: str,
    request: pytest.FixtureRequest,
    digits_data: Any,
    assert_labels_match: Any,
    threads: None,
) -> None:
    model: TorchClassifier = request.getfixturevalue(which)
    x = digits_data.x_test[:200]
    one = _outputs(model, x, 1)
    two = _outputs(model, x, 2)
    # Scores and gradients: float32 rounding of sums split differently (rtol 1e-5, and an
    # atol of 1e-5 of the largest value for those near 0).
    for key in ("logits", "grad"):
        scale = float(np.abs(one[key]).max())
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-5 * scale, err_msg=key)
    np.testing.assert_allclose(two["proba"], one["proba"], rtol=1e-5, atol=1e-5)
    assert_labels_match(two["labels"], one["logits"])
    assert_labels_match(one["labels"], two["logits"])
