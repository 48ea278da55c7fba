"""Copycat honours what the API answers, counts its queries exactly and steals a real model.

The victim is the suite's digits MLP, seen through an output defence or a label-only
CallableClassifier; the attacker's pool is the digits training split, fidelity is
measured on the test split.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

import advml.extraction.copycat as copycat_module
from advml.defences.output import LabelsOnly, Rounding, TopK
from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.extraction import Copycat
from advml.models import Classifier, TorchClassifier

SMALL: dict[str, Any] = {"queries": 200, "rounds": 2, "epochs": 5, "min_steps": 40}


@pytest.fixture
def victim(digits_mlp: TorchClassifier) -> TorchClassifier:
    model = copy.deepcopy(digits_mlp)
    model.reset_queries()
    return model


@pytest.fixture
def answers_seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Tensor, Tensor]]:
    """Every (kind asked for, inputs, answer) the attack received from the victim."""
    seen: list[tuple[str, Tensor, Tensor]] = []
    real = copycat_module.query

    def spy(victim: Classifier, x: Tensor, outputs: Any, batch: int = 256) -> Tensor:
        answer = real(victim, x, outputs, batch)
        seen.append((str(outputs), x.clone(), answer))
        return answer

    monkeypatch.setattr(copycat_module, "query", spy)
    return seen


def test_labels_only_api_trains_the_copy_on_labels(
    victim: TorchClassifier, digits_data: Any, answers_seen: list[tuple[str, Tensor, Tensor]]
) -> None:
    api = LabelsOnly().wrap(victim)
    result = Copycat(**SMALL).extract(api, digits_data.x_train, x_eval=digits_data.x_test)
    assert result.outputs == "labels"
    assert [kind for kind, _, _ in answers_seen] == ["labels", "labels"]
    labels = torch.cat([a for _, _, a in answers_seen])
    assert labels.ndim == 1 and labels.dtype == torch.long and len(labels) == 200
    x = torch.cat([x for _, x, _ in answers_seen])
    assert torch.equal(labels, victim.predict(x))
    with pytest.raises(UnsupportedModelError, match="outputs='scores'"):
        Copycat(**SMALL, outputs="scores").extract(api, digits_data.x_train)


def test_hardened_scores_are_what_the_copy_learns_from(
    victim: TorchClassifier, digits_data: Any, answers_seen: list[tuple[str, Tensor, Tensor]]
) -> None:
    Copycat(**SMALL).extract(TopK(k=1).wrap(victim), digits_data.x_train)
    assert {kind for kind, _, _ in answers_seen} == {"scores"}
    x = torch.cat([x for _, x, _ in answers_seen])
    top1 = torch.cat([a for _, _, a in answers_seen])
    # Top-1 shows one class per answer: the targets are the victim's labels, one-hot up
    # to the 1e-12 floor of what is hidden.
    assert torch.equal(top1.argmax(1), victim.predict(x))
    assert bool((top1.max(1).values >= 1 - 1e-6).all())
    answers_seen.clear()
    Copycat(**SMALL).extract(Rounding(decimals=1).wrap(victim), digits_data.x_train)
    x = torch.cat([x for _, x, _ in answers_seen])
    rounded = torch.cat([a for _, _, a in answers_seen])
    # The probabilities rounded to one decimal, renormalised: what the API revealed.
    shown = torch.round(victim.predict_proba(x).double(), decimals=1)
    torch.testing.assert_close(
        rounded.double(), shown / shown.sum(1, keepdim=True), atol=1e-6, rtol=0
    )


def test_query_counts_are_exact_and_a_budget_holds(
    victim: TorchClassifier, digits_data: Any
) -> None:
    attack = Copycat(**SMALL)
    result = attack.extract(victim, digits_data.x_train, x_eval=digits_data.x_test, n_random=50)
    assert [p.queries for p in result.curve] == attack.checkpoints() == [100, 200]
    assert result.queries == 200
    assert result.eval_queries == len(digits_data.x_test) + 50
    assert victim.query_count == result.queries + result.eval_queries
    # A budget of exactly what the attack and its evaluation ask is enough; one less is not.
    exact = result.queries + result.eval_queries
    for budget, fails in ((exact, False), (exact - 1, True)):
        api = TopK(k=3).wrap(victim, query_budget=budget)
        if fails:
            with pytest.raises(QueryBudgetExceededError):
                attack.extract(api, digits_data.x_train, x_eval=digits_data.x_test, n_random=50)
        else:
            done = attack.extract(api, digits_data.x_train, x_eval=digits_data.x_test, n_random=50)
            assert done.queries == 200 and api.query_count == budget


def test_small_images_are_not_shifted(victim: TorchClassifier, digits_data: Any) -> None:
    # On 8x8 digits a two-pixel shift would change the digit, so augmentation is off there:
    # with and without it the copy is the same network.
    x = torch.as_tensor(digits_data.x_test)
    stolen = [
        Copycat(**SMALL, augment=augment).extract(victim, digits_data.x_train).stolen
        for augment in (True, False)
    ]
    with torch.no_grad():
        torch.testing.assert_close(stolen[0].logits(x), stolen[1].logits(x))


@pytest.mark.parametrize("outputs", ["labels", "scores"])
def test_steals_the_digits_mlp_from_400_queries(
    victim: TorchClassifier, digits_data: Any, outputs: str
) -> None:
    result = Copycat(queries=400, rounds=3, epochs=10, min_steps=60, outputs=outputs).extract(
        victim, digits_data.x_train, x_eval=digits_data.x_test, y_eval=digits_data.y_test
    )
    # Measured: 0.97-0.99 with either output; a copy that learned nothing agrees on ~0.1.
    assert result.fidelity >= 0.9
    assert result.curve[-1].fidelity > result.curve[0].fidelity
    assert result.details["architecture"] == "mlp"
    agree = result.stolen.predict(digits_data.x_test) == victim.predict(digits_data.x_test)
    assert result.fidelity == pytest.approx(float(np.mean(agree)))
