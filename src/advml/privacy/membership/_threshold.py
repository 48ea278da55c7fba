"""What the single-score threshold attacks share: a per-record score and its calibration.

A threshold attack computes one number per record from the target's answer (its loss,
confidence, entropy, or label robustness) and calls the record a member when the number
passes a threshold. The threshold is chosen on data the attacker has, never on the
candidates being judged:

- ``calibration="shadow"``: train a shadow model like the target on a random half of the
  attacker's data; the threshold with the best balanced accuracy between that shadow's
  members (its half) and non-members (the other half) is used (Shokri et al. 2017's
  shadow idea applied to one score, as in Song & Mittal 2021, §3.2).
- ``calibration="population"``: the attacker's data are taken as non-members of the
  target; the threshold flags ``population_fpr`` of them (Ye et al. 2022's "population"
  attack). No training, ``len(x)`` target queries.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import Tensor

from advml.models.base import Classifier
from advml.privacy.membership.base import (
    MembershipAttack,
    ShadowArchitecture,
    ShadowTraining,
    best_threshold,
    half_splits,
)
from advml.validation import check_choice, check_number

__all__ = ["Calibration", "ThresholdAttack"]

Calibration = Literal["shadow", "population"]


class ThresholdAttack(MembershipAttack):
    """A membership attack that thresholds one score per record (higher = member).

    The constructor holds the settings every threshold attack shares (calibration and
    the calibration shadow's recipe); a subclass implements :meth:`record_scores` and adds
    an ``__init__`` only for settings of its own.
    """

    calibration: Calibration
    population_fpr: float

    def __init__(
        self,
        *,
        calibration: Calibration = "shadow",
        population_fpr: float = 0.05,
        shadow_architecture: ShadowArchitecture = "same",
        shadow_epochs: int = 30,
        shadow_lr: float = 1e-3,
        shadow_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        check_choice("calibration", calibration, ("shadow", "population"))
        check_number("population_fpr", population_fpr, low=0, high=1, low_inclusive=False)
        self.calibration = calibration
        self.population_fpr = population_fpr
        self._set_shadow_settings(
            shadow_architecture=shadow_architecture,
            shadow_epochs=shadow_epochs,
            shadow_lr=shadow_lr,
            shadow_batch_size=shadow_batch_size,
            seed=seed,
        )

    def record_scores(self, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        """One score per record from ``model``'s answers (higher = member)."""
        raise NotImplementedError

    def _fit(
        self, model: Classifier, x: Tensor, y: Tensor, shadows: ShadowTraining
    ) -> tuple[None, float]:
        if self.calibration == "population":
            scores = self.record_scores(model, x, y)
            return None, float(np.quantile(scores, 1.0 - self.population_fpr, method="higher"))
        masks = half_splits(x.shape[0], 2, self.seed)[:1]
        (shadow,) = shadows.train(x, y, masks, "shadow")
        inside = np.flatnonzero(masks[0])
        outside = np.flatnonzero(~masks[0])
        s_in = self.record_scores(shadow, x[inside], y[inside])
        s_out = self.record_scores(shadow, x[outside], y[outside])
        return None, best_threshold(s_in, s_out)

    def _score(self, state: None, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        return self.record_scores(model, x, y)


COMMON_PARAMETERS = """calibration : {"shadow", "population"}
        How the threshold is chosen on the attacker's data: from one shadow model's
        members and non-members (default), or as the ``population_fpr`` quantile of
        the target's scores on the attacker's data, taken as non-members.
    population_fpr : float
        With ``calibration="population"``: the fraction of the attacker's records the
        threshold flags (its false-positive rate on them); default 0.05.
    shadow_architecture : {"same", "mlp", "cnn"}
        Network of the calibration shadow: ``"same"`` (default) a fresh copy of the
        target's own network (same architecture, every parameter re-initialised, trained
        with the settings below), or advml's reference MLP / CNN. Where no copy can be
        made (a model that is not a PyTorch network) ``"same"`` trains the reference MLP
        and warns.
    shadow_epochs : int
        Training epochs of the shadow model (>= 1); default 30.
    shadow_lr : float
        Its learning rate (Adam); default 1e-3.
    shadow_batch_size : int
        Its batch size; default 64.
    seed : int
        Seeds the shadow's half of the data and its training (>= 0)."""


def threshold_doc(summary: str, extra_parameters: str = "") -> str:
    """The class docstring of a threshold attack: its summary, then every setting."""
    extra = f"{extra_parameters.rstrip()}\n    " if extra_parameters else ""
    return f"""{summary.rstrip()}

    Parameters
    ----------
    {extra}{COMMON_PARAMETERS}
    """
