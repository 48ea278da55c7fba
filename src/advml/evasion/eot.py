"""Expectation over Transformation (Athalye, Engstrom, Ilyas & Kwok, ICML 2018).

Adversarial examples that survive the digital -> print/scan -> digital round trip: the
attack ascends the loss averaged over random transformations a camera, printer or
scanner would apply (small rotations and shifts, blur, brightness and contrast changes,
sensor noise, JPEG), so the example fools the model under most of them, not only in the
exact pixels it was crafted in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.evasion._gradient import Loss, check_settings
from advml.evasion.base import EvasionAttack, Norm
from advml.imaging import gaussian_blur, jpeg_compress
from advml.models.base import BaseClassifier, Classifier
from advml.runtime.seeding import make_generator
from advml.validation import check_choice, check_labels, check_number

__all__ = ["EOT", "TRANSFORMS", "TransformSuccess", "random_transform"]

TRANSFORMS = ("rotate", "shift", "blur", "brightness", "contrast", "noise", "jpeg")
"""Transformations EOT can average over; the first three and "jpeg" apply to images only."""

# Largest transformation of each kind per strength (a draw is uniform up to it):
# rotation in degrees, shift in pixels, blur sigma in pixels, brightness offset and noise
# sigma as fractions of the bounds' width, contrast factor 1 +- c, lowest JPEG quality.
PRESETS: dict[str, dict[str, float]] = {
    "low": {"rotate": 5, "shift": 1, "blur": 0.5, "brightness": 0.05, "contrast": 0.1,
            "noise": 0.02, "jpeg": 75},
    "medium": {"rotate": 10, "shift": 2, "blur": 1.0, "brightness": 0.1, "contrast": 0.2,
               "noise": 0.04, "jpeg": 50},
    "high": {"rotate": 15, "shift": 3, "blur": 1.5, "brightness": 0.15, "contrast": 0.3,
             "noise": 0.06, "jpeg": 30},
}  # fmt: skip


def random_transform(
    x: Tensor,
    bounds: tuple[float, float],
    generator: torch.Generator,
    *,
    transforms: Sequence[str] = TRANSFORMS,
    strength: Literal["low", "medium", "high"] = "medium",
) -> Tensor:
    """One random draw of the physical-world transformations, applied to ``x``.

    Differentiable in ``x`` except JPEG, which passes the identity's gradient (BPDA,
    Athalye, Carlini & Wagner 2018, §4.1). Each input gets its own draw. Spatial
    transformations and JPEG apply to images ``(n, c, h, w)`` only and are skipped for
    other inputs.
    """
    low, high = bounds
    limits = PRESETS[strength]
    n = x.shape[0]
    image = x.ndim == 4
    kw: dict[str, Any] = {"generator": generator, "device": x.device, "dtype": x.dtype}

    def uniform(scale: float, shape: tuple[int, ...] = (n,)) -> Tensor:
        return (2 * torch.rand(shape, **kw) - 1) * scale

    u = (x - low) / (high - low)
    if image and ("rotate" in transforms or "shift" in transforms):
        h, w = u.shape[-2:]
        angle = uniform(math.radians(limits["rotate"])) if "rotate" in transforms else None
        shift = uniform(limits["shift"], (n, 2)) if "shift" in transforms else None
        cos = torch.cos(angle) if angle is not None else torch.ones(n, **_dd(x))
        sin = torch.sin(angle) if angle is not None else torch.zeros(n, **_dd(x))
        # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2s/size.
        tx = shift[:, 0] * 2 / w if shift is not None else torch.zeros(n, **_dd(x))
        ty = shift[:, 1] * 2 / h if shift is not None else torch.zeros(n, **_dd(x))
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(u.shape), align_corners=False)
        u = F.grid_sample(u, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if image and "blur" in transforms:
        sigma = torch.rand(n, **kw) * limits["blur"]
        u = gaussian_blur(u, sigma)
    axes = tuple(range(1, u.ndim))
    if "contrast" in transforms:
        factor = 1 + uniform(limits["contrast"]).reshape(n, *([1] * (u.ndim - 1)))
        mean = u.mean(dim=axes, keepdim=True)
        u = mean + factor * (u - mean)
    if "brightness" in transforms:
        u = u + uniform(limits["brightness"]).reshape(n, *([1] * (u.ndim - 1)))
    if "noise" in transforms:
        u = u + limits["noise"] * torch.randn(u.shape, **kw)
    u = u.clamp(0, 1)
    if image and "jpeg" in transforms:
        q_low = int(limits["jpeg"])
        quality = torch.randint(q_low, 96, (n,), generator=generator, device=x.device)
        coded = jpeg_compress(u.detach(), quality.cpu().numpy(), (0.0, 1.0))
        u = u + (coded - u).detach()  # BPDA: JPEG forward, identity backward
    return u * (high - low) + low


def _dd(x: Tensor) -> dict[str, Any]:
    return {"device": x.device, "dtype": x.dtype}


class _Expectation(BaseClassifier):
    """``model`` seen through random transformations: mean log-probabilities over draws.

    The gradient of the true class's mean log-probability is the average of the
    per-draw gradients: Athalye et al.'s EOT objective E_t[log P(y | t(x))] (eq. 2).
    """

    has_gradients = True
    has_scores = True

    def __init__(
        self,
        model: Classifier,
        generator: torch.Generator,
        *,
        samples: int,
        transforms: Sequence[str],
        strength: Literal["low", "medium", "high"],
    ) -> None:
        super().__init__(
            input_shape=model.input_shape,
            n_classes=model.n_classes,
            bounds=model.bounds,
            device=model.device,
        )
        self.model = model
        self.generator = generator
        self.samples = samples
        self.transforms = transforms
        self.strength = strength

    def _logits(self, x: Tensor) -> Tensor:
        draws = [
            torch.log_softmax(
                self.model.logits(
                    random_transform(
                        x,
                        self.bounds,
                        self.generator,
                        transforms=self.transforms,
                        strength=self.strength,
                    )
                ),
                dim=1,
            )
            for _ in range(self.samples)
        ]
        return torch.stack(draws).mean(0)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        with self.model.evaluating():
            yield


@dataclass(frozen=True)
class TransformSuccess:
    """How often adversarial examples still work under random transformations."""

    per_sample: np.ndarray
    """Fraction of draws, per input, in which the attack's goal holds."""
    draws: int
    strength: str
    transforms: tuple[str, ...]

    @property
    def success_rate(self) -> float:
        """Mean over inputs and draws: the expected success of one transformed copy."""
        return float(self.per_sample.mean()) if self.per_sample.size else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "success_rate": self.success_rate,
            "draws": self.draws,
            "strength": self.strength,
            "transforms": list(self.transforms),
        }


