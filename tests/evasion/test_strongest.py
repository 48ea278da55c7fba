"""``strongest``'s own claims: robust accuracy at most each member's, per sample the
smallest successful perturbation of any member, and queries that add up."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from advml import registry
from advml.errors import UnsupportedModelError
from advml.evasion import EvasionAttack, Strongest
from advml.models import CallableClassifier, TorchClassifier

MEMBERS = [("apgd", {"loss": "ce", "steps": 10}), ("pgd", {"steps": 10}), ("fgsm", {})]
EPS = 0.1


def member(name: str, settings: dict[str, Any]) -> EvasionAttack:
    schema = registry.schema("evasion", name)
    shared = {k: v for k, v in {"eps": EPS, "seed": 0}.items() if k in schema}
    attack = registry.create("evasion", name, **shared, **settings)
    assert isinstance(attack, EvasionAttack)
    return attack


@pytest.fixture
def runs(digits_mlp: TorchClassifier, digits_data: Any) -> Any:
    x, y = digits_data.x_test[:150], digits_data.y_test[:150]
    ensemble = Strongest(attacks=MEMBERS, eps=EPS).generate(digits_mlp, x, y)
    alone = [member(name, settings).generate(digits_mlp, x, y) for name, settings in MEMBERS]
    return x, y, ensemble, alone


def test_robust_accuracy_is_at_most_every_members(runs: Any) -> None:
    _, y, ensemble, alone = runs
    robust = (ensemble.y_adv == y).mean()
    for result in alone:
        assert robust <= (result.y_adv == y).mean()
    # It fools exactly the inputs some member fools.
    np.testing.assert_array_equal(ensemble.success, np.any([r.success for r in alone], axis=0))


def test_each_sample_gets_the_smallest_successful_member(runs: Any) -> None:
    _, _, ensemble, alone = runs
    sizes = np.stack([np.where(r.success, r.linf, np.inf) for r in alone])
    best = sizes.argmin(0)
    ok = ensemble.success
    np.testing.assert_allclose(ensemble.linf[ok], sizes.min(0)[ok], rtol=1e-5, atol=1e-6)
    for i in np.flatnonzero(ok):
        np.testing.assert_allclose(ensemble.x_adv[i], alone[best[i]].x_adv[i], rtol=1e-5, atol=1e-6)
    # Inputs no member fools keep the first member's output.
    np.testing.assert_allclose(ensemble.x_adv[~ok], alone[0].x_adv[~ok], rtol=1e-5, atol=1e-6)


def test_queries_add_up_over_the_members(runs: Any) -> None:
    _, _, ensemble, alone = runs
    # Each member's own queries, plus the ensemble's check of each member's output.
    np.testing.assert_array_equal(
        ensemble.queries, np.sum([r.queries for r in alone], axis=0) + len(alone)
    )


def test_default_members_and_what_the_model_must_allow(digits_mlp: TorchClassifier) -> None:
    names = [m[0] for m in Strongest().attacks]
    assert names == ["apgd", "apgd", "square"]  # APGD-CE, APGD-DLR, Square
    scores_only = CallableClassifier(
        digits_mlp.predict_proba, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0)
    )
    x = np.zeros((2, 1, 8, 8), dtype=np.float32)
    with pytest.raises(UnsupportedModelError, match="apgd"):
        Strongest().generate(scores_only, x)
    # Members the model allows: a scores-only ensemble works.
    Strongest(attacks=[("square", {"max_queries": 20})]).generate(scores_only, x)


def test_members_must_share_one_ball() -> None:
    with pytest.raises(ValueError, match="eps"):
        Strongest(attacks=[("apgd", {"eps": 0.2})])
    with pytest.raises(ValueError, match="no eps"):
        Strongest(attacks=[("deepfool", {})])
