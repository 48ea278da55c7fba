"""Extraction enables evasion: adversarial examples crafted on a stolen copy, sent to its victim."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.errors import QueryBudgetExceededError
from advml.evasion.base import EvasionAttack
from advml.metrics import attack_success_rate
from advml.models.base import Classifier
from advml.validation import check_in_bounds, check_labels

__all__ = ["TransferResult", "transfer_evasion"]


@dataclass(frozen=True)
class TransferResult:
    """How adversarial examples crafted on the stolen model fare against the victim."""

    attack: str
    n: int
    """Inputs attacked."""
    n_eligible: int
    """Inputs the victim classified correctly before the attack (the success base)."""
    success_on_stolen: float
    """Success rate on the stolen model itself (white-box), over the inputs it got right."""
    transfer_success: float
    """Fraction of the inputs the victim classified correctly that it now misclassifies."""
    victim_queries: int
    """Victim queries: its labels on the clean and the adversarial inputs (2 n)."""
    params: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "n": self.n,
            "n_eligible": self.n_eligible,
            "success_on_stolen": self.success_on_stolen,
            "transfer_success": self.transfer_success,
            "victim_queries": self.victim_queries,
            "params": dict(self.params),
        }


def transfer_evasion(
    stolen: Classifier,
    victim: Classifier,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor | None = None,
    *,
    attack: str | EvasionAttack = "pgd",
    settings: Mapping[str, Any] | None = None,
) -> TransferResult:
    """Craft adversarial examples on ``stolen`` (white-box) and count how many fool ``victim``.

    The attacker needs no gradient of the victim: the stolen copy, from
    :mod:`advml.extraction`, stands in for it (Papernot et al. 2017, §5, "transferability";
    Tramèr et al. 2016, §1). The victim is queried only for its labels on ``x`` and on the
    adversarial inputs.

    Parameters
    ----------
    stolen : Classifier
        The attacker's copy; it must offer what the attack needs (gradients for PGD).
    victim : Classifier
        The model the examples are sent to (labels suffice).
    x : array of shape (n, *victim.input_shape)
        Inputs to perturb, within the bounds. Not modified.
    y : array of shape (n,), optional
        True labels; default the victim's own labels on ``x`` (then every input is eligible).
    attack : str or EvasionAttack
        A registered evasion attack's name (default ``"pgd"``) or an attack object.
    settings : mapping, optional
        Settings of the attack when given by name, e.g. ``{"eps": 0.2, "steps": 40}``.

    Returns
    -------
    TransferResult

    Raises
    ------
    QueryBudgetExceededError
        When the victim's query budget cannot pay for the ``2 n`` answers; nothing is
        spent.
    """
    if not isinstance(stolen, Classifier) or not isinstance(victim, Classifier):
        raise TypeError("stolen and victim must be advml Classifiers")
    if isinstance(attack, str):
        evasion = registry.create("evasion", attack, **dict(settings or {}))
    else:
        if settings:
            raise ValueError("settings are for an attack given by name; set them on the object")
        evasion = attack
    if not isinstance(evasion, EvasionAttack):
        raise TypeError(f"attack must be an evasion attack, got {type(evasion).__name__}")
    xt = victim.as_tensor(x, name="x")
    check_in_bounds("x", xt, victim.bounds)
    left = getattr(victim, "queries_left", None)
    if left is not None and 2 * len(xt) > left:
        # Two answers per input (clean and adversarial) or the figure means nothing.
        raise QueryBudgetExceededError(
            f"transfer needs the victim's answers on {len(xt)} clean and {len(xt)} "
            f"adversarial inputs but its query budget has {left} left; nothing was asked"
        )
    before = victim.query_count
    with torch.no_grad(), victim.evaluating():
        clean = victim.predict_labels(xt).cpu().numpy()
    if y is None:
        y_true = clean
    else:
        y_true = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
        check_labels("y", y_true, victim.n_classes, len(clean))
        y_true = y_true.astype(np.int64)
    result = evasion.generate(stolen, xt.to(stolen.device), torch.as_tensor(y_true))
    x_adv = torch.as_tensor(result.x_adv).to(victim.device)
    with torch.no_grad(), victim.evaluating():
        adv = victim.predict_labels(x_adv).cpu().numpy()
    with torch.no_grad(), stolen.evaluating():
        stolen_clean = stolen.predict_labels(xt.to(stolen.device)).cpu().numpy()
    return TransferResult(
        attack=evasion.name,
        n=len(clean),
        n_eligible=int((clean == y_true).sum()),
        success_on_stolen=attack_success_rate(y_true, stolen_clean, result.y_adv),
        transfer_success=attack_success_rate(y_true, clean, adv),
        victim_queries=victim.query_count - before,
        params=evasion.get_params(),
    )
