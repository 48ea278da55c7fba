"""Learning-based model stealing under a query budget (Copycat / Knockoff / Papernot et al.)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.errors import UnsupportedModelError
from advml.extraction.base import CurvePoint, Evaluation, ExtractionAttack, Outputs, _Run, query
from advml.models.architectures import build
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier
from advml.runtime.progress import counter
from advml.validation import check_bool, check_choice, check_number

__all__ = ["Copycat"]

Strategy = Literal["random", "pool", "jacobian", "active"]
_MIN_SHIFTED = 16
"""Smallest image side that random two-pixel shifts augment."""
_ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp": ("mlp", {}),
    "cnn": ("cnn", {}),
    "small-cnn": ("cnn", {"channels": (16, 32), "hidden": 64}),
}


@registry.register("extraction", "copycat")
class Copycat(ExtractionAttack):
    """Train a copy of the victim on its answers to the attacker's queries.

    The attacker spends ``queries`` victim queries in ``rounds`` rounds of doubling size
    (e.g. 125, 250, 500, 1000), asks for the victim's labels or probabilities, and after
    each round trains its copy (a white-box network) on everything answered so far,
    continuing from the previous round's weights. Where the queries come from is the
    ``strategy``:

    - ``"random"``: uniform random inputs in the victim's bounds (no data needed);
    - ``"pool"``: inputs drawn at random from the attacker's unlabelled data ``x_pool``,
      which may be of another distribution (Correia-Silva et al. 2018, *Copycat CNN*;
      Orekondy et al. 2019, *Knockoff Nets*, random strategy);
    - ``"jacobian"``: Jacobian-based dataset augmentation (Papernot et al. 2017, §4.2):
      a first round from ``x_pool``, then each round adds
      ``x + λ · sign(∇x F_{O(x)}(x))`` for inputs ``x`` already answered, where ``F`` is
      the copy and ``O(x)`` the victim's label, with the sign of ``λ`` flipped every
      ``tau`` rounds (their periodic step size);
    - ``"active"``: uncertainty sampling from ``x_pool``: after a random first round, the
      pool inputs on which the current copy's two most likely classes are closest
      (smallest margin) are asked next (Pal et al. 2020, *ActiveThief*, margin strategy).

    With scores the copy is trained on the victim's probability vectors (distillation,
    cross-entropy to soft targets); with labels on the labels. Images of at least
    16x16 pixels are augmented with random shifts of up to two pixels while training,
    which costs no queries (on smaller images, such as 8x8 digits, a two-pixel shift
    changes the digit: measured there, it cut fidelity at 400 queries from 97% to 48%).
    With ``semi_supervised`` the pool inputs not yet queried are also used, labelled by
    the copy itself where it is confident (self-training, as in Jagielski et al. 2020 §6,
    who show semi-supervised learning cuts the queries stealing needs).

    Parameters
    ----------
    strategy : {"random", "pool", "jacobian", "active"}
        Where queries come from; all but ``"random"`` need ``x_pool``.
    queries : int
        Query budget: victim inputs the attack may ask about (>= 1).
    rounds : int
        Rounds of queries (>= 1), of doubling size; a fidelity point per round.
    outputs : {"auto", "scores", "labels"}
        Use the victim's scores when it gives them (``"auto"``), insist on them, or use
        labels only.
    architecture : {"auto", "mlp", "cnn", "small-cnn"}
        The copy's network: the reference MLP or CNN of ``advml.models.architectures``, or
        that CNN with a quarter of its convolution filters (16 and 32) and a 64-unit
        hidden layer, about 2.5x faster to train; ``"auto"`` is ``"small-cnn"`` for
        images of at least 16x16 pixels and ``"mlp"`` otherwise. The attacker need not
        know the victim's architecture.
    epochs : int
        Passes over the answered data per round (>= 1); at least ``min_steps`` steps run.
    min_steps : int
        Fewest optimiser steps per round (>= 0), so small rounds still train.
    batch_size : int
        Samples per optimiser step.
    lr : float
        Adam learning rate.
    augment : bool
        Random shifts of image inputs of at least 16x16 pixels while training (ignored
        for smaller images and non-images).
    semi_supervised : bool
        Also train on unqueried pool inputs the copy labels with confidence >=
        ``confidence`` (needs ``x_pool``; ignored by ``"random"``). The pseudo-labels
        come from the copy trained in the previous rounds, so this acts from the second
        round on: with ``rounds=1`` it changes nothing.
    confidence : float
        Confidence threshold of self-training, in (0, 1].
    step : float
        Jacobian augmentation step λ as a fraction of the bounds' width (> 0).
    tau : int
        Rounds between sign flips of the Jacobian step (>= 1).
    seed : int, optional
        Seeds the queries, the copy's initial weights and its training.

    Attributes
    ----------
    show_progress : bool
        A progress bar over the copy's training steps, all rounds together, with an ETA
        (the training is where the time goes); False unless set (``advml extract`` sets
        it). Not a setting: it changes no result.

    Examples
    --------
    >>> from advml import registry
    >>> attack = registry.create("extraction", "copycat", strategy="pool", queries=1000)
    >>> result = attack.extract(victim, x_pool, x_eval=x_test)  # doctest: +SKIP
    >>> result.fidelity, result.queries  # doctest: +SKIP
    """

    show_progress: bool = False

    def __init__(
        self,
        *,
        strategy: Strategy = "pool",
        queries: int = 1000,
        rounds: int = 4,
        outputs: Literal["auto", "scores", "labels"] = "auto",
        architecture: Literal["auto", "mlp", "cnn", "small-cnn"] = "auto",
        epochs: int = 30,
        min_steps: int = 300,
        batch_size: int = 64,
        lr: float = 1e-3,
        augment: bool = True,
        semi_supervised: bool = False,
        confidence: float = 0.95,
        step: float = 0.1,
        tau: int = 3,
        seed: int | None = 0,
    ) -> None:
        check_choice("strategy", strategy, ("random", "pool", "jacobian", "active"))
        check_number("queries", queries, low=1, integer=True)
        check_number("rounds", rounds, low=1, integer=True)
        check_choice("outputs", outputs, ("auto", "scores", "labels"))
        check_choice("architecture", architecture, ("auto", *_ARCHITECTURES))
        check_number("epochs", epochs, low=1, integer=True)
        check_number("min_steps", min_steps, low=0, integer=True)
        check_number("batch_size", batch_size, low=1, integer=True)
        check_number("lr", lr, low=0, low_inclusive=False)
        check_bool("augment", augment)
        check_bool("semi_supervised", semi_supervised)
        check_number("confidence", confidence, low=0, low_inclusive=False, high=1)
        check_number("step", step, low=0, low_inclusive=False)
        check_number("tau", tau, low=1, integer=True)
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        if rounds > queries:
            raise ValueError(f"rounds={rounds} exceeds queries={queries}: each round asks >= 1")
        self.strategy = strategy
        self.queries = queries
        self.rounds = rounds
        self.outputs = outputs
        self.architecture = architecture
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.lr = lr
        self.augment = augment
        self.semi_supervised = semi_supervised
        self.confidence = confidence
        self.step = step
        self.tau = tau
        self.seed = seed

    def _planned_steps(self, answered: int, pool: Tensor | None) -> int:
        """Training steps of the round that ends with ``answered`` answers, before
        self-training's pseudo-labelled inputs are known (they are added when they are)."""
        per_epoch = math.ceil(answered / int(self.batch_size))
        return max(int(self.epochs) * per_epoch, int(self.min_steps))

    # -- checks ----------------------------------------------------------------------
    def _needs_pool(self) -> bool:
        return self.strategy != "random"

    def _check_victim(self, victim: Classifier) -> None:
        if self.outputs == "scores" and not victim.has_scores:
            raise UnsupportedModelError(
                f"outputs='scores' needs the victim's scores; {type(victim).__name__} answers "
                f"labels only: use outputs='labels' (or 'auto')"
            )
        if self.architecture in ("cnn", "small-cnn") and len(victim.input_shape) != 3:
            raise ValueError(
                f"architecture='cnn' needs image inputs (c, h, w); the victim takes "
                f"{victim.input_shape}: use 'mlp' or 'auto'"
            )

    def checkpoints(self) -> list[int]:
        """Queries answered after each round: doubling, ending at ``queries``."""
        points = [
            max(1, round(self.queries / 2 ** (self.rounds - 1 - r))) for r in range(self.rounds)
        ]
        out: list[int] = []
        for p in points:
            out.append(max(p, out[-1] + 1) if out else p)
        return out

    # -- the attack --------------------------------------------------------------------
    def _run(
        self,
        victim: Classifier,
        pool: Tensor | None,
        evaluation: Evaluation,
        generator: torch.Generator,
    ) -> _Run:
        outputs: Outputs = (
            "scores"
            if self.outputs == "scores" or (self.outputs == "auto" and victim.has_scores)
            else "labels"
        )
        if pool is not None and self.strategy in ("pool", "active") and self.queries > len(pool):
            raise ValueError(
                f"queries={self.queries} exceeds the {len(pool)} inputs of x_pool; strategy "
                f"{self.strategy!r} asks about each pool input once: give more data or fewer "
                f"queries"
            )
        arch = self._architecture(victim)
        thief = self._thief(victim, arch)
        x_asked = torch.empty((0, *victim.input_shape), device=victim.device)
        answers: Tensor | None = None
        used = torch.zeros(0 if pool is None else len(pool), dtype=torch.bool)
        curve: list[CurvePoint] = []
        short = False
        plan = [self._planned_steps(c, pool) for c in self.checkpoints()]
        bar = counter(
            sum(plan), desc=f"copycat {len(plan)} rounds", unit="step", enabled=self.show_progress
        )
        for r, target in enumerate(self.checkpoints()):
            bar.set_description(f"copycat round {r + 1}/{len(plan)} ({target} queries)")
            n_new = target - len(x_asked)
            left = getattr(victim, "queries_left", None)
            if left is not None and n_new > left:
                # The victim's budget cannot pay for the whole round: ask what it still
                # pays for, train on every answer bought, and stop.
                short, n_new = True, int(left)
                if n_new == 0:
                    break
            x_new, picked = self._select(
                r, n_new, victim, thief, pool, used, x_asked, answers, generator
            )
            if picked is not None:
                used[picked] = True
            y_new = query(victim, x_new, outputs)
            x_asked = torch.cat([x_asked, x_new])
            answers = y_new if answers is None else torch.cat([answers, y_new])
            unlabelled = pool[~used] if (pool is not None and self.semi_supervised) else None
            self._fit(thief, x_asked, answers, outputs, unlabelled, generator, bar, plan[r])
            curve.append(evaluation.measure(thief, len(x_asked)))
            if short:
                break
        bar.close()
        return _Run(
            stolen=thief,
            outputs=outputs,
            curve=tuple(curve),
            details={
                "strategy": self.strategy,
                "pool_size": 0 if pool is None else len(pool),
                "architecture": arch,
            },
            budget_ran_out=short,
        )

    def _architecture(self, victim: Classifier) -> str:
        """The copy's architecture: ``architecture``, with ``"auto"`` resolved."""
        if self.architecture != "auto":
            return str(self.architecture)
        shape = victim.input_shape
        return "small-cnn" if len(shape) == 3 and min(shape[1:]) >= 16 else "mlp"

    def _thief(self, victim: Classifier, arch: str) -> TorchClassifier:
        name, kwargs = _ARCHITECTURES[arch]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if self.seed is None else int(self.seed))
            module = build(
                name, input_shape=victim.input_shape, n_classes=victim.n_classes, **kwargs
            )
        return TorchClassifier(
            module,
            input_shape=victim.input_shape,
            n_classes=victim.n_classes,
            bounds=victim.bounds,
            device=victim.device,
        )

    # -- query strategies --------------------------------------------------------------
    def _select(
        self,
        r: int,
        n: int,
        victim: Classifier,
        thief: TorchClassifier,
        pool: Tensor | None,
        used: Tensor,
        x_asked: Tensor,
        answers: Tensor | None,
        generator: torch.Generator,
    ) -> tuple[Tensor, Tensor | None]:
        if self.strategy == "random":
            low, high = victim.bounds
            u = torch.rand((n, *victim.input_shape), generator=generator)
            return (low + (high - low) * u).to(victim.device), None
        assert pool is not None
        free = (~used).nonzero().flatten()
        if self.strategy == "pool" or r == 0:
            pick = free[torch.randperm(len(free), generator=generator)[:n]]
            return pool[pick.to(pool.device)], pick
        if self.strategy == "active":
            with torch.no_grad(), thief.evaluating():
                probs = torch.cat(
                    [
                        torch.softmax(thief.forward(pool[free[i : i + 1024].to(pool.device)]), 1)
                        for i in range(0, len(free), 1024)
                    ]
                )
            top2 = probs.topk(2, dim=1).values
            margin = (top2[:, 0] - top2[:, 1]).cpu()
            pick = free[margin.argsort()[:n]]
            return pool[pick.to(pool.device)], pick
        # Jacobian-based augmentation (Papernot et al. 2017, Algorithm 1, with the periodic
        # step of §5.1): move answered inputs along the sign of the copy's gradient of the
        # victim's label.
        assert answers is not None
        labels = answers.argmax(1) if answers.ndim == 2 else answers
        src = torch.randint(len(x_asked), (n,), generator=generator)
        if n <= len(x_asked):
            src = torch.randperm(len(x_asked), generator=generator)[:n]
        lam = float(self.step) * (victim.bounds[1] - victim.bounds[0])
        lam = lam * (-1.0) ** ((r - 1) // int(self.tau))
        xs = x_asked[src.to(x_asked.device)].clone().requires_grad_(True)
        with thief.evaluating():
            out = thief.forward(xs)
            picked = out.gather(1, labels[src.to(labels.device)][:, None]).sum()
            (grad,) = torch.autograd.grad(picked, xs)
        x_new = (xs.detach() + lam * grad.sign()).clamp(*victim.bounds)
        return x_new, None

    # -- training the copy -------------------------------------------------------------
    def _fit(
        self,
        thief: TorchClassifier,
        x: Tensor,
        answers: Tensor,
        outputs: Outputs,
        unlabelled: Tensor | None,
        generator: torch.Generator,
        bar: Any = None,
        planned: int = 0,
    ) -> None:
        # advml.models.train takes hard labels only; distilling the victim's probability
        # vectors and self-training on pseudo-labels need this small loop of their own.
        soft = outputs == "scores"
        targets = answers if soft else F.one_hot(answers, thief.n_classes).float()
        if unlabelled is not None and len(unlabelled):
            with torch.no_grad(), thief.evaluating():
                probs = torch.cat(
                    [
                        torch.softmax(thief.forward(unlabelled[i : i + 1024]), 1)
                        for i in range(0, len(unlabelled), 1024)
                    ]
                )
            confident = probs.max(1).values >= float(self.confidence)
            if bool(confident.any()):
                pseudo = F.one_hot(probs[confident].argmax(1), thief.n_classes).float()
                x = torch.cat([x, unlabelled[confident]])
                targets = torch.cat([targets, pseudo])
        n = len(x)
        per_epoch = math.ceil(n / int(self.batch_size))
        steps = max(int(self.epochs) * per_epoch, int(self.min_steps))
        if bar is not None and steps != planned:
            # Self-training adds the confident pool inputs: the plan learns the real count.
            bar.total += steps - planned
            bar.refresh()
        module = thief.module
        opt = torch.optim.Adam(module.parameters(), lr=float(self.lr))
        image = len(thief.input_shape) == 3 and min(thief.input_shape[1:]) >= _MIN_SHIFTED
        low = thief.bounds[0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            module.train()
            order = torch.randperm(n, generator=generator)
            pos = 0
            for _ in range(steps):
                if pos >= n:
                    order, pos = torch.randperm(n, generator=generator), 0
                idx = order[pos : pos + int(self.batch_size)].to(x.device)
                pos += int(self.batch_size)
                xb, tb = x[idx], targets[idx]
                if self.augment and image:
                    xb = _shift(xb, low, generator)
                loss = -(tb * F.log_softmax(thief.forward(xb), dim=1)).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if bar is not None:
                    bar.update(1)
            module.eval()
            for p in module.parameters():
                p.grad = None


def _shift(x: Tensor, background: float, generator: torch.Generator, pixels: int = 2) -> Tensor:
    """Translate each image by up to ``pixels`` in each direction, filling with background."""
    n, _, h, w = x.shape
    shifts = torch.randint(-pixels, pixels + 1, (n, 2), generator=generator).to(x.device)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = shifts[:, 0].float() * 2 / w
    theta[:, 1, 2] = shifts[:, 1].float() * 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(
        x - background, grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    return out + background
