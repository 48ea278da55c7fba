"""The preprocessing (input-cleansing) family: ``preprocessor(x) -> x'``.

A :class:`Preprocessor` transforms inputs before the model sees them, hoping to wash an
adversarial perturbation out while keeping clean inputs recognisable. Each holds its
settings only: a ``strength`` preset (``"low"``, ``"medium"``, ``"high"``) and explicit
parameters that override the preset one by one.

Two class attributes say how an attacker can see through it:

``differentiable``
    The transformation has useful gradients (autograd through it is exact and
    informative). ``False`` for quantisation (zero gradient almost everywhere), median
    filtering (the gradient reaches one pixel per window) and JPEG (no gradient at all):
    these are attacked adaptively with BPDA (Athalye, Carlini & Wagner, ICML 2018, §4.1).
``randomised``
    Each call draws fresh randomness; attacked adaptively with EOT (Athalye et al. 2018,
    §4.3), averaging over draws.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from advml.base import Component
from advml.runtime.seeding import make_generator
from advml.validation import check_bounds, check_choice, check_finite, check_number

__all__ = ["STRENGTHS", "Preprocessor", "Strength"]

Strength = Literal["low", "medium", "high"]
STRENGTHS: tuple[Strength, ...] = ("low", "medium", "high")


class Preprocessor(Component):
    """Base of input-cleansing defences.

    Subclasses set :attr:`presets` (strength -> parameter values), the flags
    :attr:`differentiable` and :attr:`randomised`, and implement :meth:`apply` on tensors.

    Calling the preprocessor (``prep(x)``) validates ``x`` and returns the cleansed
    inputs with the type, dtype and shape of ``x`` (numpy in, numpy out); ``x`` itself
    is never modified.
    """

    family: ClassVar[str] = "preprocess"
    differentiable: ClassVar[bool] = True
    randomised: ClassVar[bool] = False
    needs_fit: ClassVar[bool] = False
    image_only: ClassVar[bool] = False
    presets: ClassVar[dict[str, dict[str, float]]] = {}

    strength: Strength

    # -- settings ------------------------------------------------------------------------
    def _init_strength(self, strength: Strength, **explicit: float | int | None) -> None:
        """Validate ``strength`` and store it with the explicit parameters."""
        check_choice("strength", strength, STRENGTHS)
        self.strength = strength
        for name, value in explicit.items():
            setattr(self, name, value)

    def resolved(self) -> dict[str, Any]:
        """The parameter values in force: the preset of ``strength``, then explicit ones."""
        out: dict[str, Any] = dict(self.presets.get(self.strength, {}))
        for name in out:
            value = getattr(self, name, None)
            if value is not None:
                out[name] = value
        return out

    # -- the public verb -----------------------------------------------------------------
    def __call__(
        self,
        x: np.ndarray | Tensor,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        generator: torch.Generator | None = None,
    ) -> np.ndarray | Tensor:
        """Cleanse a batch of inputs.

        Parameters
        ----------
        x : array of shape (n, *input_shape)
            Inputs within ``bounds``; images as ``(n, channels, height, width)``.
        bounds : (float, float)
            Minimum and maximum valid input value; outputs stay inside.
        generator : torch.Generator, optional
            Randomness of randomised preprocessors; default one seeded with ``seed``,
            so the same preprocessor gives the same output on every call.

        Returns
        -------
        array of the type, shape and dtype of ``x``
        """
        low, high = check_bounds("bounds", bounds)
        if not isinstance(x, np.ndarray | Tensor):
            x = np.asarray(x)
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(
                f"x must be a non-empty batch of shape (n, *input_shape), got {tuple(x.shape)}"
            )
        check_finite("x", x)
        t = torch.as_tensor(x) if isinstance(x, np.ndarray) else x.detach()
        t = t.to(dtype=torch.float32)
        self.check_input_shape(tuple(t.shape[1:]))
        if generator is None:
            generator = make_generator(getattr(self, "seed", None), t.device)
        with torch.no_grad():
            out = self.apply(t, (low, high), generator)
        if isinstance(x, Tensor):
            return out.to(dtype=x.dtype if x.is_floating_point() else torch.float32)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return out.cpu().numpy().astype(dtype, copy=False)

    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
        """The transformation on a float tensor batch, without validation.

        Differentiable preprocessors keep the autograd graph; the others may return a
        tensor with zero or no gradient. Never modifies ``x``.
        """
        raise NotImplementedError

    def check_input_shape(self, input_shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` unless the preprocessor can handle inputs of this shape."""
        if self.image_only and len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} works on images of shape (channels, height, width); "
                f"got inputs of shape {input_shape}"
            )


def check_optional(name: str, value: Any, **limits: Any) -> None:
    """Validate an explicit parameter that may be ``None`` (take it from the preset)."""
    if value is not None:
        check_number(name, value, **limits)


def check_seed(seed: int | None) -> None:
    if seed is not None:
        check_number("seed", seed, low=0, integer=True)
