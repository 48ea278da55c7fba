"""A model behind input-cleansing preprocessors, itself a Classifier.

How an attacker's gradients see the pipeline is explicit (``backward``):

``"pipeline"`` (the standard, non-adaptive view)
    Plain autograd through every preprocessor, as a library attack run against the
    defended model computes it. For quantisation it is zero almost everywhere, for the
    median it reaches one pixel per window, for JPEG (no autograd at all) it is zero:
    the attack is starved of gradient and the defence *looks* strong.
``"bpda"`` (the adaptive view, Athalye, Carlini & Wagner, ICML 2018)
    Differentiable preprocessors keep their exact gradient; every non-differentiable one
    is replaced on the backward pass by the identity (Backward Pass Differentiable
    Approximation, §4.1: the straight-through estimator ``x + (g(x) - x).detach()``).
    With ``eot_samples > 1`` randomised preprocessors are averaged over that many draws
    (Expectation over Transformation, §4.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from advml.defences.preprocess.base import Preprocessor
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier, check_classifier, wrapped_queries_left
from advml.models.wrapper import WrappingClassifier
from advml.runtime.seeding import make_generator
from advml.validation import check_choice, check_number

__all__ = ["DEFAULT_EOT_SAMPLES", "Backward", "DefendedClassifier"]

Backward = Literal["pipeline", "bpda"]
DEFAULT_EOT_SAMPLES = 10
"""Draws per query of the adaptive view of a randomised defence (Athalye et al. use tens)."""


class DefendedClassifier(WrappingClassifier):
    """Preprocessors followed by a model: ``f(p_k(...p_1(x)))``, as an advml Classifier.

    Every attack and metric applies to it unchanged. The defended model has the input
    shape, classes and bounds of ``model``; queries are counted here and by ``model``.

    Parameters
    ----------
    model : Classifier
        The model behind the defence (any advml adapter).
    preprocessors : Preprocessor or sequence of Preprocessor
        Applied in order to every input; fitted ones (the autoencoder) must be fitted.
    backward : {"pipeline", "bpda"}
        How gradients pass through the preprocessors: plain autograd (the standard,
        non-adaptive attack's view, masked for non-differentiable preprocessors) or BPDA
        (the adaptive view: identity for non-differentiable preprocessors).
    eot_samples : int
        Draws of the preprocessors' randomness per query (>= 1). With more than one the
        scores are the mean log-probabilities over the draws, whose gradient for the
        true class is the average of the per-draw gradients (EOT). Use 1 to measure the
        deployed defence, which draws once per query.
    seed : int, optional
        Seed of the randomness of randomised preprocessors; advanced by every query, so
        a randomised defence answers the same input differently on later queries.
    query_budget : int, optional
        Maximum number of inputs this defended model may evaluate.

    Examples
    --------
    >>> from advml.defences.preprocess import DefendedClassifier, FeatureSqueezing
    >>> defended = DefendedClassifier(model, FeatureSqueezing(strength="high"))  # doctest: +SKIP
    >>> adaptive = defended.adaptive()  # BPDA through the squeezing  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Classifier,
        preprocessors: Preprocessor | Sequence[Preprocessor],
        *,
        backward: Backward = "pipeline",
        eot_samples: int = 1,
        seed: int | None = 0,
        query_budget: int | None = None,
    ) -> None:
        check_classifier("model", model)
        preps = [preprocessors] if isinstance(preprocessors, Preprocessor) else preprocessors
        try:
            preps = list(preps)
        except TypeError:
            raise TypeError(
                f"preprocessors must be a Preprocessor or a sequence of them, got "
                f"{type(preprocessors).__name__}"
            ) from None
        if not preps:
            raise ValueError("preprocessors is empty: give at least one Preprocessor")
        for i, p in enumerate(preps):
            if not isinstance(p, Preprocessor):
                raise TypeError(
                    f"preprocessors[{i}] must be a Preprocessor, got {type(p).__name__}"
                )
            p.check_input_shape(tuple(model.input_shape))
        check_choice("backward", backward, ("pipeline", "bpda"))
        check_number("eot_samples", eot_samples, low=1, integer=True)
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        super().__init__(model, query_budget=query_budget)
        self.preprocessors: tuple[Preprocessor, ...] = tuple(preps)
        self.backward = backward
        self.eot_samples = int(eot_samples)
        self.seed = seed
        self.has_gradients = bool(model.has_gradients)
        self.has_scores = bool(model.has_scores)
        self._generator = make_generator(seed, model.device)

    def _inner_queries_left(self) -> int | None:
        # A score query draws the preprocessors eot_samples times, each draw one query of
        # the model behind; a label query draws once.
        return wrapped_queries_left(self.model, self.eot_samples if self.has_scores else 1)

    @property
    def randomised(self) -> bool:
        """Whether any preprocessor draws randomness."""
        return any(p.randomised for p in self.preprocessors)

    @property
    def differentiable(self) -> bool:
        """Whether every preprocessor passes exact, useful gradients."""
        return all(p.differentiable for p in self.preprocessors)

    def adaptive(self, eot_samples: int | None = None) -> DefendedClassifier:
        """The same defence as an adaptive attacker sees it: BPDA, and EOT if randomised.

        ``eot_samples`` defaults to :data:`DEFAULT_EOT_SAMPLES` for a randomised defence
        and 1 otherwise.
        """
        if eot_samples is None:
            eot_samples = DEFAULT_EOT_SAMPLES if self.randomised else 1
        return DefendedClassifier(
            self.model,
            self.preprocessors,
            backward="bpda",
            eot_samples=eot_samples,
            seed=self.seed,
        )

    def standard(self) -> DefendedClassifier:
        """The defence as deployed and as a non-adaptive attack sees it (plain autograd)."""
        return DefendedClassifier(self.model, self.preprocessors, seed=self.seed)

    # -- the pipeline --------------------------------------------------------------------
    def preprocess(self, x: Tensor) -> Tensor:
        """Run ``x`` through the preprocessors with this view's gradient rule (one draw)."""
        z = x
        for p in self.preprocessors:
            z = self._through(p, z)
        return z

    def _through(self, p: Preprocessor, x: Tensor) -> Tensor:
        if not x.requires_grad:
            return p.apply(x, self.bounds, self._generator)
        if self.backward == "bpda" and not p.differentiable:
            # Straight-through: the forward value of p, the identity's gradient.
            out = p.apply(x.detach(), self.bounds, self._generator)
            return x + (out - x).detach()
        out = p.apply(x, self.bounds, self._generator)
        if not out.requires_grad:
            # No autograd at all (JPEG): what plain differentiation gets is zero.
            out = out + 0.0 * x
        return out

    def _logits(self, x: Tensor) -> Tensor:
        if self.eot_samples == 1:
            return self.model.logits(self.preprocess(x))
        draws = [
            torch.log_softmax(self.model.logits(self.preprocess(x)), dim=1)
            for _ in range(self.eot_samples)
        ]
        return torch.stack(draws).mean(0)

    def _labels(self, x: Tensor) -> Tensor:
        return self.model.predict_labels(self.preprocess(x))

    def logits(self, x: Tensor) -> Tensor:
        if not self.has_scores:
            raise UnsupportedModelError(
                f"the model behind this defence ({type(self.model).__name__}) answers labels "
                f"only, so the defended model has no scores"
            )
        return super().logits(x)

    def __repr__(self) -> str:
        preps = ", ".join(repr(p) for p in self.preprocessors)
        return (
            f"DefendedClassifier({type(self.model).__name__}, [{preps}], "
            f"backward={self.backward!r}, eot_samples={self.eot_samples})"
        )
