"""Output hardening: what a prediction API reveals of its model's scores.

An :class:`OutputDefence` holds settings only; :meth:`OutputDefence.wrap` puts it around a
model and returns a :class:`HardenedClassifier`, itself a Classifier, which answers every
query with the hardened output. Attacks then run against the hardened model exactly as
against any black-box API.

The hardened output of one input is a vector ``q`` of *revealed* probabilities: the
model's probabilities ``p`` transformed by the defence, with ``0`` for what is hidden
(the classes outside the top-k, probabilities rounded down to zero). ``q`` need not sum
to 1. As for :class:`~advml.models.CallableClassifier`, the logits are
``log(max(q, 1e-12))``, so ``predict_proba`` gives ``q`` renormalised and a hidden class
has a log-probability at or below ``log(1e-12)``; :meth:`HardenedClassifier.revealed`
gives ``q`` itself, as the API would show it.

Every defence here keeps the model's label (the top class) unless its settings say
otherwise, so the cost in utility is in the scores, not in accuracy.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from advml.base import Component
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier, check_classifier, same_kind_as
from advml.models.wrapper import WrappingClassifier
from advml.runtime.seeding import make_generator

__all__ = ["PROBA_FLOOR", "HardenedClassifier", "OutputDefence"]

PROBA_FLOOR = 1e-12
"""Revealed probabilities below this are hidden; their log is ``log(PROBA_FLOOR)``."""


class OutputDefence(Component):
    """Base of output-hardening defences: ``wrap(model) -> HardenedClassifier``.

    Subclasses implement :meth:`_harden` (probabilities in, revealed probabilities out)
    or set ``reveals_scores = False`` (labels only).
    """

    family: ClassVar[str] = "output_defence"
    reveals_scores: ClassVar[bool] = True
    """False when the hardened model answers labels only."""

    def wrap(self, model: Classifier, *, query_budget: int | None = None) -> HardenedClassifier:
        """The model behind this defence, as a black-box Classifier.

        Parameters
        ----------
        model : Classifier
            The model to protect; it must reveal scores unless the defence reveals labels
            only. Not modified; its query count grows with every query of the wrapper.
        query_budget : int, optional
            Maximum number of inputs the hardened API answers; ``None`` means unlimited.

        Returns
        -------
        HardenedClassifier
        """
        check_classifier("model", model)
        if self.reveals_scores and not model.has_scores:
            raise UnsupportedModelError(
                f"{type(self).__name__} transforms scores, but {type(model).__name__} answers "
                f"labels only; there is nothing left to harden"
            )
        return HardenedClassifier(model, self, query_budget=query_budget)

    def _harden(self, p: Tensor, generator: torch.Generator) -> Tensor:
        """Revealed probabilities ``(n, k)`` for probabilities ``p`` (float64)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for reports: what the API reveals."""
        raise NotImplementedError

    def keeps_label(self) -> bool:
        """The hardened output's top class is the model's (ties broken in its favour)."""
        return True


class HardenedClassifier(WrappingClassifier):
    """A model behind an output defence: a black-box Classifier (no gradients).

    Built by :meth:`OutputDefence.wrap`. Each input queried here is one query of the
    hardened model and one of the model inside. Randomised defences (noisy scores) draw
    fresh randomness for every query from a generator seeded by the defence's ``seed``.

    Attributes
    ----------
    model : Classifier
        The protected model.
    defence : OutputDefence
        The defence applied to its outputs.
    """

    has_gradients = False

    def __init__(
        self, model: Classifier, defence: OutputDefence, *, query_budget: int | None = None
    ) -> None:
        super().__init__(model, query_budget=query_budget)
        self.defence = defence
        self.has_scores = defence.reveals_scores
        self._generator = make_generator(getattr(defence, "seed", 0), model.device)

    def describe(self) -> str:
        """One line for reports."""
        return f"{type(self.model).__name__} behind {self.defence.describe()}"

    def _revealed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            logits = self.model.logits(x).double()
        p = torch.softmax(logits, dim=1)
        return self.defence._harden(p, self._generator), logits.argmax(dim=1)

    def _logits(self, x: Tensor) -> Tensor:
        q, label = self._revealed(x)
        out = torch.log(q.clamp_min(PROBA_FLOOR)).float()
        if self.defence.keeps_label():
            # Rounding can tie the top class with another; the API still answers with
            # the model's label, so break the tie in its favour by one float step.
            rows = torch.arange(out.shape[0], device=out.device)
            top = out.max(dim=1).values
            tied = (out[rows, label] >= top) & (out.argmax(dim=1) != label)
            if bool(tied.any()):
                out[rows[tied], label[tied]] = torch.nextafter(
                    top[tied], torch.full_like(top[tied], float("inf"))
                )
        return out

    def _labels(self, x: Tensor) -> Tensor:
        return self.model.predict_labels(x)

    def revealed(self, x: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """The outputs exactly as the API shows them, ``(n, n_classes)``; counted queries.

        Revealed probabilities (0 where hidden, rows need not sum to 1); for a label-only
        API, one-hot rows of the labels. Numpy in, numpy out.
        """
        t = self.as_tensor(x)
        self._check_budget(t.shape[0])
        parts = []
        with torch.no_grad(), self.evaluating():
            for start in range(0, t.shape[0], self.batch_size):
                xb = t[start : start + self.batch_size]
                self._count(xb.shape[0])
                if self.has_scores:
                    parts.append(self._revealed(xb)[0].float())
                else:
                    labels = self._labels(xb)
                    parts.append(torch.nn.functional.one_hot(labels, self.n_classes).float())
        return same_kind_as(torch.cat(parts), x)

    def __repr__(self) -> str:
        return f"HardenedClassifier({self.model!r}, {self.defence!r})"
