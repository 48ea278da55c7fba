"""A verifier asked about someone else's model answers "not verified" and why, never raises.

Every scheme's key is checked against models defined outside advml (a CNN with
BatchNorm, a GELU MLP, a scikit-learn model), a model with other classes, a label-only
API and an API whose query budget is smaller than the key (issue 11, §2.6).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from advml import registry
from advml.models import CallableClassifier, SklearnClassifier, TorchClassifier
from advml.models.architectures import build
from advml.watermark import (
    Uchida,
    Verification,
    WatermarkKey,
    WatermarkScheme,
    calibrate,
    robustness_table,
    verify,
)
from advml.watermark.removal import Distill

SCHEMES = registry.available("watermark")
TRIGGER_SETS = [n for n in SCHEMES if n != "uchida"]

pytestmark = pytest.mark.filterwarnings("ignore:this frontier-stitching key is not calibrated")


class BatchNormCNN(nn.Module):
    """A user's CNN: convolution blocks with BatchNorm, ``conv2`` a whole block."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return self.head(self.conv2(h).mean(dim=(2, 3)))


class GeluMLP(nn.Module):
    """A user's MLP with GELU units, whose ``fc2`` is smaller than the reference MLP's."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x.flatten(1))))


def _torch(module: nn.Module, n_classes: int = 10) -> TorchClassifier:
    torch.manual_seed(0)
    module.eval()
    return TorchClassifier(module, input_shape=(1, 8, 8), n_classes=n_classes)


@pytest.fixture(scope="module")
def keys(digits_mlp: TorchClassifier, digits_data: Any) -> dict[str, WatermarkKey]:
    """Each scheme's key, embedded quickly on the reference MLP; Uchida also on the CNN."""
    quick = {"n_triggers": 12, "trigger_batch": 12, "epochs": 1}
    settings: dict[str, dict[str, Any]] = {"uchida": {"bits": 32, "epochs": 1}}
    settings["frontier"] = {**quick, "candidates": 300}
    x, y = digits_data.x_train, digits_data.y_train
    out = {}
    for name in SCHEMES:
        scheme = registry.create("watermark", name, **settings.get(name, quick))
        assert isinstance(scheme, WatermarkScheme)
        out[name] = scheme.embed(digits_mlp, x, y, key="owner").key
    torch.manual_seed(0)
    cnn = _torch(build("cnn", input_shape=(1, 8, 8), n_classes=10))
    out["uchida-cnn"] = Uchida(bits=32, epochs=1).embed(cnn, x[:300], y[:300], key="owner").key
    return out


@pytest.fixture(scope="module")
def estimator(digits_data: Any) -> LogisticRegression:
    """A scikit-learn model of the digits, trained on the flattened images."""
    x = digits_data.x_train.reshape(len(digits_data.x_train), -1)
    return LogisticRegression(max_iter=200).fit(x, digits_data.y_train)


@pytest.fixture
def sklearn_model(estimator: LogisticRegression) -> SklearnClassifier:
    return SklearnClassifier(estimator, bounds=(0.0, 1.0), input_shape=(1, 8, 8))


def _check(model: Any, key: WatermarkKey) -> Verification:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning other than frontier's (filtered above)
        warnings.filterwarnings("ignore", "this frontier-stitching key is not calibrated")
        return verify(model, key)


def _not_checked(v: Verification, key: WatermarkKey, *words: str) -> None:
    assert not v.verified and v.reason is not None
    for word in words:
        assert word in v.reason, v.reason
    assert (v.matches, v.n, v.queries, v.chance_probability) == (0, key.size, 0, 1.0)
    assert not v.observed.any() and (v.extracted == -1).all()
    assert np.array_equal(v.expected, key.arrays["bits" if "bits" in key.arrays else "labels"])


def test_uchida_on_a_batchnorm_cnn_names_the_layer_instead_of_raising(
    keys: dict[str, WatermarkKey],
) -> None:
    model = _torch(BatchNormCNN())
    # The key of the reference CNN reads 'conv2', a Sequential block in this model.
    v = _check(model, keys["uchida-cnn"])
    _not_checked(v, keys["uchida-cnn"], "'conv2'", "Sequential", "another architecture")
    assert v.applicable  # the weights were there to read: the watermark is not in them
    # The MLP's key reads 'fc2', which this model does not have.
    v = _check(model, keys["uchida"])
    _not_checked(v, keys["uchida"], "'fc2'", "does not have", "conv1")


