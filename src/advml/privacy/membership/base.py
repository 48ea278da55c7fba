"""The membership-inference family: ``attack.fit(model, x, y)`` then ``fitted.infer(...)``.

An attack object holds settings only (DESIGN.md §4). :meth:`MembershipAttack.fit` takes
the target model and the **attacker's own data** (population or shadow data: records the
attacker may use to calibrate, never the evaluation members' labels) and returns a
:class:`FittedMembershipAttack`; its :meth:`~FittedMembershipAttack.infer` scores
candidate records against the target and returns a :class:`MembershipResult` (higher
score = more likely a member). :func:`~advml.privacy.membership.membership_metrics`
turns scores and the truth into ROC, AUC, TPR at low FPR and per-record risk.

Attacks that only need a prediction API query the model through
:meth:`~advml.models.Classifier.logits` or ``predict_labels`` and so work on a
:class:`~advml.models.CallableClassifier`, whose queries are counted; they use what it
returns (rounded or top-k probabilities arrive renormalised; a label-only API has no
scores and is refused by the score-based attacks with a pointer to ``label_only``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.base import Component
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier, WhiteBox, check_classifier
from advml.models.torch import TorchClassifier, reinitialise, require_torch
from advml.privacy.membership.metrics import MembershipMetrics, membership_metrics
from advml.runtime.cache import fingerprint
from advml.runtime.executors import Executor, LocalExecutor, TaskCache, cached_map
from advml.runtime.progress import progress
from advml.validation import check_choice, check_in_bounds, check_labels, check_number

__all__ = [
    "FittedMembershipAttack",
    "MapFn",
    "MembershipAttack",
    "MembershipResult",
    "ShadowArchitecture",
    "ShadowTraining",
    "TrainFn",
]

TrainFn = Callable[[np.ndarray, np.ndarray, int], Classifier]
"""``train_fn(x, y, seed) -> model``: trains one shadow model like the target."""

MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]]
"""``map_fn(fn, tasks) -> results`` in order; :func:`local_map` runs them in-process."""


def local_map(fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
    """Run ``fn`` on each task in this process, lazily and in order."""
    return map(fn, tasks)


ShadowArchitecture = Literal["same", "mlp", "cnn"]

# Log-probabilities are floored at the log of the smallest normal float64, so that a
# probability of 0 (a rounded or top-k API) gives a finite score while every probability
# a network can produce keeps its own value (a floor at log 1e-12 made all confident
# records tie).
LOG_FLOOR = float(np.log(np.finfo(np.float64).tiny))


@dataclass(frozen=True)
class MembershipResult:
    """Scores of one attack on a batch of candidate records."""

    scores: np.ndarray
    """Per record, higher = more likely a member (float64)."""
    is_member: np.ndarray
    """The attack's decision per record: ``scores >= threshold``."""
    threshold: float
    """Decision threshold, chosen on the attacker's data (never on the candidates)."""
    queries: int
    """Inputs the target model evaluated during ``infer``."""
    seconds: float
    attack: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.scores.shape[0])

    def metrics(self, is_member: np.ndarray | Tensor | Sequence[bool]) -> MembershipMetrics:
        """ROC, AUC, TPR at low FPR, ... against the truth ``is_member``."""
        return membership_metrics(self.scores, np.asarray(is_member), predicted=self.is_member)


