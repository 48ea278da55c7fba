"""Neural Cleanse (Wang et al., "Neural Cleanse: Identifying and Mitigating Backdoor
Attacks in Neural Networks", IEEE S&P 2019).

For every label ``t``, find the smallest trigger (mask ``m``, pattern ``p``) that sends
clean inputs to ``t``:

    min_{m, p}  CE(f((1 - m) * x + m * p), t) + lambda * |m|_1          (§4.2, eq. 2-3)

A backdoor is a shortcut to its target, so the target's trigger is much smaller than the
others'. The anomaly index of a label is ``(median - L1_t) / (1.4826 * MAD)`` over the
labels' trigger norms (§4.2, "Detecting Backdoors"); above 2 flags a backdoor to ``t``.
Mitigation by unlearning (§6.3): fine-tune on clean data where 20% of the inputs carry
the reverse-engineered trigger but keep their true label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.defences.backdoor.base import (
    BackdoorDefence,
    as_numpy,
)
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier, require_torch
from advml.models.training import train
from advml.runtime.progress import progress
from advml.validation import check_bool, check_number

__all__ = ["NeuralCleanse", "NeuralCleanseResult"]


@dataclass(frozen=True)
class NeuralCleanseResult:
    """The reverse-engineered trigger of every label and the verdict."""

    masks: np.ndarray
    """Mask per label in [0, 1]: ``(K, H, W)`` for images (shared by the channels),
    ``(K, *input_shape)`` otherwise."""
    patterns: np.ndarray
    """Pattern per label, ``(K, *input_shape)``, within the model's bounds."""
    l1_norms: np.ndarray
    """L1 norm of each label's mask (the trigger's size)."""
    attack_success: np.ndarray
    """Share of the clean inputs each reverse-engineered trigger sends to its label."""
    anomaly_index: np.ndarray
    """``(median - L1) / (1.4826 * MAD)`` per label: large and positive for a label
    whose trigger is unusually small."""
    threshold: float
    flagged: bool
    """True when some label's anomaly index exceeds ``threshold``."""
    target: int | None
    """The label with the largest anomaly index when flagged, else None."""

    def trigger(self, label: int) -> tuple[np.ndarray, np.ndarray]:
        """``(mask, pattern)`` of ``label``, broadcastable to one input."""
        mask = self.masks[label]
        if self.patterns.ndim == 4:  # images: one mask for every channel
            mask = mask[None]
        return mask, self.patterns[label]

    def apply(self, x: np.ndarray, label: int) -> np.ndarray:
        """``x`` with ``label``'s reverse-engineered trigger stamped on."""
        mask, pattern = self.trigger(label)
        return ((1 - mask) * x + mask * pattern).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "target": self.target,
            "max_anomaly_index": float(self.anomaly_index.max()),
            "l1_norms": self.l1_norms.tolist(),
            "anomaly_index": self.anomaly_index.tolist(),
            "attack_success": self.attack_success.tolist(),
        }