def test_uchida_on_a_gelu_mlp_with_another_layer_size(keys: dict[str, WatermarkKey]) -> None:
    v = _check(_torch(GeluMLP()), keys["uchida"])
    _not_checked(v, keys["uchida"], "'fc2'", "has 32", "another architecture")


@pytest.mark.parametrize("name", TRIGGER_SETS)
def test_trigger_sets_check_foreign_models_that_fit(
    name: str, keys: dict[str, WatermarkKey], sklearn_model: SklearnClassifier
) -> None:
    key = keys[name]
    for model in (_torch(BatchNormCNN()), _torch(GeluMLP()), sklearn_model):
        before = model.query_count
        v = _check(model, key)
        # Same inputs and classes: the key's inputs are asked about and counted. With 12
        # items, even 12 matches have a chance probability above alpha (>= 0.5**12).
        assert v.reason is None and v.applicable and not v.verified
        assert v.queries == key.size == model.query_count - before
        assert 0 <= v.matches <= key.size


@pytest.mark.parametrize("name", SCHEMES)
def test_every_scheme_answers_models_that_do_not_fit(
    name: str, keys: dict[str, WatermarkKey], estimator: LogisticRegression
) -> None:
    key = keys[name]
    five = _torch(BatchNormCNN(n_classes=5), n_classes=5)
    flat = SklearnClassifier(estimator, bounds=(0.0, 1.0))  # takes vectors of 64 features
    white = name == "uchida"
    v = _check(flat, key)  # inputs of shape (64,), no weights to read
    _not_checked(v, key, "white-box" if white else "(64,)")
    assert v.applicable is not white
    assert flat.query_count == 0
    v = _check(five, key)  # another number of classes (and another architecture)
    _not_checked(v, key, "'fc2'" if white else "10 classes")
    assert five.query_count == 0


@pytest.mark.parametrize("name", SCHEMES)
def test_label_only_apis_and_small_budgets(
    name: str, keys: dict[str, WatermarkKey], digits_mlp: TorchClassifier
) -> None:
    key = keys[name]

    def api(x: np.ndarray) -> np.ndarray:
        return np.asarray(digits_mlp.predict(x))

    def labels_only(budget: int | None) -> CallableClassifier:
        return CallableClassifier(
            api,
            input_shape=(1, 8, 8),
            n_classes=10,
            bounds=(0.0, 1.0),
            returns="labels",
            query_budget=budget,
        )

    v = _check(labels_only(None), key)
    if name == "uchida":
        _not_checked(v, key, "white-box", "CallableClassifier")
        assert not v.applicable  # says nothing either way about the weights behind it
    else:  # labels are all a trigger set needs
        assert v.reason is None and v.queries == key.size
    small = labels_only(key.size - 1)
    v = _check(small, key)
    _not_checked(v, key, "white-box" if name == "uchida" else f"query_budget={key.size - 1}")
    assert small.query_count == 0  # nothing spent on a check that could not finish


def test_a_raw_estimator_is_a_mistake_named_with_the_fix(
    keys: dict[str, WatermarkKey], digits_data: Any
) -> None:
    raw = LogisticRegression()
    for name in ("uchida", "adi"):
        with pytest.raises(TypeError, match="SklearnClassifier"):
            verify(raw, keys[name])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"reference_models\[1\].*'fc2'"):
        calibrate(keys["uchida"], [_torch(build("mlp", input_shape=(1, 8, 8), n_classes=10)),
                                   _torch(GeluMLP())])  # fmt: skip


def test_the_robustness_table_reports_a_distilled_copy_of_another_architecture(
    keys: dict[str, WatermarkKey], digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_train[:200], digits_data.y_train[:200]
    table = robustness_table(
        digits_mlp,
        keys["uchida"],
        [Distill(epochs=1, architecture="cnn")],
        x,
        y,
        digits_data.x_test[:100],
        digits_data.y_test[:100],
    )
    none, distilled = table.rows
    assert none.note == "" and none.match_rate is not None  # the MLP is read
    # The copy is a CNN without the key's layer: read, and the watermark is not in it.
    assert distilled.detected is False and distilled.match_rate is None
    assert distilled.chance_probability is None and "'fc2'" in distilled.note
    assert "'fc2'" in table.to_text()
