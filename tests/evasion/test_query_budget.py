"""A model's query budget is paid work: every query attack spends it to the last query,
and when it runs out the error carries what was found.

A counting API (a function that counts the inputs it is asked about) behind
``CallableClassifier(query_budget=...)``: the count must equal the budget exactly, and the
partial result's successes must be adversarial on the model itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from advml.errors import QueryBudgetExceededError
from advml.evasion import FGSM, GreedyPixel, HopSkipJump, Square
from advml.evasion.base import EvasionAttack
from advml.models import CallableClassifier, TorchClassifier


class CountingAPI:
    """The digits MLP as a paid prediction API: counts every input it is asked about."""

    def __init__(self, model: TorchClassifier, returns: str) -> None:
        self.model = model
        self.returns = returns
        self.asked = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.asked += len(x)
        if self.returns == "labels":
            return self.model.predict(x)
        return self.model.predict_proba(x)


def _api(model: TorchClassifier, returns: str, budget: int) -> tuple[CountingAPI, Any]:
    api = CountingAPI(model, returns)
    wrapped = CallableClassifier(
        api,
        input_shape=(1, 8, 8),
        n_classes=10,
        bounds=(0.0, 1.0),
        returns=returns,  # type: ignore[arg-type]
        query_budget=budget,
    )
    return api, wrapped


@pytest.fixture
def inputs(digits_mlp: TorchClassifier, digits_data: Any) -> tuple[np.ndarray, np.ndarray]:
    keep = digits_mlp.predict(digits_data.x_test) == digits_data.y_test
    return digits_data.x_test[keep][:12], digits_data.y_test[keep][:12]


ATTACKS: list[tuple[str, Callable[[], EvasionAttack], str, int]] = [
    # (id, attack, what the API returns, budget): each budget is far below what the
    # attack's settings would spend on 12 inputs, and not a multiple of its batch sizes.
    ("hopskipjump", lambda: HopSkipJump(max_queries=1000), "labels", 300),
    ("hopskipjump-tiny", lambda: HopSkipJump(max_queries=1000), "labels", 7),
    ("greedy_pixel", lambda: GreedyPixel(max_changes=10), "probs", 200),
    ("square", lambda: Square(eps=0.1, max_queries=1000), "probs", 497),
]


@pytest.mark.parametrize(
    ("name", "make", "returns", "budget"), ATTACKS, ids=[a[0] for a in ATTACKS]
)
def test_the_budget_is_spent_to_the_last_query_and_what_it_bought_is_kept(
    name: str,
    make: Callable[[], EvasionAttack],
    returns: str,
    budget: int,
    digits_mlp: TorchClassifier,
    inputs: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = inputs
    attack = make()
    api, model = _api(digits_mlp, returns, budget)
    with pytest.raises(QueryBudgetExceededError, match=f"query_budget={budget}") as info:
        attack.generate(model, x, y)
    assert api.asked == budget == model.query_count
    partial = info.value.partial_result
    assert partial is not None and 1 <= partial.n <= len(x)
    # The attack's queries and generate's final check of each input make up the budget.
    assert int(partial.queries.sum()) + partial.n == budget
    np.testing.assert_array_equal(partial.y, y[: partial.n])
    x_adv = np.asarray(partial.x_adv)
    assert x_adv.shape == x[: partial.n].shape
    # Successes are real: the model itself mislabels them (checked outside the budget).
    pred = digits_mlp.predict(x_adv)
    np.testing.assert_array_equal(pred, partial.y_adv)
    np.testing.assert_array_equal(partial.success, pred != partial.y)
    assert "partial_result" in str(info.value)


def test_the_chunk_loop_keeps_finished_chunks_of_an_attack_that_does_not_shrink(
    digits_mlp: TorchClassifier, inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    # A white-box model with a budget: FGSM spends one query per input and generate one
    # more for the final check, so 15 queries pay for 7 inputs in chunks of at most 4.
    x, y = inputs
    model = TorchClassifier(
        digits_mlp.module, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0), query_budget=15
    )
    with pytest.raises(QueryBudgetExceededError) as info:
        FGSM(eps=0.2, batch_size=4).generate(model, x, y)
    partial = info.value.partial_result
    assert partial.n == 7 and model.query_count == 14  # the 15th pays for nothing whole
    full = FGSM(eps=0.2, batch_size=4).generate(digits_mlp, x, y)
    np.testing.assert_allclose(np.asarray(partial.x_adv), np.asarray(full.x_adv)[:7], atol=1e-6)
    np.testing.assert_array_equal(partial.success, full.success[:7])


def test_without_a_budget_nothing_changes(
    digits_mlp: TorchClassifier, inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = inputs
    _, limited = _api(digits_mlp, "labels", 10**9)
    _, unlimited = _api(digits_mlp, "labels", 10**9)
    unlimited.query_budget = None
    a = HopSkipJump(max_queries=200).generate(limited, x, y)
    b = HopSkipJump(max_queries=200).generate(unlimited, x, y)
    np.testing.assert_array_equal(np.asarray(a.x_adv), np.asarray(b.x_adv))
    np.testing.assert_array_equal(a.queries, 200)


def test_the_audit_keeps_a_partial_step_and_skips_what_nothing_is_left_for(
    digits_mlp: TorchClassifier,
) -> None:
    from advml.audit import AuditConfig, run_audit
    from advml.data import load_dataset

    api, model = _api(digits_mlp, "probs", 3000)
    config = AuditConfig(
        dataset="digits", attacks=("square",), eps=(0.05, 0.1), n_samples=40, sections=("evasion",)
    )
    report = run_audit(config, model=model, dataset=load_dataset("digits")).report
    assert api.asked == 3000
    section = report["sections"]["evasion"]
    (point,) = section["attacks"][0]["points"]
    assert point["eps"] == 0.05 and point["n_attacked"] == 40
    assert "query budget ran out" in point["budget_ran_out"]
    (skipped,) = section["skipped"]
    assert skipped["attack"] == "square" and skipped["reason"].startswith("eps=0.1: query budget")