class MembershipAttack(Component):
    """Base of membership inference attacks.

    Subclasses implement :meth:`_fit` (returns the fitted state and a threshold) and
    :meth:`_score` (per-record scores for a batch), and say which outputs they need with
    ``needs_scores`` (probabilities) and ``needs_labels`` (true labels of the records).
    """

    family: ClassVar[str] = "membership"
    needs_scores: ClassVar[bool] = True
    seed: int
    shadow_architecture: ShadowArchitecture
    shadow_epochs: int
    shadow_lr: float
    shadow_batch_size: int

    @classmethod
    def unsupported_reason(cls, model: Classifier) -> str | None:
        """Why this attack cannot run on ``model`` (it needs scores the model does not
        give), or ``None`` when it can; :meth:`fit` raises it, experiments skip with it."""
        if cls.needs_scores and not model.has_scores:
            return f"{cls.__name__} needs the model's scores; this model answers labels only"
        return None

    # -- the public verbs ------------------------------------------------------------
    def fit(
        self,
        model: Classifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        *,
        train_fn: TrainFn | None = None,
        shadow_wrapper: Callable[[Classifier], Classifier] | None = None,
        map_fn: MapFn | None = None,
        executor: Executor | None = None,
        cache: TaskCache | None = None,
    ) -> FittedMembershipAttack:
        """Calibrate the attack on the attacker's data ``(x, y)``.

        Parameters
        ----------
        model : Classifier
            The target. Score-based attacks need ``model.has_scores``.
        x, y : arrays
            The attacker's data: inputs ``(n, *input_shape)`` in ``model.bounds`` and
            labels. Shadow-based attacks train shadow models on random halves of it;
            population-calibrated ones assume its records are not members.
        train_fn : callable, optional
            ``train_fn(x, y, seed) -> model`` trains a shadow model "like the target".
            Default (``shadow_architecture="same"``): a fresh copy of the target's own
            network, every parameter re-initialised, trained with advml's training loop
            and the attack's ``shadow_*`` settings; a warning names the fallback (the
            reference MLP) when the target cannot be copied (:func:`default_train_fn`).
        shadow_wrapper : callable, optional
            Applied to every shadow model, so that shadows answer in the target API's
            format (e.g. an output-hardening wrapper the attacker has observed).
        map_fn : callable, optional
            Runs the independent, seeded shadow-training tasks: ``map_fn(fn, tasks)``;
            the built-in ``map`` by default. Superseded by ``executor``.
        executor : Executor, optional
            Runs the shadow / reference training tasks
            (:func:`advml.runtime.executors.make_executor`: ``local``, ``process`` or
            ``ray``). The figures do not depend on it: every shadow is seeded by its own
            task seed and the results are gathered in task order.
        cache : TaskCache, optional
            Stores each finished shadow's measurements (LiRA / RMIA), so a fit killed
            midway resumes with the shadows not yet trained. Its prefix must fingerprint
            everything the shadows depend on besides the attack's settings and the data
            (the training recipe ``train_fn`` stands for).

        Returns
        -------
        FittedMembershipAttack
            Holds the calibration; this attack object is left unchanged.
        """
        self._check_model(model)
        xt, yt = _inputs(model, x, y, "x", "y")
        start = time.perf_counter()
        before = model.query_count
        if map_fn is not None and executor is not None:
            raise ValueError("pass map_fn or executor, not both")
        shadows = ShadowTraining(
            self,
            model,
            train_fn,
            shadow_wrapper,
            executor.map if executor is not None else map_fn if map_fn is not None else local_map,
            executor=executor,
            cache=cache,
        )
        with model.evaluating():
            state, threshold = self._fit(model, xt, yt, shadows)
        return FittedMembershipAttack(
            attack=self,
            state=state,
            threshold=float(threshold),
            fit_queries=model.query_count - before,
            fit_seconds=time.perf_counter() - start,
        )

    def _set_shadow_settings(
        self,
        *,
        shadow_architecture: ShadowArchitecture,
        shadow_epochs: int,
        shadow_lr: float,
        shadow_batch_size: int,
        seed: int,
    ) -> None:
        """Check and keep the settings every shadow-training attack has (its shadows'
        recipe and the seed of their halves and training)."""
        check_choice("shadow_architecture", shadow_architecture, ("same", "mlp", "cnn"))
        check_number("shadow_epochs", shadow_epochs, low=1, integer=True)
        check_number("shadow_lr", shadow_lr, low=0, low_inclusive=False)
        check_number("shadow_batch_size", shadow_batch_size, low=1, integer=True)
        check_number("seed", seed, low=0, integer=True)
        self.shadow_architecture = shadow_architecture
        self.shadow_epochs = shadow_epochs
        self.shadow_lr = shadow_lr
        self.shadow_batch_size = shadow_batch_size
        self.seed = seed

    # -- hooks -----------------------------------------------------------------------
    def _fit(
        self, model: Classifier, x: Tensor, y: Tensor, shadows: ShadowTraining
    ) -> tuple[Any, float]:
        """The fitted state and the threshold; ``shadows`` trains shadow models if the
        attack needs them."""
        raise NotImplementedError

    def _score(self, state: Any, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        raise NotImplementedError

    def _check_model(self, model: Classifier) -> None:
        check_classifier("model", model)
        reason = self.unsupported_reason(model)
        if reason is not None:
            others = [
                n
                for n in registry.available("membership")
                if registry.get("membership", n).unsupported_reason(model) is None
            ]
            raise UnsupportedModelError(
                f"{reason}. Membership attacks that work on this model: {', '.join(others)}."
            )


@dataclass(frozen=True, eq=False)
class FittedMembershipAttack:
    """A membership attack calibrated on the attacker's data; call :meth:`infer`."""

    attack: MembershipAttack
    state: Any = field(repr=False)
    threshold: float
    fit_queries: int
    """Target queries spent calibrating (0 for shadow-calibrated attacks)."""
    fit_seconds: float

    def infer(
        self, model: Classifier, x: np.ndarray | Tensor, y: np.ndarray | Tensor
    ) -> MembershipResult:
        """Score candidate records ``(x, y)`` against the target ``model``.

        Parameters
        ----------
        model : Classifier
            The target (the one the attack was fitted against, or one answering alike).
        x : array of shape (n, *model.input_shape)
            Candidate records, within ``model.bounds``. Not modified.
        y : array of shape (n,)
            Their true labels.

        Returns
        -------
        MembershipResult
            ``scores`` (higher = member), decisions, target queries spent.
        """
        attack = self.attack
        attack._check_model(model)
        xt, yt = _inputs(model, x, y, "x", "y")
        before = model.query_count
        start = time.perf_counter()
        with torch.no_grad(), model.evaluating():
            scores = np.asarray(attack._score(self.state, model, xt, yt), dtype=np.float64)
        return MembershipResult(
            scores=scores,
            is_member=scores >= self.threshold,
            threshold=self.threshold,
            queries=model.query_count - before,
            seconds=time.perf_counter() - start,
            attack=attack.name,
            params=attack.get_params(),
        )


# -- helpers shared by the attacks ----------------------------------------------------------


def _inputs(
    model: Classifier, x: np.ndarray | Tensor, y: np.ndarray | Tensor, name_x: str, name_y: str
) -> tuple[Tensor, Tensor]:
    xt = model.as_tensor(x, name=name_x)
    check_in_bounds(name_x, xt, model.bounds)
    y_arr = y if isinstance(y, np.ndarray | Tensor) else np.asarray(y)
    check_labels(name_y, y_arr, model.n_classes, xt.shape[0])
    yt = torch.as_tensor(y_arr) if isinstance(y_arr, np.ndarray) else y_arr.detach()
    return xt, yt.to(device=model.device, dtype=torch.long)


def model_logits(model: Classifier, x: Tensor, batch_size: int = 512) -> Tensor:
    """The target's logits ``(n, n_classes)`` on ``x`` in float64 (counted queries)."""
    parts = []
    with torch.no_grad(), model.evaluating():
        for i in range(0, x.shape[0], batch_size):
            parts.append(model.logits(x[i : i + batch_size]).double())
    return torch.cat(parts)


def stable_log_softmax(logits: Tensor) -> Tensor:
    """Log-softmax in float64 that keeps the top class's log-probability exact.

    ``log_softmax`` computes ``z - max - log(sum exp(z - max))``; for a confident record
    the sum is ``1 + eps`` and ``log`` rounds it to 0 once ``eps`` is below the float's
    resolution (float32: a logit margin of about 17; float64: about 37), so the most
    confident records all get ``log p_top = 0`` and tie. Here the top class's own term is
    left out of the sum and ``log1p`` is used: ``log p_top = -log1p(sum_{j != top}
    exp(z_j - z_top))``, exact to a relative 1e-16 however large the margin (while the
    result is above the smallest float64). Floored at :data:`LOG_FLOOR` so that zero
    probabilities (logits of ``-inf``) stay finite.
    """
    z = logits.double()
    top = z.argmax(dim=1, keepdim=True)
    shifted = z - z.gather(1, top)
    rest = shifted.exp().scatter(1, top, 0.0).sum(dim=1, keepdim=True)
    return (shifted - torch.log1p(rest)).clamp_min(LOG_FLOOR)


def log_probs(model: Classifier, x: Tensor, batch_size: int = 512) -> Tensor:
    """Log-probabilities ``(n, n_classes)`` of ``model`` on ``x`` (counted queries), in
    float64 from the logits by :func:`stable_log_softmax`, so that confident records keep
    their order (membership scores live in the last digits of confident predictions)."""
    return stable_log_softmax(model_logits(model, x, batch_size))


def logit_margin(logits: Tensor, labels: Tensor) -> Tensor:
    """``phi = log(p_y / (1 - p_y)) = z_y - log sum_{j != y} exp(z_j)``, float64.

    The logit-scaled confidence of Carlini et al. 2022 (§IV-B, eq. 4) written on the
    logits, where the normaliser cancels: no probability is formed, so it neither
    saturates at ``p_y = 1`` nor underflows at ``p_y = 0``. Shape ``(n,)``. A record whose
    other classes all have probability 0 gets the float64 maximum instead of ``+inf``.
    """
    z = logits.double()
    own = z.gather(1, labels[:, None])[:, 0]
    others = z.scatter(1, labels[:, None], float("-inf")).logsumexp(dim=1)
    big = torch.finfo(torch.float64).max
    return (own - others).clamp(-big, big)


def predicted_labels(model: Classifier, x: Tensor, batch_size: int = 512) -> Tensor:
    """Labels ``(n,)`` predicted by ``model`` (works for label-only models)."""
    parts = []
    with torch.no_grad(), model.evaluating():
        for i in range(0, x.shape[0], batch_size):
            parts.append(model.predict_labels(x[i : i + batch_size]))
    return torch.cat(parts)


def best_threshold(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """The threshold on ``score >= t`` with the best balanced accuracy between the two sets
    (the attacker's shadow members and non-members)."""
    candidates = np.unique(np.r_[scores_in, scores_out])
    tpr = 1.0 - np.searchsorted(np.sort(scores_in), candidates, side="left") / scores_in.size
    tnr = np.searchsorted(np.sort(scores_out), candidates, side="left") / scores_out.size
    return float(candidates[int(np.argmax(tpr + tnr))])


# -- shadow models ------------------------------------------------------------------------------


def half_splits(n_records: int, n_shadow: int, seed: int) -> np.ndarray:
    """Inclusion masks ``(n_shadow, n_records)``: each record is in exactly half of the
    shadow models (Carlini et al. 2022, §IV-A: balanced random halves)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7001]))
    draws = rng.uniform(size=(n_shadow, n_records))
    ranks = draws.argsort(axis=0).argsort(axis=0)
    return ranks < n_shadow / 2


def task_seeds(seed: int, n: int) -> list[int]:
    """Independent seeds for ``n`` tasks, derived from ``seed`` (same seed, same tasks)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence([int(seed), 7002]).spawn(n)]


def default_train_fn(
    target: Classifier,
    *,
    architecture: ShadowArchitecture,
    epochs: int,
    lr: float,
    batch_size: int,
    attack: str = "the attack",
) -> TrainFn:
    """A trainer of shadow models "like the target", trained with advml's training loop
    (Adam, no validation split, all ``epochs``).

    ``architecture="same"``: each shadow is a fresh copy of the target's own network
    (:meth:`~advml.models.TorchClassifier.clone`, then every parameter re-initialised with
    the shadow's seed, BatchNorm statistics included), with the target's bounds and
    normalisation. When that cannot be done (the target is not a PyTorch network, or a
    parameter has no ``reset_parameters()`` and would start from the target's trained
    values) the shadows are advml's reference MLP and a warning names the fallback.
    ``"mlp"`` / ``"cnn"``: advml's reference network of that name.
    """
    from advml.models.architectures import build
    from advml.models.training import train

    fallback = _same_architecture_problem(target) if architecture == "same" else None
    if fallback is not None:
        warnings.warn(
            f"{attack}: {fallback}, so its shadow models are advml's reference MLP instead "
            "of copies of the target's architecture, which can leak membership differently. "
            "Pass train_fn to train shadows like the target, or shadow_architecture='mlp' "
            "to choose the MLP explicitly",
            UserWarning,
            stacklevel=6,
        )
    name = "mlp" if architecture == "same" else architecture
    if name == "cnn" and len(target.input_shape) != 3:
        raise ValueError(
            f"shadow_architecture='cnn' needs image inputs (C, H, W), the target takes "
            f"{target.input_shape}; use 'mlp' or 'same'"
        )
    kwargs = {"input_shape": target.input_shape, "n_classes": target.n_classes}
    preprocessing = target.preprocessing if isinstance(target, WhiteBox) else None

    def fresh(seed: int) -> TorchClassifier:
        if architecture == "same" and fallback is None:
            # No problem found, so a PyTorch network (advml's training loop trains one).
            return require_torch(target, attack, "copies of its network").reinitialised(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build(name, **kwargs)
        return TorchClassifier(
            module,
            input_shape=target.input_shape,
            n_classes=target.n_classes,
            bounds=target.bounds,
            preprocessing=preprocessing,
            device=target.device,
        )

    def train_fn(x: np.ndarray, y: np.ndarray, seed: int) -> Classifier:
        shadow = fresh(seed)
        train(
            shadow,
            x,
            y,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            val_fraction=0.0,
            patience=None,
            seed=seed,
            show_progress=False,
        )
        return shadow

    return train_fn


def _same_architecture_problem(target: Classifier) -> str | None:
    """Why no untrained copy of ``target``'s network can be made, or None if it can."""
    if not isinstance(target, TorchClassifier):  # advml's training loop trains these
        return (
            f"the target is a {type(target).__name__}, not a PyTorch network advml can copy "
            "and re-initialise"
        )
    missed = reinitialise(target.clone().module, 0)
    if missed:
        return (
            f"the target's parameters {', '.join(missed)} have no reset_parameters() and "
            "would start from the trained values"
        )
    return None


_LOCAL = LocalExecutor()


@dataclass(frozen=True)
class _ShadowTask:
    index: int
    seed: int
    members: np.ndarray


def train_shadows(
    x: Tensor,
    y: Tensor,
    masks: np.ndarray,
    seeds: Sequence[int],
    train_fn: TrainFn,
    shadow_wrapper: Callable[[Classifier], Classifier] | None,
    map_fn: MapFn,
    desc: str,
) -> list[Classifier]:
    """Train one shadow per row of ``masks`` on the records it marks, as independent
    seeded tasks run through ``map_fn``."""
    xs, ys = x.cpu().numpy(), y.cpu().numpy()
    tasks = [_ShadowTask(i, int(seeds[i]), np.flatnonzero(masks[i])) for i in range(masks.shape[0])]

    def run(task: _ShadowTask) -> Classifier:
        model = train_fn(xs[task.members], ys[task.members], task.seed)
        return shadow_wrapper(model) if shadow_wrapper is not None else model

    # map is lazy: iterating its results advances the bar as each shadow finishes.
    return list(progress(map_fn(run, tasks), desc=desc, total=len(tasks)))


@dataclass(frozen=True)
class ShadowTraining:
    """How one :meth:`MembershipAttack.fit` trains shadow models: the caller's
    ``train_fn`` (or the attack's own ``shadow_*`` recipe), ``shadow_wrapper`` and
    ``map_fn``, handed to the attack's ``_fit``."""

    attack: MembershipAttack
    target: Classifier
    train_fn: TrainFn | None
    wrapper: Callable[[Classifier], Classifier] | None
    map_fn: MapFn
    executor: Executor | None = None
    cache: TaskCache | None = None

    def _trainer(self) -> TrainFn:
        # The default trainer is made only here: attacks that train no shadow (population
        # calibration) never see its fallback warning.
        if self.train_fn is not None:
            return self.train_fn
        attack = self.attack
        return default_train_fn(
            self.target,
            architecture=attack.shadow_architecture,
            epochs=attack.shadow_epochs,
            lr=attack.shadow_lr,
            batch_size=attack.shadow_batch_size,
            attack=type(attack).__name__,
        )

    def _check_size(self, x: Tensor) -> None:
        if x.shape[0] < 4:
            raise ValueError(
                f"x has {x.shape[0]} records; {type(self.attack).__name__} trains shadow "
                "models on halves of it and needs at least 4 (members and non-members in "
                "each half)"
            )

    def phi(
        self, x: Tensor, y: Tensor, masks: np.ndarray, desc: str
    ) -> tuple[np.ndarray, list[Classifier | None]]:
        """Train one shadow per row of ``masks`` and measure each on all of ``x``.

        Each task trains shadow ``i`` (seeded by ``task_seeds(attack.seed, len(masks))[i]``)
        and returns its logit-scaled confidence ``phi`` on every record of ``(x, y)``
        (:func:`logit_margin`), which is all LiRA and RMIA need from a shadow on the pool.
        The shadow models themselves come back only from the ``local`` executor (in this
        process they cost nothing); from process / Ray workers and from the cache only
        ``phi`` does (one float per record instead of a network), and their entries are
        ``None``.

        Returns
        -------
        phi : array (n_shadow, n)
        shadows : list of Classifier or None
        """
        self._check_size(x)
        trainer = self._trainer()
        seeds = task_seeds(self.attack.seed, masks.shape[0])
        xs, ys = x.cpu().numpy(), y.cpu().numpy()
        keep = self.executor is None or self.executor.name == "local"
        wrapper = self.wrapper
        tasks = [_ShadowTask(i, int(seeds[i]), np.flatnonzero(masks[i])) for i in range(len(masks))]

        def run(task: _ShadowTask) -> tuple[np.ndarray, Classifier | None]:
            model = trainer(xs[task.members], ys[task.members], task.seed)
            if wrapper is not None:
                model = wrapper(model)
            xt = torch.as_tensor(xs, device=model.device)
            yt = torch.as_tensor(ys, device=model.device, dtype=torch.long)
            with torch.no_grad(), model.evaluating():
                row = logit_margin(model_logits(model, xt), yt).cpu().numpy()
            return row, (model if keep else None)

        if self.executor is None and self.cache is None:
            results = list(progress(self.map_fn(run, tasks), desc=desc, total=len(tasks)))
        else:
            cache = self.cache
            if cache is not None:
                # A shadow depends on its recipe, mask, seed and the data, not on the
                # attack that asks for it: LiRA and RMIA with the same seed and count
                # train the same shadows, and the second reads the first's back.
                a = self.attack
                recipe = [a.shadow_architecture, a.shadow_epochs, a.shadow_lr, a.shadow_batch_size]
                digest = fingerprint([recipe, masks, seeds, xs, ys])
                cache = TaskCache(cache.cache, f"{cache.prefix}-{digest}")
            results = cached_map(
                self.executor if self.executor is not None else _LOCAL,
                run,
                tasks,
                cache=cache,
                encode=(lambda r: ({}, {"phi": r[0]})) if cache is not None else None,
                decode=(lambda meta, arrays: (arrays["phi"], None)) if cache is not None else None,
                desc=desc,
            )
        phi = np.stack([np.asarray(r[0], dtype=np.float64) for r in results])
        return phi, [r[1] for r in results]

    def train(self, x: Tensor, y: Tensor, masks: np.ndarray, desc: str) -> list[Classifier]:
        """One shadow per row of ``masks``, trained on the records it marks, shadow ``i``
        seeded by ``task_seeds(attack.seed, len(masks))[i]``.

        Raises
        ------
        ValueError
            With fewer than 4 records: a half then cannot hold members and non-members.
        """
        self._check_size(x)
        trainer = self._trainer()
        seeds = task_seeds(self.attack.seed, masks.shape[0])
        return train_shadows(x, y, masks, seeds, trainer, self.wrapper, self.map_fn, desc)
