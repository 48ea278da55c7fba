"""The likelihood-ratio attack, LiRA (Carlini, Chien, Nasr, Song, Terzis & Tramèr,
"Membership Inference Attacks From First Principles", IEEE S&P 2022)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.stats import norm
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership.base import (
    MembershipAttack,
    ShadowArchitecture,
    ShadowTraining,
    best_threshold,
    half_splits,
    logit_margin,
    model_logits,
)
from advml.validation import check_bool, check_choice, check_number

__all__ = ["LiRA", "logit_confidence"]

# Smallest standard deviation of a Gaussian fit: keeps a record whose shadows agree to the
# last digit from giving an infinite ratio.
_MIN_STD = 1e-4


def logit_confidence(model: Classifier, x: Tensor, y: Tensor) -> Tensor:
    """``phi = log(p_y / (1 - p_y))``, the logit-scaled confidence in the true label
    (Carlini et al. 2022, §IV-B, eq. 4), computed in float64 on the logits as
    ``z_y - log sum_{j != y} exp(z_j)`` (:func:`~advml.privacy.membership.base.logit_margin`):
    no probability is formed, so confident records keep distinct values. Shape ``(n,)``."""
    return logit_margin(model_logits(model, x), y)


@dataclass(frozen=True)
class _LiRAState:
    shadows: list[Classifier | None]
    """The shadow models, where this process trained them (``None`` for shadows trained
    by process / Ray workers or read from a cache: only their ``phi`` came back)."""
    masks: np.ndarray  # (n_shadow, n_pool): record j was in shadow i's training data
    phi: np.ndarray  # (n_shadow, n_pool): shadow i's phi on pool record j
    index: dict[bytes, int]  # pool record (input bytes + label) -> column
    global_std: float
    mean_gap: float  # mean over pool records of mu_in - mu_out


@registry.register("membership", "lira")
class LiRA(MembershipAttack):
    """Per-record Gaussian likelihood ratio over shadow models (Carlini et al. 2022).

    Shadow models are trained like the target on random halves of the attacker's data
    pool, each record in exactly half of them (§IV-A). For a candidate ``(x, y)`` the
    target's logit-scaled confidence ``phi`` is compared with Gaussians fitted to the
    shadows' ``phi`` on the same record: those trained with it ("in") and without it
    ("out"). Online (Algorithm 1): score ``log N(phi; mu_in, s_in^2) - log N(phi; mu_out,
    s_out^2)``. Offline (§VI-C): the one-sided test against the "out" Gaussian, score
    ``-log P[Z > phi]``, ``Z ~ N(mu_out, s_out^2)``. With few shadows, a fixed (global)
    variance is more reliable (§VI-B). The candidates should be in the pool for the online
    attack; for records outside it every shadow is "out" and ``mu_in`` is estimated as
    ``mu_out`` plus the pool's mean in-out gap (with a warning).

    The decision threshold is chosen on the attacker's data by using one shadow as a
    stand-in target and the others as its shadows. One target query per candidate.

    Parameters
    ----------
    n_shadow : int
        Number of shadow models (>= 2); 16 reaches most of the attack's power on small
        models, the paper uses 64-256.
    mode : {"online", "offline"}
        Use the "in" and "out" shadows, or only the "out" ones.
    fixed_variance : bool, optional
        One variance for all records (estimated over the pool) instead of one per record.
        Default: fixed below 64 shadows, where Carlini et al. find the per-record
        variances too noisy (§VI-B); measured here with 16 shadows on the overfit digits
        MLP (``benchmarks/privacy_membership.py``, 3 seeds), TPR at 1% FPR 0.086 against
        0.061 per record, at 0.1% FPR 0.037 against 0.010, for an AUC of 0.631 against
        0.642.
    shadow_architecture : {"same", "mlp", "cnn"}
        Network of the shadows: ``"same"`` (default) fresh copies of the target's own
        network (same architecture, every parameter re-initialised), or advml's
        reference MLP / CNN. Where no copy can be made (a model that is not a PyTorch
        network) ``"same"`` trains the reference MLP and warns.
    shadow_epochs : int
        Training epochs of each shadow (>= 1); train the shadows as the target was trained.
    shadow_lr : float
        Learning rate of the shadows (Adam).
    shadow_batch_size : int
        Batch size of the shadows.
    seed : int
        Seeds the halves and each shadow's training (shadow ``i`` is an independent task
        with its own seed derived from this one).

    Examples
    --------
    >>> from advml.privacy.membership import LiRA
    >>> fitted = LiRA(n_shadow=16).fit(target, x_pool, y_pool)  # doctest: +SKIP
    >>> result = fitted.infer(target, x_candidates, y_candidates)  # doctest: +SKIP
    >>> result.metrics(is_member).tpr_at_0_1_fpr  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        n_shadow: int = 16,
        mode: Literal["online", "offline"] = "online",
        fixed_variance: bool | None = None,
        shadow_architecture: ShadowArchitecture = "same",
        shadow_epochs: int = 30,
        shadow_lr: float = 1e-3,
        shadow_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        check_number("n_shadow", n_shadow, low=2, integer=True)
        check_choice("mode", mode, ("online", "offline"))
        if fixed_variance is not None:
            check_bool("fixed_variance", fixed_variance)
        self.n_shadow = n_shadow
        self.mode = mode
        self.fixed_variance = fixed_variance
        self._set_shadow_settings(
            shadow_architecture=shadow_architecture,
            shadow_epochs=shadow_epochs,
            shadow_lr=shadow_lr,
            shadow_batch_size=shadow_batch_size,
            seed=seed,
        )

    @property
    def uses_fixed_variance(self) -> bool:
        """Whether one variance serves all records (``fixed_variance``, or its default)."""
        return self.n_shadow < 64 if self.fixed_variance is None else bool(self.fixed_variance)

    # -- fit ---------------------------------------------------------------------------
    def _fit(
        self, model: Classifier, x: Tensor, y: Tensor, shadows: ShadowTraining
    ) -> tuple[_LiRAState, float]:
        masks = half_splits(x.shape[0], self.n_shadow, self.seed)
        phi, shadow_models = shadows.phi(x, y, masks, "LiRA shadow models")
        global_std, mean_gap = _pool_statistics(phi, masks)
        state = _LiRAState(
            shadows=shadow_models,
            masks=masks,
            phi=phi,
            index={k: j for j, k in enumerate(_keys(x, y))},
            global_std=global_std,
            mean_gap=mean_gap,
        )
        # Shadow 0 plays the target, the others its shadows: a threshold from data the
        # attacker has.
        rest = slice(1, None)
        pseudo = self._lira_scores(phi[0], phi[rest], masks[rest], global_std, mean_gap)
        return state, best_threshold(pseudo[masks[0]], pseudo[~masks[0]])

    # -- infer -------------------------------------------------------------------------
    def _score(self, state: _LiRAState, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        target_phi = logit_confidence(model, x, y).cpu().numpy()
        phi, masks = pool_columns(
            state.phi,
            state.masks,
            state.index,
            x,
            y,
            lambda known: shadow_phi(state.shadows, x, y, known, "LiRA"),
            warn=(
                "LiRA was fitted on; every shadow is 'out' for them and their 'in' mean is "
                "estimated"
            )
            if self.mode == "online"
            else None,
        )
        return self._lira_scores(target_phi, phi, masks, state.global_std, state.mean_gap)

    def _lira_scores(
        self,
        target_phi: np.ndarray,
        phi: np.ndarray,
        masks: np.ndarray,
        global_std: float,
        mean_gap: float,
    ) -> np.ndarray:
        mu_out, sd_out = _masked_stats(phi, ~masks)
        if self.uses_fixed_variance:
            sd_out = np.full_like(sd_out, global_std)
        sd_out = np.where(np.isfinite(sd_out), sd_out, global_std).clip(min=_MIN_STD)
        # A record with no "out" shadow falls back on its "in" mean minus the pool's gap.
        mu_in, sd_in = _masked_stats(phi, masks)
        mu_out = np.where(np.isfinite(mu_out), mu_out, mu_in - mean_gap)
        if self.mode == "offline":
            # Carlini et al. §VI-C: one-sided test against the "out" distribution.
            return -norm.logsf(target_phi, loc=mu_out, scale=sd_out)
        if self.uses_fixed_variance:
            sd_in = np.full_like(sd_in, global_std)
        mu_in = np.where(np.isfinite(mu_in), mu_in, mu_out + mean_gap)
        sd_in = np.where(np.isfinite(sd_in), sd_in, global_std).clip(min=_MIN_STD)
        # Algorithm 1, line 13: the ratio of the two Gaussian densities (in logs).
        return norm.logpdf(target_phi, loc=mu_in, scale=sd_in) - norm.logpdf(
            target_phi, loc=mu_out, scale=sd_out
        )


def shadow_phi(
    shadows: list[Classifier | None], x: Tensor, y: Tensor, known: np.ndarray, attack: str
) -> np.ndarray:
    """Each shadow's ``phi`` on the candidates outside the pool (``~known``).

    Raises
    ------
    ValueError
        When some shadows were trained elsewhere (process / Ray workers, the cache) and
        so are not here to be asked.
    """
    if any(s is None for s in shadows):
        raise ValueError(
            f"{int((~known).sum())} candidates are not in the pool {attack} was fitted on, "
            "and its shadow models were trained by workers (or read from the cache), which "
            "send back only their answers on the pool. Fit on a pool that contains the "
            "candidates, or fit with the local executor and no cache"
        )
    unknown = torch.as_tensor(np.flatnonzero(~known), device=x.device)
    return np.stack(
        [
            logit_confidence(s, x[unknown], y[unknown]).cpu().numpy()
            for s in shadows
            if s is not None
        ]
    )


def _masked_stats(phi: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column mean and std of the entries ``mask`` selects (NaN where none / one)."""
    count = mask.sum(0)
    total = np.where(mask, phi, 0.0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        sq = np.where(mask, (phi - mean) ** 2, 0.0).sum(0)
        std = np.where(count > 1, np.sqrt(sq / np.maximum(count - 1, 1)), np.nan)
    return mean, std


def _pool_statistics(phi: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """Pooled within-group standard deviation and mean in-out gap over the pool."""
    mu_in, _ = _masked_stats(phi, masks)
    mu_out, _ = _masked_stats(phi, ~masks)
    centred = np.where(masks, phi - mu_in, phi - mu_out)
    ok = np.isfinite(centred)
    std = float(np.sqrt(np.mean(centred[ok] ** 2))) if ok.any() else 1.0
    gap = mu_in - mu_out
    gap_ok = np.isfinite(gap)
    return max(std, _MIN_STD), float(gap[gap_ok].mean()) if gap_ok.any() else 0.0


def pool_columns(
    stored: np.ndarray,
    stored_masks: np.ndarray,
    index: dict[bytes, int],
    x: Tensor,
    y: Tensor,
    fill: Callable[[np.ndarray], np.ndarray],
    *,
    warn: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fitted pool's per-reference-model rows (``stored``, shape ``(models, pool)``)
    and in/out masks at the candidates ``(x, y)``, found by content. A candidate not in
    the pool is 'out' for every model and gets ``fill(known)`` (its values computed by
    the kept models); with ``warn`` (an online attack: "<attack> was fitted on; ...") it
    is said in a UserWarning, since the online attack then loses its 'in' side."""
    cols = np.array([index.get(k, -1) for k in _keys(x, y)])
    known = cols >= 0
    values = np.empty((stored.shape[0], x.shape[0]))
    masks = np.zeros_like(values, dtype=bool)
    values[:, known] = stored[:, cols[known]]
    masks[:, known] = stored_masks[:, cols[known]]
    if not known.all():
        if warn is not None:
            warnings.warn(
                f"{int((~known).sum())} of {x.shape[0]} candidates are not in the pool {warn}. "
                "Fit on a pool that contains the candidates for the online attack",
                UserWarning,
                stacklevel=5,
            )
        values[:, ~known] = fill(known)
    return values, masks


def _keys(x: Tensor, y: Tensor) -> list[bytes]:
    xs = x.detach().cpu().numpy().astype(np.float32).reshape(x.shape[0], -1)
    ys = y.detach().cpu().numpy().astype(np.int64)
    return [xs[i].tobytes() + ys[i].tobytes() for i in range(xs.shape[0])]
