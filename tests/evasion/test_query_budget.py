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
    # The same 7 inputs in the same chunks: the same float32 sums, so the same signs of
    # the gradient (another chunking could flip the sign of a near-zero component).
    full = FGSM(eps=0.2, batch_size=4).generate(digits_mlp, x[:7], y[:7])
    np.testing.assert_allclose(
        np.asarray(partial.x_adv), np.asarray(full.x_adv), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(partial.success, full.success)


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


# -- wrappers: a budget on the model inside is the wrapper's too --------------------------
def _wrappers() -> list[tuple[str, Callable[[Any], Any], int]]:
    from advml import registry
    from advml.defences.preprocess import DefendedClassifier, FeatureSqueezing
    from advml.models.access import restrict_access
    from advml.web.limits import LimitedModel

    # (id, wrap, inner queries per wrapper query)
    return [
        (
            "hardened",
            lambda m: registry.create("output_defence", "rounding", decimals=2).wrap(m),
            1,
        ),
        ("defended", lambda m: DefendedClassifier(m, FeatureSqueezing(strength="low")), 1),
        (
            "defended-eot2",
            lambda m: DefendedClassifier(m, FeatureSqueezing(strength="low"), eot_samples=2),
            2,
        ),
        ("limited", lambda m: LimitedModel(m, lambda: None), 1),
        ("access-scores", lambda m: restrict_access(m, "scores"), 1),
    ]


@pytest.mark.parametrize("case", range(len(_wrappers())), ids=[w[0] for w in _wrappers()])
def test_a_wrapper_spends_the_budget_of_the_paid_api_inside_it_to_the_last_query(
    case: int, digits_mlp: TorchClassifier, inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    _, wrap, per_query = _wrappers()[case]
    x, y = inputs
    api, paid = _api(digits_mlp, "probs", 497)
    model = wrap(paid)
    assert model.queries_left == 497 // per_query
    with pytest.raises(QueryBudgetExceededError) as info:
        Square(eps=0.1, max_queries=1000).generate(model, x, y)
    # Every query the API can still answer whole was spent, none past its budget.
    assert api.asked == paid.query_count == 497 // per_query * per_query
    assert model.queries_left == 0
    partial = info.value.partial_result
    assert partial is not None and partial.n == len(x)
    # Its successes are real on the defended model (the same wrapper, without a budget).
    pred = wrap(digits_mlp).predict(np.asarray(partial.x_adv))
    np.testing.assert_array_equal(pred, partial.y_adv)


def test_a_wrapper_has_the_smaller_of_its_own_budget_and_the_inner_one(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    from advml.defences.preprocess import DefendedClassifier, FeatureSqueezing

    api, paid = _api(digits_mlp, "probs", 100)
    model = DefendedClassifier(paid, FeatureSqueezing(strength="low"), query_budget=30)
    x = digits_data.x_test
    assert model.queries_left == 30
    model.predict(x[:10])
    assert (model.queries_left, paid.queries_left) == (20, 90)
    paid.predict(x[:80])  # the API is used elsewhere too
    assert model.queries_left == 10
    # A call the inner budget cannot cover is refused before the API answers any of it.
    with pytest.raises(QueryBudgetExceededError, match="wrapped model pays for 10"):
        model.predict(x[:11])
    assert api.asked == 90 and model.query_count == 10


def test_strongest_keeps_the_members_that_ran_when_the_budget_runs_out(
    digits_mlp: TorchClassifier, inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    from advml.evasion import Strongest

    x, y = inputs
    members = [("square", {"max_queries": 40}), ("square", {"max_queries": 1000, "p_init": 0.3})]
    api, model = _api(digits_mlp, "probs", 700)
    with pytest.raises(QueryBudgetExceededError) as info:
        Strongest(attacks=members, eps=0.1, batch_size=12).generate(model, x, y)
    partial = info.value.partial_result
    assert api.asked == 700 and partial is not None and partial.n == len(x)
    # Each member's queries and check, and generate's final check: the whole budget.
    assert int(partial.queries.sum()) + partial.n == 700
    np.testing.assert_array_equal(digits_mlp.predict(np.asarray(partial.x_adv)), partial.y_adv)


def test_strongest_keeps_a_finished_member_when_one_that_does_not_shrink_runs_out(
    digits_mlp: TorchClassifier, inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    from advml.evasion import Strongest

    x, y = inputs
    alone = Square(eps=0.1, max_queries=40, batch_size=12).generate(digits_mlp, x, y)
    # Square with its check, then APGD, whose gradient steps do not shrink: the budget
    # pays for Square, generate's final check and too little for APGD's 20 steps.
    budget = int(alone.queries.sum()) + 2 * len(x) + 30
    model = TorchClassifier(
        digits_mlp.module,
        input_shape=(1, 8, 8),
        n_classes=10,
        bounds=(0.0, 1.0),
        query_budget=budget,
    )
    members = [("square", {"max_queries": 40}), ("apgd", {"steps": 20})]
    with pytest.raises(QueryBudgetExceededError) as info:
        Strongest(attacks=members, eps=0.1, batch_size=12).generate(model, x, y)
    partial = info.value.partial_result
    assert partial is not None and partial.n == len(x)
    np.testing.assert_array_equal(np.asarray(partial.x_adv), np.asarray(alone.x_adv))
    np.testing.assert_array_equal(partial.success, alone.success)


def test_a_callable_wrapping_a_budgeted_model_shares_its_budget(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    api, paid = _api(digits_mlp, "probs", 30)

    def front(x: np.ndarray) -> np.ndarray:
        return np.asarray(paid.predict_proba(x))

    shape = {"input_shape": (1, 8, 8), "n_classes": 10, "bounds": (0.0, 1.0)}
    model = CallableClassifier(front, wraps=paid, **shape)  # type: ignore[arg-type]
    model.predict(digits_data.x_test[:25])
    assert model.queries_left == 5
    with pytest.raises(QueryBudgetExceededError, match="pays for 5 more"):
        model.predict(digits_data.x_test[:6])
    assert api.asked == 25
    with pytest.raises(TypeError, match="wraps must be an advml Classifier"):
        CallableClassifier(front, wraps=front, **shape)  # type: ignore[arg-type]