@registry.register("backdoor_defence", "neural_cleanse")
class NeuralCleanse(BackdoorDefence):
    """Reverse-engineer a minimal trigger per label; flag a label whose trigger is tiny.

    Uses clean validation inputs (for the trigger search; their labels are not needed)
    and, for the unlearning repair only, their labels. The triggers of all labels are
    optimised together, one set of parameters per label, so the search costs one
    batched forward and backward pass per step.

    Parameters
    ----------
    steps : int
        Optimisation steps per label (>= 1).
    lr : float
        Adam learning rate on the mask and pattern parameters (Wang et al.: 0.1).
    init_cost : float
        Initial weight ``lambda`` of the mask's L1 norm (Wang et al.: 1e-3); it is raised
        while the trigger succeeds and lowered while it does not (§4.2).
    target_success : float
        Share of inputs a trigger must send to its label to count as a trigger (0.99).
    batch_size : int
        Clean inputs per step (each is stamped with every label's trigger).
    threshold : float
        Anomaly index above which a label is flagged (Wang et al.: 2).
    unlearning_epochs : int
        Fine-tuning epochs of :meth:`repair`.
    unlearning_fraction : float
        Share of inputs stamped with the reversed trigger during unlearning (0.2).
    seed : int
        Seed of the initial triggers, the batches and the unlearning.
    show_progress : bool
        Show a progress bar over the steps.
    """

    uses = "clean validation inputs (and their labels for the unlearning repair)"

    def __init__(
        self,
        *,
        steps: int = 300,
        lr: float = 0.1,
        init_cost: float = 1e-3,
        target_success: float = 0.99,
        batch_size: int = 32,
        threshold: float = 2.0,
        unlearning_epochs: int = 5,
        unlearning_fraction: float = 0.2,
        seed: int = 0,
        show_progress: bool = False,
    ) -> None:
        check_number("steps", steps, low=1, integer=True)
        check_number("lr", lr, low=0, low_inclusive=False)
        check_number("init_cost", init_cost, low=0)
        check_number("target_success", target_success, low=0, high=1, low_inclusive=False)
        check_number("batch_size", batch_size, low=1, integer=True)
        check_number("threshold", threshold, low=0)
        check_number("unlearning_epochs", unlearning_epochs, low=1, integer=True)
        check_number("unlearning_fraction", unlearning_fraction, low=0, high=1, low_inclusive=False)
        check_number("seed", seed, low=0, integer=True)
        check_bool("show_progress", show_progress)
        self.steps = steps
        self.lr = lr
        self.init_cost = init_cost
        self.target_success = target_success
        self.batch_size = batch_size
        self.threshold = threshold
        self.unlearning_epochs = unlearning_epochs
        self.unlearning_fraction = unlearning_fraction
        self.seed = seed
        self.show_progress = show_progress

    def run(
        self, model: Classifier, x: np.ndarray | Tensor, y: np.ndarray | Tensor
    ) -> NeuralCleanseResult:
        return self.inspect(model, x)

    def inspect(self, model: Classifier, x_val: np.ndarray | Tensor) -> NeuralCleanseResult:
        """Reverse-engineer every label's trigger from clean inputs ``x_val``."""
        torch_model = require_torch(model, type(self).__name__)
        x_np = as_numpy(x_val).astype(np.float32, copy=False)
        xt = torch_model.as_tensor(x_np, name="x_val")
        shape = torch_model.input_shape
        image = len(shape) == 3
        mask_shape = (1, *shape[1:]) if image else shape
        k = torch_model.n_classes
        low, high = torch_model.bounds
        gen = torch.Generator().manual_seed(self.seed)
        device = torch_model.device
        # tanh parametrisation keeps mask in [0, 1] and pattern in bounds (§4.2).
        m_raw = (torch.rand((k, *mask_shape), generator=gen) * 2 - 1).to(device).requires_grad_()
        p_raw = (torch.rand((k, *shape), generator=gen) * 2 - 1).to(device).requires_grad_()
        opt = torch.optim.Adam([m_raw, p_raw], lr=self.lr, betas=(0.5, 0.9))
        cost = torch.full((k,), float(self.init_cost), device=device)
        best_l1 = torch.full((k,), float("inf"), device=device)
        best_m = torch.zeros((k, *mask_shape), device=device)
        best_p = torch.zeros((k, *shape), device=device)
        targets = torch.arange(k, device=device)
        up, down, patience = 1.5, 1.5**1.5, 5
        above = torch.zeros(k, dtype=torch.long, device=device)
        below = torch.zeros(k, dtype=torch.long, device=device)
        n = xt.shape[0]
        bs = min(int(self.batch_size), n)
        window: list[Tensor] = []
        with torch_model.evaluating():
            for _ in progress(range(self.steps), desc="neural cleanse", enabled=self.show_progress):
                idx = torch.randint(0, n, (bs,), generator=gen).to(device)
                xb = xt[idx]
                mask = torch.tanh(m_raw) / 2 + 0.5
                pattern = low + (high - low) * (torch.tanh(p_raw) / 2 + 0.5)
                stamped = (1 - mask[:, None]) * xb[None] + mask[:, None] * pattern[:, None]
                logits = torch_model.logits(stamped.reshape(k * bs, *shape))
                y_t = targets.repeat_interleave(bs)
                ce = F.cross_entropy(logits, y_t, reduction="none").reshape(k, bs).mean(1)
                l1 = mask.flatten(1).sum(1)
                loss = (ce + cost * l1).sum()
                grads = torch.autograd.grad(loss, [m_raw, p_raw])
                m_raw.grad, p_raw.grad = grads
                opt.step()
                with torch.no_grad():
                    success = (logits.argmax(1) == y_t).float().reshape(k, bs).mean(1)
                    window.append(success)
                    if len(window) > 10:
                        window.pop(0)
                    ok = torch.stack(window).mean(0) >= self.target_success
                    better = ok & (l1 < best_l1)
                    best_l1 = torch.where(better, l1, best_l1)
                    best_m[better] = mask[better].detach()
                    best_p[better] = pattern[better].detach()
                    # Wang et al.'s schedule: raise lambda after `patience` successful
                    # steps, lower it after `patience` failing ones.
                    above = torch.where(ok, above + 1, torch.zeros_like(above))
                    below = torch.where(ok, torch.zeros_like(below), below + 1)
                    raise_ = above >= patience
                    lower = below >= patience
                    start = cost == 0
                    cost = torch.where(
                        raise_ & start, torch.full_like(cost, float(self.init_cost) or 1e-3), cost
                    )
                    cost = torch.where(raise_ & ~start, cost * up, cost)
                    cost = torch.where(lower, cost / down, cost)
                    above[raise_] = 0
                    below[lower] = 0
            # Labels that never reached the target success keep their last trigger.
            never = torch.isinf(best_l1)
            with torch.no_grad():
                last_m = torch.tanh(m_raw) / 2 + 0.5
                last_p = low + (high - low) * (torch.tanh(p_raw) / 2 + 0.5)
                best_m[never] = last_m[never]
                best_p[never] = last_p[never]
                asr = self._success(torch_model, xt, best_m, best_p)
        masks = best_m.squeeze(1).cpu().numpy() if image else best_m.cpu().numpy()
        patterns = best_p.cpu().numpy()
        l1_norms = best_m.flatten(1).sum(1).cpu().numpy()
        index = anomaly_index(l1_norms)
        flagged = bool(index.max() > self.threshold)
        return NeuralCleanseResult(
            masks=masks.astype(np.float32),
            patterns=patterns.astype(np.float32),
            l1_norms=l1_norms,
            attack_success=asr,
            anomaly_index=index,
            threshold=float(self.threshold),
            flagged=flagged,
            target=int(index.argmax()) if flagged else None,
        )

    def _success(
        self, model: TorchClassifier, x: Tensor, masks: Tensor, patterns: Tensor
    ) -> np.ndarray:
        out = []
        for t in range(masks.shape[0]):
            stamped = (1 - masks[t]) * x + masks[t] * patterns[t]
            out.append(float((model.predict_labels(stamped) == t).float().mean()))
        return np.array(out)

    def repair(
        self,
        model: Classifier,
        x_val: np.ndarray | Tensor,
        y_val: np.ndarray | Tensor,
        *,
        inspection: NeuralCleanseResult | None = None,
    ) -> TorchClassifier:
        """A copy of ``model`` with the flagged backdoor unlearned (§6.3).

        Fine-tunes on ``(x_val, y_val)`` where ``unlearning_fraction`` of the inputs carry
        the reverse-engineered trigger of the flagged label and keep their true labels.
        When nothing is flagged the copy is returned unchanged.
        """
        torch_model, x_np, y_np = self._inputs(model, x_val, y_val, ("x_val", "y_val"))
        result = inspection if inspection is not None else self.inspect(torch_model, x_np)
        repaired = torch_model.clone()
        if not result.flagged or result.target is None:
            return repaired
        rng = np.random.default_rng(self.seed)
        chosen = rng.choice(
            len(x_np), size=max(1, round(self.unlearning_fraction * len(x_np))), replace=False
        )
        x_aug = x_np.copy()
        x_aug[chosen] = result.apply(x_np[chosen], result.target).clip(*torch_model.bounds)
        train(
            repaired,
            x_aug,
            y_np,
            epochs=self.unlearning_epochs,
            seed=self.seed,
            patience=None,
            show_progress=False,
            desc="unlearning",
        )
        return repaired


def anomaly_index(l1_norms: np.ndarray) -> np.ndarray:
    """``(median - L1) / (1.4826 * MAD)`` (Wang et al. 2019, §4.2); positive below the median."""
    norms = np.asarray(l1_norms, dtype=float)
    med = float(np.median(norms))
    mad = 1.4826 * float(np.median(np.abs(norms - med)))
    return (med - norms) / max(mad, 1e-12)
