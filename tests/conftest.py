"""Fixtures shared by the whole test suite: small real data, small real models.

Everything here is seeded, offline and fast (the session's one trained model takes about a
second on two CPU cores). Tests that change a model (masks, training, modes) take a copy
(``copy.deepcopy``) of the session-scoped ones.

Tolerance policy (every float comparison in the suite follows it):

- Exact equality (``assert_array_equal``, ``torch.equal``) only where the computation is
  exact: copies, integer labels and counts, the same call on the same input in one process
  (same shapes, same kernels, same threads), and float32 arithmetic that does not round
  (clipping, selecting, masking with 0 and 1).
- A few float32 roundings of values of magnitude <= 1 (``x + eps * sign``, a blend, a
  division by 255): ``atol=1e-6``, about 8 units in the last place of 1.0.
- The same float32 network evaluated with another batch shape, code path (a hook, a copy
  with zeroed weights), CPU kernel (``ATEN_CPU_CAPABILITY``) or thread count: the GEMMs sum
  in another order, so results differ by a few units in the last place *of the terms
  summed*, not of the result: ``rtol=1e-5`` plus an ``atol`` of ``1e-5`` times the values'
  magnitude (values near 0 have no relative precision). Probabilities: a logit error
  ``d`` moves a probability by at most ``d / 2``, so ``rtol=1e-5, atol=1e-5``.
- Labels (argmax) of two such computations are compared with ``assert_labels_match``: equal
  wherever the top logit leads by more than the float32 tolerance, one of the tied
  classes elsewhere (an input on the decision boundary may go either way).
- float32 against a float64 reference (scikit-learn, scipy): ``rtol=1e-5`` plus an
  ``atol`` scaled to the values.
- Nothing depends on how fast the machine is: no test asserts a duration, and time limits
  are tested with events or injected clocks, not with small timeouts.

``torch.set_num_threads(1)`` below is for speed; the suite must pass under any
``OMP_NUM_THREADS`` and ``ATEN_CPU_CAPABILITY`` (.ci/run runs a subset under
``ATEN_CPU_CAPABILITY=default``), and tests/models/test_threads.py compares 1 and 2 threads.
"""

from __future__ import annotations

import copy
import os
import tempfile

# Silence every progress bar before advml is imported anywhere, and keep every file the
# tests make (reference models, downloads) out of the user's own $ADVML_HOME.
os.environ["ADVML_QUIET"] = "1"
os.environ["ADVML_HOME"] = tempfile.mkdtemp(prefix="advml-test-home-")

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from advml.models import TorchClassifier, save_model, train
from advml.models.architectures import build

# The suite's models are tiny: one thread is faster than several fighting over two cores
# (measured: the evasion contract runs about 5x faster on a busy 2-core machine).
torch.set_num_threads(1)


