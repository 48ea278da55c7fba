"""The cross-evaluation matrix of robust training (trained against A, attacked with B)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from advml.defences.training import FGSMTraining, StandardTraining
from advml.defences.training.cross_eval import (
    CrossEvaluation,
    cross_evaluate,
    default_attacks,
    plot_cross_evaluation,
)
from advml.evasion import FGSM, PGD
from advml.metrics import accuracy
from advml.models import TorchClassifier
from advml.models.architectures import build

EPS = 0.1


@pytest.fixture(scope="module")
def models(digits_data: Any) -> dict[str, TorchClassifier]:
    out = {}
    for name, defence in [
        ("standard", StandardTraining(epochs=8)),
        ("fgsm_training", FGSMTraining(eps=EPS, epochs=8)),
    ]:
        torch.manual_seed(0)
        net = build("mlp", input_shape=(1, 8, 8), n_classes=10, hidden=(128,))
        model = TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10)
        out[name] = defence.fit(
            model, digits_data.x_train, digits_data.y_train, show_progress=False
        ).model
    return out


@pytest.fixture(scope="module")
def matrix(models: dict[str, TorchClassifier], digits_data: Any) -> CrossEvaluation:
    attacks = {"fgsm": FGSM(eps=EPS), "pgd": PGD(eps=EPS, steps=10, seed=0)}
    x, y = digits_data.x_test[:200], digits_data.y_test[:200]
    return cross_evaluate(models, attacks, x, y, show_progress=False)


def test_matrix_cells_are_accuracies_under_each_attack(
    matrix: CrossEvaluation, models: dict[str, TorchClassifier], digits_data: Any
) -> None:
    x, y = digits_data.x_test[:200], digits_data.y_test[:200]
    assert matrix.models == ("standard", "fgsm_training")
    assert matrix.attacks == ("fgsm", "pgd")
    assert matrix.robust.shape == (2, 2) and matrix.clean.shape == (2,)
    assert matrix.n == 200
    for i, (name, model) in enumerate(models.items()):
        assert matrix.clean[i] == pytest.approx(accuracy(model, x, y))
        adv = PGD(eps=EPS, steps=10, seed=0).generate(model, x, y).x_adv
        assert matrix.accuracy_of(name, "pgd") == pytest.approx(accuracy(model, adv, y))
    assert (matrix.robust <= matrix.clean[:, None] + 1e-9).all()


def test_adversarial_training_wins_its_column(matrix: CrossEvaluation) -> None:
    # Measured: FGSM-trained about 0.8 under FGSM and 0.75 under PGD; standard about 0.55.
    for attack in matrix.attacks:
        assert matrix.accuracy_of("fgsm_training", attack) >= (
            matrix.accuracy_of("standard", attack) + 0.1
        )
    assert matrix.most_robust() == {"fgsm": "fgsm_training", "pgd": "fgsm_training"}
    assert np.allclose(matrix.worst_case(), matrix.robust.min(axis=1))


def test_plain_data_and_figure(matrix: CrossEvaluation) -> None:
    data = json.loads(json.dumps(matrix.to_dict()))
    assert data["models"] == ["standard", "fgsm_training"]
    assert data["robust"][1][1] == pytest.approx(matrix.robust[1, 1])
    assert data["attack_params"]["pgd"]["steps"] == 10
    fig = plot_cross_evaluation(matrix)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 2 * 3 and all(t.endswith("%") for t in texts)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_unknown_names_and_bad_inputs_are_explained(
    matrix: CrossEvaluation, models: dict[str, TorchClassifier], digits_data: Any
) -> None:
    with pytest.raises(ValueError, match="model must be one of"):
        matrix.accuracy_of("trades", "pgd")
    with pytest.raises(ValueError, match="attack must be 'clean' or one of"):
        matrix.accuracy_of("standard", "square")
    x, y = digits_data.x_test[:10], digits_data.y_test[:10]
    with pytest.raises(ValueError, match="models is empty"):
        cross_evaluate({}, {"fgsm": FGSM()}, x, y)
    with pytest.raises(TypeError, match=r"attacks\['x'\]"):
        cross_evaluate(models, {"x": StandardTraining()}, x, y)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="targeted"):
        cross_evaluate(models, {"t": PGD(targeted=True)}, x, y)
    with pytest.raises(ValueError, match="y"):
        cross_evaluate(models, {"fgsm": FGSM()}, x, y[:5])


def test_default_attacks_share_the_radius() -> None:
    attacks = default_attacks(eps=0.2, steps=7, max_queries=50)
    assert {"fgsm", "pgd-7"} <= set(attacks)
    for attack in attacks.values():
        assert attack.get_params()["eps"] == 0.2
    if "square" in attacks:
        assert attacks["square"].get_params()["max_queries"] == 50
    with pytest.raises(ValueError, match="eps"):
        default_attacks(eps=0)
