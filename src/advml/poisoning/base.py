"""The poisoning family: ``poison(x, y) -> PoisonedData``.

A poisoning attack changes a training set before the victim trains on it. It never sees
a model. The result keeps the indices of the samples it changed, so detectors can be
scored against the truth, and the trigger and target rule, so the backdoor can be
measured on test data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from torch import Tensor

from advml import registry
from advml.base import Component
from advml.poisoning.triggers import Trigger
from advml.validation import check_finite, check_labels, check_not_empty, check_number

__all__ = ["Mode", "PoisonedData", "PoisoningAttack", "resolve_trigger"]

Mode = Literal["all-to-one", "all-to-all"]


@dataclass(frozen=True)
class PoisonedData:
    """A poisoned copy of a training set and what was done to it.

    Arrays are numpy; ``x`` keeps the dtype of the input (float32 for integer input).
    """

    x: np.ndarray
    """Training inputs with the poisoned samples changed (shape of the input ``x``)."""
    y: np.ndarray
    """Training labels with the poisoned samples' labels changed (where the attack does)."""
    indices: np.ndarray
    """Sorted indices of the samples the attack changed (input, label or both)."""
    trigger: Trigger | None
    """The trigger stamped on poisoned samples (``None`` for label flipping)."""
    target: int | None
    """Target label of an all-to-one backdoor; ``None`` for all-to-all and label flipping."""
    mode: Mode | None
    """``"all-to-one"`` (every triggered input goes to ``target``) or ``"all-to-all"``
    (label ``i`` goes to ``i + 1`` modulo the number of classes); ``None`` without trigger."""
    n_classes: int
    """Number of classes (labels are in ``[0, n_classes)``)."""
    bounds: tuple[float, float]
    """Valid input range the trigger values refer to."""
    y_original: np.ndarray
    """The labels before poisoning."""
    attack: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_poisoned(self) -> np.ndarray:
        """Boolean mask over the samples: True where the attack changed the sample."""
        mask = np.zeros(len(self.y), dtype=bool)
        mask[self.indices] = True
        return mask

    @property
    def n_poisoned(self) -> int:
        return int(self.indices.size)

    @property
    def fraction(self) -> float:
        """Poisoned samples over all samples."""
        return self.n_poisoned / len(self.y) if len(self.y) else 0.0

    def backdoor_labels(self, y: np.ndarray | Tensor) -> np.ndarray:
        """The labels the backdoor sends triggered inputs of true label ``y`` to."""
        if self.mode is None:
            raise ValueError(f"{self.attack!r} plants no trigger, so it has no backdoor labels")
        y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y, dtype=np.int64)
        if self.mode == "all-to-one":
            if self.target is None:
                raise ValueError("an all-to-one backdoor needs a target label; target is None")
            return np.full_like(y_np, self.target)
        return (y_np + 1) % self.n_classes

    def apply_trigger(self, x: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """``x`` with the trigger stamped on every input (for measuring the backdoor)."""
        if self.trigger is None:
            raise ValueError(f"{self.attack!r} plants no trigger")
        return self.trigger.apply(x, self.bounds)

    def summary(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "n": len(self.y),
            "n_poisoned": self.n_poisoned,
            "fraction": self.fraction,
            "target": self.target,
            "mode": self.mode,
            "trigger": None if self.trigger is None else repr(self.trigger),
        }


def resolve_trigger(trigger: Trigger | str) -> Trigger:
    """A trigger object from a trigger or a registered trigger name (default settings)."""
    if isinstance(trigger, Trigger):
        return trigger
    if isinstance(trigger, str):
        names = registry.available("trigger")
        if trigger not in names:
            raise ValueError(
                f"trigger must be one of {', '.join(map(repr, names))} or a Trigger; "
                f"got {trigger!r}"
            )
        return registry.create("trigger", trigger)
    raise TypeError(f"trigger must be a Trigger or a trigger name, got {type(trigger).__name__}")


class PoisoningAttack(Component):
    """Base of poisoning attacks; subclasses implement :meth:`_poison` on numpy arrays."""

    family: ClassVar[str] = "poisoning"

    def poison(
        self,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        *,
        n_classes: int | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> PoisonedData:
        """Poison a training set.

        Parameters
        ----------
        x : array of shape (n, *input_shape)
            Training inputs within ``bounds``. Not modified.
        y : array of shape (n,)
            Integer training labels. Not modified.
        n_classes : int, optional
            Number of classes; default ``max(y) + 1`` (give it when a class may be absent).
        bounds : (float, float)
            Valid input range; trigger values are fractions of it.

        Returns
        -------
        PoisonedData
        """
        x_np = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x)
        y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
        check_not_empty("x", x_np)
        if x_np.ndim < 2:
            raise ValueError(f"x must be a batch (n, *input_shape), got shape {x_np.shape}")
        if not np.issubdtype(x_np.dtype, np.number):
            raise TypeError(f"x must hold numbers, got dtype {x_np.dtype}")
        check_finite("x", x_np)
        if y_np.ndim != 1 or y_np.shape[0] != x_np.shape[0]:
            raise ValueError(
                f"y must hold one label per sample of x: {x_np.shape[0]} samples, "
                f"got y of shape {y_np.shape}"
            )
        if n_classes is None:
            if not np.issubdtype(y_np.dtype, np.number):
                raise TypeError(f"y must hold integer class indices, got dtype {y_np.dtype}")
            n_classes = int(y_np.max()) + 1
            if n_classes < 2:
                raise ValueError("y holds a single class; give n_classes explicitly")
        check_number("n_classes", n_classes, low=2, integer=True)
        k = int(n_classes)
        check_labels("y", y_np, k, len(x_np))
        dtype = x_np.dtype if np.issubdtype(x_np.dtype, np.floating) else np.float32
        x_out = x_np.astype(dtype, copy=True)
        y_out = y_np.astype(np.int64, copy=True)
        indices, trigger, target, mode = self._poison(x_out, y_out, k, bounds)
        return PoisonedData(
            x=x_out,
            y=y_out,
            indices=np.sort(np.asarray(indices, dtype=np.int64)),
            trigger=trigger,
            target=target,
            mode=mode,
            n_classes=k,
            bounds=(float(bounds[0]), float(bounds[1])),
            y_original=y_np.astype(np.int64, copy=True),
            attack=self.name,
            params=self.get_params(),
        )

    def _poison(
        self, x: np.ndarray, y: np.ndarray, n_classes: int, bounds: tuple[float, float]
    ) -> tuple[np.ndarray, Trigger | None, int | None, Mode | None]:
        """Change ``x`` and ``y`` (own copies) in place; return what was done."""
        raise NotImplementedError


def choose(pool: np.ndarray, count: int, seed: int, what: str) -> np.ndarray:
    """``count`` indices drawn without replacement from ``pool`` (seeded)."""
    if count > pool.size:
        raise ValueError(f"fraction asks for {count} samples but only {pool.size} {what}")
    return np.random.default_rng(seed).choice(pool, size=count, replace=False)
