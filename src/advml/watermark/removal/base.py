"""What every removal attack shares: the ``remove`` verb, its result, and the fine-tuning."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from advml.base import Component
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier, require_torch
from advml.models.training import train
from advml.validation import check_labels, check_number

__all__ = ["RemovalAttack", "RemovalResult"]


@dataclass(frozen=True)
class RemovalResult:
    """The attacker's model after a removal attack."""

    model: Classifier
    """A new model; the attacked one is left unchanged."""
    attack: str
    params: dict[str, Any]
    seconds: float
    queries: int
    """Queries the attack asked of the attacked model (extraction only; else 0)."""


class RemovalAttack(Component):
    """Base of the removal attacks: ``remove(model, x, y=None) -> RemovalResult``.

    Subclasses implement :meth:`_run` and say whether they need labels
    (``needs_labels``) and a white-box ``TorchClassifier`` (``needs_white_box``).
    """

    family: ClassVar[str] = "watermark_removal"
    needs_labels: ClassVar[bool] = True
    needs_white_box: ClassVar[bool] = True

    def remove(
        self,
        model: Classifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor | None = None,
    ) -> RemovalResult:
        """Attack ``model`` with the attacker's data ``x`` (and labels ``y``).

        Parameters
        ----------
        model : Classifier
            The watermarked model; a ``TorchClassifier`` for every attack but
            ``preprocess``, ``distill`` and ``copycat``. Not modified.
        x : array of shape (n, *input_shape)
            The attacker's inputs.
        y : array of shape (n,), optional
            Their labels (required by the fine-tuning attacks; ``distill`` ignores them
            and asks the model instead).

        Returns
        -------
        RemovalResult
        """
        if self.needs_white_box:
            require_torch(model, f"the {self.name!r} removal attack")
        xt = model.as_tensor(x, name="x")
        yt: Tensor | None = None
        if y is not None:
            y_arr = y if isinstance(y, np.ndarray | Tensor) else np.asarray(y)
            check_labels("y", y_arr, model.n_classes, xt.shape[0])
            yt = torch.as_tensor(np.asarray(y_arr) if isinstance(y_arr, np.ndarray) else y_arr)
            yt = yt.to(device=model.device, dtype=torch.long)
        elif self.needs_labels:
            raise ValueError(f"the {self.name!r} attack fine-tunes on labelled data: give y")
        start = time.perf_counter()
        before = model.query_count
        out = self._run(model, xt, yt)
        return RemovalResult(
            model=out,
            attack=self.name,
            params=self.get_params(),
            seconds=time.perf_counter() - start,
            queries=model.query_count - before,
        )

    def _run(self, model: Any, x: Tensor, y: Tensor | None) -> Classifier:
        raise NotImplementedError

    # -- what the attacks that train share ----------------------------------------------
    def _set_tuning(self, *, epochs: int, lr: float, batch_size: int, seed: int) -> None:
        """Check and keep the training settings of an attack that trains."""
        check_number("epochs", epochs, low=1, integer=True)
        check_number("lr", lr, low=0, low_inclusive=False)
        check_number("batch_size", batch_size, low=1, integer=True)
        check_number("seed", seed, low=0, integer=True)
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def _fine_tune(
        self,
        model: TorchClassifier,
        x: Tensor,
        y: Tensor,
        *,
        params: list[nn.Parameter] | None = None,
    ) -> None:
        """Train ``model`` in place on the attacker's data with this attack's settings and
        the shared loop (all of it: no validation split, no early stopping), then clear
        its query count. ``params``: only these are trained (default all)."""
        train(
            model,
            x,
            y,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            val_fraction=0.0,
            patience=None,
            params=params,
            seed=self.seed,
            show_progress=False,
            desc=f"removal {self.name}",
        )
        model.reset_queries()
