"""Backdoor metrics: how often a trigger sends inputs to the attacker's label."""

from __future__ import annotations

import numpy as np

__all__ = ["backdoor_success_rate"]


def backdoor_success_rate(y_true: np.ndarray, y_backdoor: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of inputs with ``y_true != y_backdoor`` predicted as ``y_backdoor``.

    Inputs whose true label already is the backdoor label are left out: the trigger
    changes nothing for them (Gu et al., BadNets, 2017, report success this way).
    Returns ``nan`` when no input qualifies.
    """
    y_true, y_backdoor, y_pred = np.asarray(y_true), np.asarray(y_backdoor), np.asarray(y_pred)
    eligible = y_true != y_backdoor
    return (
        float((y_pred[eligible] == y_backdoor[eligible]).mean()) if eligible.any() else float("nan")
    )