@registry.register("evasion", "eot")
class EOT(EvasionAttack):
    """Any gradient attack, made to survive random physical-world transformations.

    The wrapped attack (``attack``, e.g. PGD) runs against the model seen through
    ``samples`` random transformations per query, averaging their gradients
    (Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust Adversarial Examples", ICML
    2018, eq. 2: maximise ``E_{t~T}[log P(y_adv | t(x'))]`` subject to
    ``||x' - x|| <= eps``). JPEG is non-differentiable and passes the identity's gradient
    (BPDA). The result's ``success`` is measured on the untransformed model, like every
    attack's; :meth:`evaluate` measures success under freshly sampled transformations.

    Parameters
    ----------
    attack : str
        Registered name of the wrapped gradient attack with an ``eps`` setting
        (``"pgd"``, ``"bim"``, ``"fgsm"``, ...).
    eps : float
        Radius of the allowed perturbation (>= 0).
    norm : {"inf", "2"}
        Norm of the ε-ball.
    steps : int
        Iterations of the wrapped attack (where it has that setting).
    step_size : float, optional
        Step per iteration; default the wrapped attack's.
    samples : int
        Random transformations averaged per gradient step (>= 1); Athalye et al. use
        tens; more gives a smoother, slower estimate.
    transforms : tuple of str
        Which transformations to draw from: any of "rotate", "shift", "blur",
        "brightness", "contrast", "noise", "jpeg".
    strength : {"low", "medium", "high"}
        How large the drawn transformations may be (e.g. rotations up to 5, 10 or 15
        degrees, shifts up to 1, 2 or 3 pixels, JPEG quality down to 75, 50 or 30).
    targeted : bool
        Move towards the labels given as ``y``.
    loss : {"ce", "margin"}
        Objective of the wrapped attack.
    seed : int, optional
        Seed of the transformations and the wrapped attack's randomness.
    batch_size : int, optional
        Inputs per chunk; default sized to the input.

    Examples
    --------
    >>> from advml.evasion.eot import EOT
    >>> attack = EOT(eps=0.3, steps=40, samples=10)
    >>> result = attack.generate(model, x, y)  # doctest: +SKIP
    >>> attack.evaluate(model, result.x_adv, y).success_rate  # doctest: +SKIP
    """

    needs_gradients: ClassVar[bool] = True
    needs_scores: ClassVar[bool] = True

    def __init__(
        self,
        *,
        attack: str = "pgd",
        eps: float = 0.3,
        norm: Norm = "inf",
        steps: int = 40,
        step_size: float | None = None,
        samples: int = 10,
        transforms: tuple[str, ...] = TRANSFORMS,
        strength: Literal["low", "medium", "high"] = "medium",
        targeted: bool = False,
        loss: Loss = "ce",
        seed: int | None = 0,
        batch_size: int | None = None,
    ) -> None:
        check_settings(eps=eps, norm=norm, loss=loss, steps=steps, step_size=step_size)
        check_number("samples", samples, low=1, integer=True)
        check_choice("strength", strength, ("low", "medium", "high"))
        if isinstance(transforms, str) or not isinstance(transforms, Sequence):
            raise TypeError(
                f"transforms must be a tuple of names from {TRANSFORMS}, got {transforms!r}"
            )
        for t in transforms:
            check_choice("transforms", t, TRANSFORMS)
        self._set_common(targeted=targeted, batch_size=batch_size, seed=seed)
        if not isinstance(attack, str):
            raise TypeError(f"attack must be a registered attack's name, got {attack!r}")
        if attack == "eot":
            raise ValueError("attack must be another attack than 'eot' (EOT wraps an attack)")
        known = registry.available("evasion")
        if attack not in known:
            raise ValueError(f"attack must be one of {', '.join(known)}; got {attack!r}")
        cls = registry.get("evasion", attack)
        if not getattr(cls, "needs_gradients", False) or "eps" not in registry.schema(
            "evasion", attack
        ):
            raise ValueError(
                f"attack must be a gradient attack with an eps setting (e.g. 'pgd'); "
                f"{attack!r} is not"
            )
        self.attack = attack
        self.eps = eps
        self.norm = norm
        self.steps = steps
        self.step_size = step_size
        self.samples = samples
        self.transforms = tuple(transforms)
        self.strength = strength
        self.loss = loss

    def _inner(self) -> EvasionAttack:
        schema = registry.schema("evasion", self.attack)
        wanted = {
            "eps": self.eps,
            "norm": self.norm,
            "steps": self.steps,
            "step_size": self.step_size,
            "targeted": self.targeted,
            "loss": self.loss,
            "seed": self.seed,
        }
        inner = registry.create(
            "evasion", self.attack, **{k: v for k, v in wanted.items() if k in schema}
        )
        return inner

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        view = _Expectation(
            model,
            generator,
            samples=int(self.samples),
            transforms=self.transforms,
            strength=self.strength,
        )
        x_adv, queries = self._inner()._run(view, x, y, generator)
        # Each query of the expectation is `samples` queries of the model.
        return x_adv, queries * int(self.samples)

    def evaluate(
        self,
        model: Classifier,
        x_adv: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        *,
        draws: int = 100,
        seed: int = 12345,
    ) -> TransformSuccess:
        """Success of ``x_adv`` under ``draws`` fresh random transformations each.

        Parameters
        ----------
        model : Classifier
            The model attacked.
        x_adv : array of shape (n, *model.input_shape)
            Adversarial inputs (from any attack: compare EOT's with plain PGD's).
        y : array of shape (n,)
            The labels attacked (``result.y``): true labels, or targets when targeted.
        draws : int
            Transformations sampled per input.
        seed : int
            Seed of the draws (different from the attack's, so the evaluation uses
            transformations the attack never saw).

        Returns
        -------
        TransformSuccess
        """
        check_number("draws", draws, low=1, integer=True)
        xt = model.as_tensor(x_adv, name="x_adv")
        y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
        check_labels("y", y_np, model.n_classes, xt.shape[0])
        yt = torch.as_tensor(y_np, dtype=torch.long, device=model.device)
        generator = make_generator(seed, model.device)
        hits = torch.zeros(xt.shape[0], device=model.device)
        with torch.no_grad(), model.evaluating():
            for _ in range(int(draws)):
                xt_t = random_transform(
                    xt, model.bounds, generator, transforms=self.transforms, strength=self.strength
                )
                pred = model.predict_labels(xt_t)
                hits += (pred == yt) if self.targeted else (pred != yt)
        return TransformSuccess(
            per_sample=(hits / draws).cpu().numpy(),
            draws=int(draws),
            strength=self.strength,
            transforms=self.transforms,
        )