@dataclass(frozen=True)
class Split:
    """A fixed train/test split of ``(n, *input_shape)`` float32 inputs and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="session")
def digits_data() -> Split:
    """sklearn's 8x8 digits scaled to [0, 1], shape (n, 1, 8, 8); 20% stratified test split.

    The arrays are shared by every test: copy before changing them.
    """
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    return Split(x_train, y_train, x_test, y_test)


@pytest.fixture(scope="session")
def digits_mlp(digits_data: Split) -> TorchClassifier:
    """The reference MLP trained on ``digits_data`` (seed 0); >= 0.9 test accuracy.

    Shared by the session: do not train, mask or leave it in train mode (deep-copy it).
    """
    torch.manual_seed(0)
    module = build("mlp", input_shape=(1, 8, 8), n_classes=10)
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    train(model, digits_data.x_train, digits_data.y_train, epochs=10, seed=0, show_progress=False)
    model.module.eval()
    model.reset_queries()
    return model


@pytest.fixture
def model_file(digits_mlp: TorchClassifier, tmp_path: Path) -> Path:
    """A copy of ``digits_mlp`` saved to ``tmp_path / "digits-mlp.pt"``, for the CLI."""
    return save_model(copy.deepcopy(digits_mlp), tmp_path / "digits-mlp.pt")


@pytest.fixture
def quick_audit_argv(model_file: Path) -> Callable[..., list[str]]:
    """``argv(out, *extra)``: the ``advml audit`` command line of a quick audit of
    ``model_file``: the evasion section only, FGSM at eps 0 and 0.1 on 30 samples."""

    def argv(out: Path, *extra: str) -> list[str]:
        return [
            "audit",
            "--quick",
            "--model",
            str(model_file),
            "--n-samples",
            "30",
            "--eps",
            "0,0.1",
            "--attacks",
            "fgsm",
            "--sections",
            "evasion",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]

    return argv


def _linear(
    weight: list[list[float]], bias: list[float] | None = None, bounds: tuple[float, float] = (0, 1)
) -> TorchClassifier:
    w = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(torch.tensor(bias or [0.0] * w.shape[0]))
    return TorchClassifier(layer, input_shape=(w.shape[1],), n_classes=w.shape[0], bounds=bounds)


# float32 logits of one network computed two ways agree to this relative tolerance (of the
# row's largest logit); see the tolerance policy above.
LOGIT_RTOL = 1e-5


def _assert_labels_match(labels: Any, logits: Any, *, rtol: float = LOGIT_RTOL) -> None:
    z = np.asarray(logits.detach().cpu() if isinstance(logits, torch.Tensor) else logits)
    z = z.astype(np.float64)
    got = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    assert got.shape == (z.shape[0],), f"labels of shape {got.shape} for logits {z.shape}"
    # Classes whose logit is within the float32 tolerance of the row's top one: any of them
    # may come out on top in another evaluation of the same network.
    tol = rtol * np.abs(z).max(axis=1, keepdims=True) + 1e-6
    near_top = z >= z.max(axis=1, keepdims=True) - tol
    ok = near_top[np.arange(len(z)), got]
    bad = np.flatnonzero(~ok)
    assert ok.all(), (
        f"{len(bad)} of {len(z)} labels are not the top class (rows {bad[:10].tolist()}: "
        f"got {got[bad[:10]].tolist()}, argmax {z[bad[:10]].argmax(1).tolist()})"
    )


@pytest.fixture
def assert_labels_match() -> Callable[..., None]:
    """``assert_labels_match(labels, logits)``: labels are the argmax wherever it is clear.

    For labels and logits from two float32 evaluations of the same network (other batch
    shapes, kernels or threads): a label must equal the argmax of ``logits`` where the top
    logit leads by more than ``1e-5`` of the row's largest ``|logit|``; where the top
    classes are that close, any of them is accepted.
    """
    return _assert_labels_match


@pytest.fixture
def make_linear() -> Callable[..., TorchClassifier]:
    """``make_linear(weight, bias=None, bounds=(0, 1))``: a hand-weighted linear classifier.

    ``weight`` has one row per class; inputs are vectors of ``len(weight[0])`` features.
    """
    return _linear


@pytest.fixture
def tiny_linear() -> TorchClassifier:
    """Two classes on 2-d inputs in bounds (0, 1) with logits ``[0, x0 - x1]``.

    Class 1 iff ``x0 > x1``. The decision boundary is ``x0 = x1`` with normal
    ``w = (1, -1)``, so a point with margin ``m = |x0 - x1|`` needs an L∞ perturbation of
    more than ``m / ||w||_1 = m / 2`` and an L2 perturbation of more than
    ``m / ||w||_2 = m / sqrt(2)`` to change class (away from the bounds).
    """
    return _linear([[0.0, 0.0], [1.0, -1.0]])


@pytest.fixture
def small_cnn() -> TorchClassifier:
    """An untrained, seeded reference CNN for (1, 8, 8) digits with 4 and 8 conv channels.

    Function-scoped and cheap: tests may mask its units freely.
    """
    torch.manual_seed(0)
    module = build("cnn", input_shape=(1, 8, 8), n_classes=10, channels=(4, 8), hidden=16)
    module.eval()
    return TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)


# -- real-browser tests (Debian chromium through Playwright; .ci/run installs chromium) ----
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def launch_chromium() -> Callable[[Any], Any]:
    """``launch(playwright) -> Browser`` for headless Debian chromium.

    Skips the test when chromium or the playwright package is missing, except under CI
    (``CI=true``), where that is a failure: .ci/run installs chromium.
    """
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright)")
    if missing:
        why = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; .ci/run should have installed it")
        pytest.skip(why)

    def launch(playwright: Any) -> Any:
        return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

    return launch


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: ``$ADVML_ARTIFACTS`` (kept by the caller) or ``tmp_path``."""
    folder = Path(os.environ.get("ADVML_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
