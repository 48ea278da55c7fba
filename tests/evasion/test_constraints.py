"""Feature constraints: every attack that takes them (found in the registry) keeps
immutable features, only switches binary features on, and keeps per-feature ranges, and
still fools the model through the features it may change; the rules' own checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from advml import registry
from advml.evasion import EvasionAttack, FeatureConstraints

# Class 1 wins when w.x + b > 0. The attack would most like to move features 0 and 1
# (immutable here), to switch features 2 and 3 off where they are on (they may only go
# on), and to push feature 4 beyond its range.
W = [3.0, -3.0, -2.0, -2.0, 1.5, 1.0, -1.0, 0.5]
RULES = FeatureConstraints(immutable=[0, 1], switch_on=[2, 3], ranges={4: (0.2, 0.6)})
# The tree attacks need a tree model; tests/trees/test_attacks.py checks their constraints.
TREE_ATTACKS = {"tree_exact", "tree_fast"}
CONSTRAINED = [
    n
    for n in registry.available("evasion")
    if "constraints" in registry.schema("evasion", n) and n not in TREE_ATTACKS
]
SETTINGS: dict[str, dict[str, Any]] = {
    "fgsm": {"eps": 0.4},
    "bim": {"eps": 0.4, "steps": 20},
    "pgd": {"eps": 0.4, "steps": 20},
    "greedy_pixel": {"max_changes": 6},
    "hopskipjump": {"max_queries": 300},
    "square": {"eps": 0.4, "max_queries": 300},
    "transfer": {"eps": 0.4, "epochs": 20},
    "apgd": {"eps": 0.4, "steps": 20},
    "cw_l2": {},
    "cw_linf": {"eps": 0.4, "steps": 20},
    "deepfool": {},
    "jsma": {"gamma": 1.0},
}
# Share of the inputs that can be fooled at all within the rules (computed exactly below)
# that each attack must fool. Measured: all of them for the white-box attacks, Square
# and greedy search; HopSkipJump 0.70 (its labels-only walk stops short of some);
# transfer 0.56 (a substitute trained on 256 labels).
MINIMUM = {"hopskipjump": 0.6, "transfer": 0.4}
# JSMA with a positive theta only raises features: judged against what raising can fool.
INCREASE_ONLY = {"jsma"}


@pytest.fixture
def tabular(make_linear: Callable[..., Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    model = make_linear([[0.0] * len(W), W], [0.0, -0.6])
    rng = np.random.default_rng(0)
    x = rng.uniform(0.3, 0.5, size=(64, len(W)))
    x[:, 2:4] = rng.integers(0, 2, size=(64, 2))  # binary, some on, some off
    x[:, 4] = rng.uniform(0.2, 0.6, size=64)  # inside its range
    x = x.astype(np.float32)
    return model, x, model.predict(x)


def test_every_attack_with_a_constraints_setting_is_covered() -> None:
    assert set(CONSTRAINED) == set(SETTINGS), "add settings for the new attack here"


@pytest.mark.parametrize("name", CONSTRAINED)
def test_constraints_hold_and_the_attack_still_works(name: str, tabular: Any) -> None:
    model, x, y = tabular
    free = registry.create("evasion", name, **SETTINGS[name])
    bound = registry.create("evasion", name, constraints=RULES, **SETTINGS[name])
    assert isinstance(free, EvasionAttack) and isinstance(bound, EvasionAttack)
    unconstrained = free.generate(model, x, y)
    result = bound.generate(model, x, y)
    xa = np.asarray(result.x_adv)
    assert RULES.satisfied(x, xa, model.bounds).all()
    np.testing.assert_array_equal(xa[:, :2], x[:, :2])
    on_or_same = (xa[:, 2:4] == x[:, 2:4]) | (xa[:, 2:4] == 1.0)
    assert on_or_same.all()
    assert (xa[:, 4] >= 0.2 - 1e-6).all() and (xa[:, 4] <= 0.6 + 1e-6).all()
    # The rules matter: the free attack breaks them.
    assert not RULES.satisfied(x, np.asarray(unconstrained.x_adv), model.bounds).all()
    # Nothing is fooled that the rules make unfoolable, and what can be fooled is.
    possible = foolable(x, y, SETTINGS[name].get("eps"), increase_only=name in INCREASE_ONLY)
    assert not (result.success & ~possible).any()
    assert result.success.sum() >= MINIMUM.get(name, 1.0) * possible.sum(), (
        result.success.sum(),
        possible.sum(),
    )


def foolable(
    x: np.ndarray, y: np.ndarray, eps: float | None, *, increase_only: bool = False
) -> np.ndarray:
    """Exactly which inputs some point allowed by RULES (and the L∞ ball) flips.

    The model is linear: moving each free feature to the end of its allowed interval that
    pushes ``w.x`` towards the other class is optimal; a switch-on feature may only jump
    to 1, and only when the ball reaches it.
    """
    w = np.asarray(W)
    push = np.where(y == 0, 1.0, -1.0)[:, None] * w[None, :]
    low, high = np.zeros_like(x), np.ones_like(x)
    low[:, :2] = high[:, :2] = x[:, :2]
    low[:, 2:4] = x[:, 2:4]
    low[:, 4], high[:, 4] = 0.2, 0.6
    if eps is not None:
        low, high = np.maximum(low, x - eps), np.minimum(high, x + eps)
    if increase_only:
        low = np.maximum(low, x)
    best = np.where(push > 0, high, low)
    best[:, 2:4] = np.where(best[:, 2:4] >= 1 - 1e-9, 1.0, x[:, 2:4])
    return (best @ w - 0.6 > 0) != (y == 1)


def test_satisfied_flags_each_kind_of_violation() -> None:
    x = np.array([[0.5, 0.5, 0.0, 1.0, 0.4]])
    ok = x.copy()
    ok[0, 2] = 1.0  # switched on
    cases = {"immutable": (0, 0.6), "switched off": (3, 0.0), "half on": (2, 0.5),
             "out of range": (4, 0.7)}  # fmt: skip
    rules = FeatureConstraints(immutable=[0], switch_on=[2, 3], ranges={4: (0.2, 0.6)})
    assert rules.satisfied(x, ok, (0.0, 1.0)).all()
    for feature, value in cases.values():
        bad = ok.copy()
        bad[0, feature] = value
        assert not rules.satisfied(x, bad, (0.0, 1.0)).any()


def test_plain_data_round_trip_and_errors_name_the_problem() -> None:
    rules = FeatureConstraints(immutable=[3, 1], switch_on=[5], ranges={2: (0.1, 0.9)})
    assert rules.immutable == (1, 3)
    data = rules.to_dict()
    assert FeatureConstraints.from_dict({**data, "ranges": {"2": [0.1, 0.9]}}) == rules
    with pytest.raises(ValueError, match="both immutable and switch_on"):
        FeatureConstraints(immutable=[1], switch_on=[1])
    with pytest.raises(ValueError, match="low <= high"):
        FeatureConstraints(ranges={0: (0.8, 0.2)})
    with pytest.raises(ValueError, match="unknown key"):
        FeatureConstraints.from_dict({"frozen": [0]})
    with pytest.raises(ValueError, match="constraints names feature 9"):
        FeatureConstraints(immutable=[9]).check_features(8)
