"""The independent judge of reconstructions: a classifier the target never saw.

Fredrikson et al. (CCS 2015, §5.3) had people recognise reconstructed faces; the judge
stands in for them. It must be independent of the target, or it would share the
target's quirks and "recognise" adversarial noise: here it is another model family (a
multinomial logistic regression on the pixels, not a network) trained on other records
(e.g. the test split when the target was trained on the training split).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from advml.models.sklearn import SklearnClassifier
from advml.validation import check_labels, check_number

__all__ = ["independent_judge"]


def independent_judge(
    x: np.ndarray,
    y: np.ndarray,
    *,
    bounds: tuple[float, float],
    input_shape: tuple[int, ...],
    C: float = 1.0,
    seed: int = 0,
) -> SklearnClassifier:
    """A logistic-regression judge trained on ``(x, y)``.

    Parameters
    ----------
    x : array of shape (n, *input_shape)
        Records disjoint from the target's training data.
    y : array of shape (n,)
        Their labels; every class should appear.
    bounds : (float, float)
        Input bounds of the target.
    input_shape : tuple of int
        Shape of one input.
    C : float
        Inverse L2 regularisation strength (> 0); default 1.0.
    seed : int
        Seeds the solver.

    Returns
    -------
    SklearnClassifier
        White-box, with scores; ``predict`` gives the judge's label.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y)
    check_number("C", C, low=0, low_inclusive=False)
    if xa.shape[1:] != tuple(input_shape):
        raise ValueError(f"x must hold inputs of shape {tuple(input_shape)}, got {xa.shape[1:]}")
    check_labels("y", ya, int(ya.max()) + 1 if ya.size else 2, xa.shape[0])
    if np.unique(ya).size < 2:
        raise ValueError("y must contain at least two classes to train a judge")
    estimator = LogisticRegression(C=C, max_iter=1000, random_state=seed)
    estimator.fit(xa.reshape(len(xa), -1), ya)
    return SklearnClassifier(estimator, bounds=bounds, input_shape=tuple(input_shape))
