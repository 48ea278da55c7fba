"""EvasionAttack's promises that hold whatever a subclass's ``_run`` returns."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from advml.evasion import AdversarialResult, EvasionAttack, project
from advml.models import TorchClassifier


class Rogue(EvasionAttack):
    """Returns ``x + jump`` whatever the ball: ``generate`` must still project and clip.

    Parameters
    ----------
    eps : float or None
        Radius, or None for an unbounded attack.
    norm : {"inf", "2"}
        Norm of the ball.
    jump : float
        How far ``_run`` moves every feature.
    """

    def __init__(self, *, eps: float | None = 0.1, norm: str = "inf", jump: float = 10.0) -> None:
        self.eps = eps
        self.norm = norm
        self.jump = jump
        self.targeted = False
        self.batch_size = None

    def _run(
        self, model: Any, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return x + self.jump, torch.ones(x.shape[0], dtype=torch.long)


def test_project_linf() -> None:
    x = torch.zeros(1, 3)
    out = project(torch.tensor([[0.5, -0.05, -2.0]]), x, 0.1, "inf")
    torch.testing.assert_close(out, torch.tensor([[0.1, -0.05, -0.1]]))


def test_project_l2() -> None:
    x = torch.ones(2, 2)
    out = project(x + torch.tensor([[3.0, 4.0], [0.03, 0.04]]), x, 0.5, "2")
    # The first is scaled back onto the sphere of radius 0.5; the second is inside already.
    torch.testing.assert_close(out - x, torch.tensor([[0.3, 0.4], [0.03, 0.04]]))


@pytest.mark.parametrize(("norm", "eps"), [("inf", 0.1), ("2", 0.5)])
def test_generate_always_projects_and_clips(
    tiny_linear: TorchClassifier, norm: str, eps: float
) -> None:
    x = np.array([[0.4, 0.6], [0.95, 0.2]], dtype=np.float32)
    for jump in (10.0, -10.0, 0.3):
        result = Rogue(eps=eps, norm=norm, jump=jump).generate(tiny_linear, x)
        d = (result.x_adv - x).reshape(2, -1)
        size = np.abs(d).max(1) if norm == "inf" else np.linalg.norm(d, axis=1)
        assert size.max() <= eps + 1e-6
        assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    # Linf, jump +10: every feature moves +eps, except where the bound stops it first.
    out = Rogue(eps=0.1, jump=10.0).generate(tiny_linear, x).x_adv
    np.testing.assert_allclose(out, [[0.5, 0.7], [1.0, 0.3]], atol=1e-6)


def test_unbounded_attack_is_only_clipped(tiny_linear: TorchClassifier) -> None:
    x = np.array([[0.4, 0.6]], dtype=np.float32)
    out = Rogue(eps=None, jump=-0.5).generate(tiny_linear, x).x_adv
    np.testing.assert_allclose(out, [[0.0, 0.1]], atol=1e-6)


def test_summary_of_a_total_failure_has_nan_medians() -> None:
    result = AdversarialResult(
        x_adv=np.zeros((2, 1)),
        y=np.zeros(2, int),
        y_adv=np.zeros(2, int),
        success=np.zeros(2, bool),
        l0=np.zeros(2, int),
        l2=np.zeros(2),
        linf=np.zeros(2),
        queries=np.array([3, 5]),
        seconds=0.5,
        attack="rogue",
        targeted=False,
    )
    summary = result.summary()
    assert summary["success_rate"] == 0.0 and summary["n"] == 2
    assert all(math.isnan(summary[k]) for k in ("median_l0", "median_l2", "median_linf"))
    assert summary["mean_queries"] == 4.0


def test_unsupported_reason_is_the_check_generate_raises(digits_mlp: TorchClassifier) -> None:
    from advml import registry
    from advml.errors import UnsupportedModelError
    from advml.models.access import restrict_access

    labels = restrict_access(digits_mlp, "labels")
    scores = restrict_access(digits_mlp, "scores")
    pgd, square = registry.get("evasion", "pgd"), registry.get("evasion", "square")
    assert pgd.unsupported_reason(digits_mlp) is None
    assert pgd.unsupported_reason(scores) == (
        "PGD needs the model's gradients; this model does not give them"
    )
    assert square.unsupported_reason(scores) is None
    reason = square.unsupported_reason(labels)
    assert reason is not None and "scores" in reason and "labels only" in reason
    x = np.zeros((2, 64), dtype=np.float32)
    with pytest.raises(UnsupportedModelError, match=r"^PGD needs the model's gradients.*allows"):
        pgd(eps=0.1).generate(scores, x)
    assert scores.query_count == 0
