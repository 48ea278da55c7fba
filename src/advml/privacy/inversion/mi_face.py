"""MI-Face: reconstruct a class's representative input by climbing its confidence
(Fredrikson, Jha & Ristenpart, "Model Inversion Attacks that Exploit Confidence
Information and Basic Countermeasures", CCS 2015, §5, Algorithm 1)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.imaging import median_filter
from advml.models.base import Classifier
from advml.privacy.inversion.base import InversionAttack, InversionResult, target_classes
from advml.runtime.seeding import make_generator
from advml.validation import check_choice, check_number

__all__ = ["MIFace", "total_variation"]

Gradient = Literal["auto", "white-box", "zeroth-order"]
Init = Literal["low", "middle", "uniform"]


@registry.register("inversion", "mi_face")
class MIFace(InversionAttack):
    """Gradient descent on ``1 - p_c(x)`` plus image priors, from the model's scores.

    The cost of Fredrikson et al. 2015 (Algorithm 1, ``c(x) = 1 - f_label(x) +
    AuxTerm(x)``) with two priors as the auxiliary term: total variation (smooth images)
    and an L2 pull towards the starting image; every ``denoise_every`` steps a 3x3 median
    filter (:func:`advml.imaging.median_filter`, edges padded by reflection) cleans the
    image (their ``Process`` step). The input stays within the model's
    bounds. With the model's gradients (white-box) the cost's gradient is exact; with
    scores only it is estimated from queries by antithetic Gaussian finite differences
    (zeroth-order, ``2 * n_directions`` counted queries per step and class). Several
    classes are reconstructed together, independently.

    Parameters
    ----------
    steps : int
        Descent steps (>= 1); default 200 (zeroth-order needs about as many).
    step_size : float
        Adam learning rate on the input, in units of the bounds' range; default 0.05.
    tv_weight : float
        Weight of the total-variation prior (>= 0); default 0.02.
    l2_weight : float
        Weight of the L2 pull towards the starting image (>= 0); default 0.005.
    denoise_every : int
        Median-filter the image every this many steps (images only); 0 never. Default 0.
    gradient : {"auto", "white-box", "zeroth-order"}
        How to get the gradient; ``"auto"`` uses the model's gradients when it has them.
    n_directions : int
        Zeroth-order: random directions per step (>= 1); default 20.
    fd_sigma : float
        Zeroth-order: finite-difference radius in units of the bounds' range; default 0.01.
    init : {"low", "middle", "uniform"}
        Start from the lower bound everywhere (Fredrikson et al.'s zero image), the
        middle of the bounds, or uniform noise (seeded).
    seed : int
        Seeds the random start and the zeroth-order directions.

    Examples
    --------
    >>> from advml.privacy.inversion import MIFace
    >>> result = MIFace(steps=200).invert(model, range(10))  # doctest: +SKIP
    >>> result.images.shape, result.confidence.mean()  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        steps: int = 200,
        step_size: float = 0.05,
        tv_weight: float = 0.02,
        l2_weight: float = 0.005,
        denoise_every: int = 0,
        gradient: Gradient = "auto",
        n_directions: int = 20,
        fd_sigma: float = 0.01,
        init: Init = "low",
        seed: int = 0,
    ) -> None:
        check_number("steps", steps, low=1, integer=True)
        check_number("step_size", step_size, low=0, low_inclusive=False)
        check_number("tv_weight", tv_weight, low=0)
        check_number("l2_weight", l2_weight, low=0)
        check_number("denoise_every", denoise_every, low=0, integer=True)
        check_choice("gradient", gradient, ("auto", "white-box", "zeroth-order"))
        check_number("n_directions", n_directions, low=1, integer=True)
        check_number("fd_sigma", fd_sigma, low=0, low_inclusive=False)
        check_choice("init", init, ("low", "middle", "uniform"))
        check_number("seed", seed, low=0, integer=True)
        self.steps = steps
        self.step_size = step_size
        self.tv_weight = tv_weight
        self.l2_weight = l2_weight
        self.denoise_every = denoise_every
        self.gradient = gradient
        self.n_directions = n_directions
        self.fd_sigma = fd_sigma
        self.init = init
        self.seed = seed

    def invert(
        self, model: Classifier, target_class: int | Sequence[int] | np.ndarray
    ) -> InversionResult:
        """Reconstruct an input of each class in ``target_class``.

        Parameters
        ----------
        model : Classifier
            The target; needs scores (a label-only model is refused).
        target_class : int or sequence of int
            The class(es) to reconstruct.

        Returns
        -------
        InversionResult
            One image per class, the model's confidence in it, the queries spent.

        Raises
        ------
        UnsupportedModelError
            If the model answers labels only, or ``gradient="white-box"`` and the model
            has no gradients.
        QueryBudgetExceededError
            When the model's ``query_budget`` cannot pay for every step: the steps it
            pays for are taken (keeping the final check's queries) and the error's
            ``partial_result`` is the result of the reconstructions so far.
        """
        self._check_model(model)
        classes = target_classes(model, target_class)
        mode = self.gradient
        if mode == "auto":
            mode = "white-box" if model.has_gradients else "zeroth-order"
        if mode == "white-box" and not model.has_gradients:
            raise UnsupportedModelError(
                "MIFace with gradient='white-box' needs the model's gradients; this model "
                "gives scores only. Use gradient='zeroth-order' (or 'auto')"
            )
        low, high = model.bounds
        span = high - low
        gen = make_generator(self.seed, model.device)
        k = classes.size
        shape = (k, *model.input_shape)
        if self.init == "low":
            x0 = torch.full(shape, low, device=model.device)
        elif self.init == "middle":
            x0 = torch.full(shape, (low + high) / 2, device=model.device)
        else:
            x0 = low + span * torch.rand(shape, generator=gen, device=model.device)
        y = torch.as_tensor(classes, device=model.device)
        before = model.query_count
        start = time.perf_counter()
        x = x0.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([x], lr=self.step_size * span)
        is_image = len(model.input_shape) == 3
        # Queries of one step (a gradient, or 2 * n_directions antithetic probes per
        # class) and of the final confidence check: a budget pays for whole steps only.
        per_step = k if mode == "white-box" else 2 * self.n_directions * k
        left = getattr(model, "queries_left", None)
        if left is not None and left < per_step + k:
            raise QueryBudgetExceededError(
                f"MIFace needs at least {per_step + k} queries (one step and the confidence "
                f"of {k} reconstructions) but the model's query budget has {left} left "
                f"(query_budget={getattr(model, 'query_budget', None)}); nothing was asked"
            )
        taken = self.steps
        with model.evaluating():
            for step in range(1, self.steps + 1):
                left = getattr(model, "queries_left", None)
                if left is not None and left < per_step + k:
                    taken = step - 1
                    break
                if mode == "white-box":
                    with torch.enable_grad():
                        model_cost = self._model_cost(model, x, y)
                        (g_model,) = torch.autograd.grad(model_cost.sum(), x)
                else:
                    g_model = self._estimated_gradient(model, x.detach(), y, gen, span)
                with torch.enable_grad():
                    prior = self._prior(x, x0, span, is_image)
                    (g_prior,) = torch.autograd.grad(prior.sum(), x)
                optimiser.zero_grad(set_to_none=True)
                x.grad = g_model + g_prior
                optimiser.step()
                with torch.no_grad():
                    if is_image and self.denoise_every and step % self.denoise_every == 0:
                        x.copy_(median_filter(x, 3))
                    x.clamp_(low, high)
            final = x.detach()
            with torch.no_grad():
                p = torch.softmax(model.logits(final), dim=1).gather(1, y[:, None])[:, 0]
                cost = (1 - p) + self._prior(final, x0, span, is_image)
        result = InversionResult(
            images=final.cpu().numpy().astype(np.float32),
            classes=classes,
            confidence=p.double().cpu().numpy(),
            cost=cost.double().cpu().numpy(),
            queries=model.query_count - before,
            gradient=mode,
            seconds=time.perf_counter() - start,
            attack=self.name,
            params=self.get_params(),
        )
        if taken < self.steps:
            raise QueryBudgetExceededError(
                f"the model's query budget ran out after {taken} of MIFace's {self.steps} "
                f"steps ({result.queries} queries, query_budget="
                f"{getattr(model, 'query_budget', None)}); the error's partial_result holds "
                f"the reconstructions so far; raise query_budget or lower steps",
                partial_result=result,
            )
        return result

    # -- pieces of the cost ----------------------------------------------------------------
    @staticmethod
    def _model_cost(model: Classifier, x: Tensor, y: Tensor) -> Tensor:
        """``1 - p_y(x)`` per input (Fredrikson et al. 2015, Algorithm 1, line 1)."""
        p = torch.softmax(model.logits(x), dim=1)
        return 1.0 - p.gather(1, y[:, None])[:, 0]

    def _prior(self, x: Tensor, x0: Tensor, span: float, is_image: bool) -> Tensor:
        flat = ((x - x0) / span).flatten(1)
        cost = self.l2_weight * (flat**2).mean(1)
        if is_image and self.tv_weight:
            cost = cost + self.tv_weight * total_variation(x / span)
        return cost

    def _estimated_gradient(
        self, model: Classifier, x: Tensor, y: Tensor, gen: torch.Generator, span: float
    ) -> Tensor:
        """Antithetic Gaussian estimate of ``grad_x (1 - p_y(x))`` from scores only
        (the NES estimator of Ilyas et al., ICML 2018, eq. 3)."""
        k = x.shape[0]
        sigma = self.fd_sigma * span
        u = torch.randn(
            (self.n_directions, *x.shape), generator=gen, device=x.device, dtype=x.dtype
        )
        low, high = model.bounds
        plus = (x[None] + sigma * u).clamp(low, high).flatten(0, 1)
        minus = (x[None] - sigma * u).clamp(low, high).flatten(0, 1)
        yy = y.repeat(self.n_directions)
        with torch.no_grad():
            c_plus = self._model_cost(model, plus, yy).view(self.n_directions, k)
            c_minus = self._model_cost(model, minus, yy).view(self.n_directions, k)
        diff = (c_plus - c_minus) / (2 * sigma)
        return (diff.view(self.n_directions, k, *([1] * (x.ndim - 1))) * u).mean(0)


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic total variation per image of a ``(n, C, H, W)`` batch: the mean absolute
    difference between vertical neighbours plus that between horizontal ones."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw
