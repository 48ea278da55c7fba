"""Shadow models with per-class attack models (Shokri, Stronati, Song & Shmatikov,
"Membership Inference Attacks Against Machine Learning Models", IEEE S&P 2017)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership.base import (
    MembershipAttack,
    ShadowArchitecture,
    ShadowTraining,
    half_splits,
    log_probs,
)
from advml.validation import check_choice, check_number

__all__ = ["ShadowModels"]

AttackModel = Literal["gbdt", "logistic"]

# A class needs this many "in" and "out" examples for a model of its own; classes with
# fewer use the model trained on all classes.
_MIN_PER_CLASS = 10


@dataclass(frozen=True)
class _ShadowState:
    per_class: dict[int, Any]
    fallback: Any


@registry.register("membership", "shadow")
class ShadowModels(MembershipAttack):
    """``record -> target -> (prediction vector, label) -> attack model -> in/out``.

    ``n_shadow`` shadow models are trained like the target on random halves of the
    attacker's data (each record in half of them). Every shadow's prediction vectors on
    its own training half are labelled "in" and on the other half "out"; one binary
    attack model per class learns to tell them apart (Shokri et al. 2017, §V, Figs. 1-3).
    The score of a candidate is its class's attack model's probability of "in" on the
    target's prediction vector; the threshold is 0.5 (the attack model's own decision).

    Parameters
    ----------
    n_shadow : int
        Number of shadow models (>= 1); default 4.
    attack_model : {"gbdt", "logistic"}
        Logistic regression (default; it generalised best from shadows to targets in our
        tests) or gradient-boosted trees (scikit-learn's histogram GBDT) on
        the log-probability vector.
    shadow_architecture : {"same", "mlp", "cnn"}
        Network of the shadows: ``"same"`` (default) fresh copies of the target's own
        network (same architecture, every parameter re-initialised), or advml's
        reference MLP / CNN. Where no copy can be made (a model that is not a PyTorch
        network) ``"same"`` trains the reference MLP and warns.
    shadow_epochs : int
        Training epochs of each shadow (>= 1); default 30.
    shadow_lr : float
        Learning rate of the shadows (Adam); default 1e-3.
    shadow_batch_size : int
        Batch size of the shadows; default 64.
    seed : int
        Seeds the halves, each shadow's training and the attack models.
    """

    def __init__(
        self,
        *,
        n_shadow: int = 4,
        attack_model: AttackModel = "logistic",
        shadow_architecture: ShadowArchitecture = "same",
        shadow_epochs: int = 30,
        shadow_lr: float = 1e-3,
        shadow_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        check_number("n_shadow", n_shadow, low=1, integer=True)
        check_choice("attack_model", attack_model, ("gbdt", "logistic"))
        self.n_shadow = n_shadow
        self.attack_model = attack_model
        self._set_shadow_settings(
            shadow_architecture=shadow_architecture,
            shadow_epochs=shadow_epochs,
            shadow_lr=shadow_lr,
            shadow_batch_size=shadow_batch_size,
            seed=seed,
        )

    def _new_attack_model(self) -> Any:
        if self.attack_model == "gbdt":
            return HistGradientBoostingClassifier(max_iter=100, random_state=self.seed)
        return LogisticRegression(max_iter=2000)

    def _fit(
        self, model: Classifier, x: Tensor, y: Tensor, shadows: ShadowTraining
    ) -> tuple[_ShadowState, float]:
        # With one shadow, half_splits of two gives it a random half.
        masks = half_splits(x.shape[0], max(2, self.n_shadow), self.seed)[: self.n_shadow]
        shadow_models = shadows.train(x, y, masks, "shadow models")
        features = np.concatenate([log_probs(s, x).cpu().numpy() for s in shadow_models])
        labels = np.concatenate([np.tile(y.cpu().numpy(), 1)] * len(shadow_models))
        member = masks.reshape(-1)
        fallback = self._new_attack_model().fit(features, member)
        per_class: dict[int, Any] = {}
        for c in np.unique(labels):
            rows = labels == c
            if min(member[rows].sum(), (~member[rows]).sum()) >= _MIN_PER_CLASS:
                per_class[int(c)] = self._new_attack_model().fit(features[rows], member[rows])
        return _ShadowState(per_class=per_class, fallback=fallback), 0.5

    def _score(self, state: _ShadowState, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        features = log_probs(model, x).cpu().numpy()
        labels = y.cpu().numpy()
        scores = np.empty(x.shape[0])
        for c in np.unique(labels):
            rows = labels == c
            attack = state.per_class.get(int(c), state.fallback)
            scores[rows] = attack.predict_proba(features[rows])[:, 1]
        return scores
