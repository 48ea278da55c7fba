"""Transfer attacks: craft on a substitute model, use on the target.

Adversarial examples made for one model often fool another trained for the same task
(Szegedy et al. 2014; Papernot, McDaniel & Goodfellow 2016). An attacker without the
target's gradients, or without any scores, attacks a model of their own (the
substitute) white-box and sends the result to the target. Two forms:

* :func:`transfer` -- the Python API: give the target and a substitute you have (any
  advml Classifier), get a :class:`TransferResult` with the success on both and the
  transfer rate;
* :class:`TransferAttack` (registered as ``"transfer"``) -- the attack as plain
  settings for the CLI and the audit: the substitute is a model file, or, by default,
  a network trained on the target's labels of the attacked inputs grown by Jacobian-
  based data augmentation (Papernot, McDaniel, Goodfellow, Jha, Celik & Swami,
  "Practical Black-Box Attacks against Machine Learning", AsiaCCS 2017, Algorithm 1),
  which needs only the target's labels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.evasion.base import EvasionAttack
from advml.evasion.constraints import FeatureConstraints
from advml.metrics.norms import perturbation_norms
from advml.models.architectures import build
from advml.models.base import Classifier, check_classifier
from advml.models.torch import TorchClassifier
from advml.models.training import train
from advml.validation import check_choice, check_labels, check_number

__all__ = ["TransferAttack", "TransferResult", "transfer"]


@dataclass(frozen=True)
class TransferResult:
    """Adversarial examples crafted on a substitute and their effect on the target.

    Every array has one entry per sample except ``x_adv`` (the shape of ``x``).
    """

    x_adv: np.ndarray
    y: np.ndarray
    """Labels attacked (true labels, or the target's predictions; target labels when
    targeted)."""
    y_adv_substitute: np.ndarray
    y_adv_target: np.ndarray
    success_substitute: np.ndarray
    """The attack reached its goal on the substitute."""
    success_target: np.ndarray
    """The same examples reached it on the target."""
    l2: np.ndarray
    linf: np.ndarray
    seconds: float
    attack: str
    targeted: bool
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def success_rate(self) -> float:
        """Fraction of samples that fool the target."""
        return float(self.success_target.mean()) if self.n else 0.0

    @property
    def transfer_rate(self) -> float:
        """Of the examples that fool the substitute, the fraction that fool the target."""
        ok = self.success_substitute
        return float(self.success_target[ok].mean()) if ok.any() else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "targeted": self.targeted,
            "n": self.n,
            "success_rate_substitute": float(self.success_substitute.mean()) if self.n else 0.0,
            "success_rate_target": self.success_rate,
            "transfer_rate": self.transfer_rate,
            "median_l2": float(np.median(self.l2)) if self.n else math.nan,
            "median_linf": float(np.median(self.linf)) if self.n else math.nan,
            "seconds": self.seconds,
        }


def transfer(
    target: Classifier,
    substitute: Classifier,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor | None = None,
    *,
    attack: EvasionAttack | str = "pgd",
) -> TransferResult:
    """Craft adversarial examples on ``substitute`` with ``attack``; evaluate on ``target``.

    Parameters
    ----------
    target : Classifier
        The model the attacker wants to fool; only its labels are used.
    substitute : Classifier
        A model the attacker controls (same input shape and classes), attacked with
        ``attack`` (white-box if it has gradients).
    x : array of shape (n, *input_shape)
        Inputs within the target's bounds.
    y : array of shape (n,), optional
        True labels (untargeted) or target labels (targeted attack); default the
        target's own predictions (queries to the target).
    attack : EvasionAttack or str
        The attack to run on the substitute, or a registered name built with its
        default settings.

    Returns
    -------
    TransferResult

    Examples
    --------
    >>> from advml.evasion import PGD, transfer
    >>> out = transfer(target_model, my_model, x, y, attack=PGD(eps=0.3))  # doctest: +SKIP
    >>> out.transfer_rate  # doctest: +SKIP
    """
    if isinstance(attack, str):
        attack = registry.create("evasion", attack)
    if not isinstance(attack, EvasionAttack):
        raise TypeError(f"attack must be an EvasionAttack or a registered name, got {attack!r}")
    for name, model in (("target", target), ("substitute", substitute)):
        check_classifier(name, model)
    _check_compatible(target, substitute)
    start = time.perf_counter()
    xt = target.as_tensor(x, name="x")
    if y is None:
        if attack.targeted:
            raise ValueError("a targeted attack needs y: the target label of each input")
        with target.evaluating(), torch.no_grad():
            y = target.predict_labels(xt).cpu().numpy()
    y_arr = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    check_labels("y", y_arr, target.n_classes, xt.shape[0])
    on_sub = attack.generate(substitute, xt, y_arr)
    x_adv = torch.as_tensor(on_sub.x_adv).to(target.device)
    with target.evaluating(), torch.no_grad():
        y_target = target.predict_labels(x_adv).cpu().numpy()
    goal = y_target == y_arr if attack.targeted else y_target != y_arr
    _, l2, linf = perturbation_norms(xt, x_adv)
    return TransferResult(
        x_adv=x_adv.cpu().numpy(),
        y=np.asarray(y_arr, dtype=np.int64),
        y_adv_substitute=on_sub.y_adv,
        y_adv_target=y_target,
        success_substitute=on_sub.success,
        success_target=goal,
        l2=l2.cpu().numpy(),
        linf=linf.cpu().numpy(),
        seconds=time.perf_counter() - start,
        attack=attack.name,
        targeted=attack.targeted,
        params=attack.get_params(),
    )


def _check_compatible(target: Classifier, substitute: Classifier) -> None:
    if tuple(substitute.input_shape) != tuple(target.input_shape):
        raise ValueError(
            f"substitute takes inputs of shape {tuple(substitute.input_shape)}, the target "
            f"{tuple(target.input_shape)}; they must match"
        )
    if substitute.n_classes != target.n_classes:
        raise ValueError(
            f"substitute has {substitute.n_classes} classes, the target {target.n_classes}; "
            f"they must match"
        )


@registry.register("evasion", "transfer")
class TransferAttack(EvasionAttack):
    """Attack a substitute white-box and send its adversarial examples to the target.

    The target (the model given to ``generate``) is only asked for labels: to label the
    substitute's training data when no substitute file is given. ``result.queries``
    counts those labels per sample; ``result.success`` is success on the target.

    Parameters
    ----------
    substitute : str, optional
        Path of a model file (written by ``advml train``/``save_model``, or ``.skops``)
        to use as the substitute; loaded without running code from the file. Default:
        train a substitute MLP on the target's labels of the attacked inputs, grown by
        Jacobian-based augmentation (Papernot et al. 2017).
    attack : str
        Registered attack run on the substitute (default ``"pgd"``).
    eps : float
        Perturbation budget given to the attack and enforced on the result (>= 0).
    norm : {"inf", "2"}
        Norm of ``eps``.
    attack_settings : mapping, optional
        Other settings of ``attack`` (e.g. ``{"steps": 100}``).
    augment_rounds : int
        Rounds of Jacobian-based augmentation of the substitute's training data
        (>= 0); each doubles it, at one target label per new point.
    lambda_ : float
        Step of the augmentation, as a fraction of the bounds' width (> 0; Papernot et
        al. use 0.1).
    epochs : int
        Training epochs of the substitute per round (>= 1).
    targeted : bool
        Move towards the labels given as ``y``.
    constraints : FeatureConstraints or mapping, optional
        Features that may not change, may only be switched on, or have narrower ranges.
    seed : int, optional
        Seed of the substitute and of the attack; the same seed gives the same result.
    batch_size : int, optional
        Inputs per chunk (a substitute is trained per chunk); default all at once up to
        10,000.

    Examples
    --------
    >>> from advml import registry
    >>> attack = registry.create("evasion", "transfer", attack="pgd", eps=0.3)
    >>> result = attack.generate(target_model, x_test, y_test)  # doctest: +SKIP
    """

    needs_gradients = False
    needs_scores = False

    def __init__(
        self,
        *,
        substitute: str | None = None,
        attack: str = "pgd",
        eps: float = 0.3,
        norm: Literal["inf", "2"] = "inf",
        attack_settings: Mapping[str, Any] | None = None,
        augment_rounds: int = 2,
        lambda_: float = 0.1,
        epochs: int = 10,
        targeted: bool = False,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        seed: int | None = 0,
        batch_size: int | None = None,
    ) -> None:
        if substitute is not None and not isinstance(substitute, str):
            raise TypeError(
                f"substitute must be a path to a model file or None, got {substitute!r}"
            )
        if not isinstance(attack, str) or attack == "transfer":
            raise ValueError(
                f"attack must name a registered attack other than 'transfer', got {attack!r}"
            )
        check_choice("attack", attack, registry.available("evasion"))
        check_number("eps", eps, low=0)
        check_choice("norm", norm, ("inf", "2"))
        if attack_settings is not None and not isinstance(attack_settings, Mapping):
            raise TypeError(f"attack_settings must be a mapping or None, got {attack_settings!r}")
        check_number("augment_rounds", augment_rounds, low=0, integer=True)
        check_number("lambda_", lambda_, low=0, low_inclusive=False)
        check_number("epochs", epochs, low=1, integer=True)
        self._set_common(
            targeted=targeted, batch_size=batch_size, seed=seed, constraints=constraints
        )
        self.substitute = substitute
        self.attack = attack
        self.eps = eps
        self.norm = norm
        self.attack_settings = None if attack_settings is None else dict(attack_settings)
        self.augment_rounds = augment_rounds
        self.lambda_ = lambda_
        self.epochs = epochs
        self._inner()  # fail now, naming the setting, if the attack rejects its settings

    def _inner(self) -> EvasionAttack:
        schema = registry.schema("evasion", self.attack)
        settings: dict[str, Any] = {}
        for name, value in (
            ("eps", self.eps),
            ("norm", self.norm),
            ("targeted", self.targeted),
            ("seed", self.seed),
            ("constraints", self.constraints),
        ):
            if name in schema:
                settings[name] = value
        settings.update(self.attack_settings or {})
        try:
            inner = registry.create("evasion", self.attack, **settings)
        except (TypeError, ValueError) as err:
            raise type(err)(f"attack_settings for {self.attack!r}: {err}") from None
        return inner

    def _auto_batch_size(self, model: Classifier) -> int:
        return 10_000

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        queries = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        if self.substitute is not None:
            from advml.models.io import load_model

            substitute: Classifier = load_model(self.substitute, device=model.device)
            try:
                _check_compatible(model, substitute)
            except ValueError as err:
                raise ValueError(f"substitute {self.substitute!r}: {err}") from None
        else:
            substitute, queries = self._train_substitute(model, x)
        result = self._inner().generate(substitute, x, y)
        x_adv = torch.as_tensor(result.x_adv).to(device=x.device, dtype=x.dtype)
        return x_adv, queries

    def _train_substitute(self, model: Classifier, x: Tensor) -> tuple[TorchClassifier, Tensor]:
        """Papernot et al. (2017), Algorithm 1: label, train, augment along the
        substitute's Jacobian, repeat."""
        seed = 0 if self.seed is None else int(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build(
                "mlp",
                input_shape=tuple(model.input_shape),
                n_classes=model.n_classes,
                hidden=(128,),
            )
        sub = TorchClassifier(
            module.to(x.device),
            input_shape=tuple(model.input_shape),
            n_classes=model.n_classes,
            bounds=model.bounds,
            device=x.device,
        )
        low, high = model.bounds
        owner = torch.arange(x.shape[0], device=x.device)
        data = x.clone()
        with torch.no_grad():
            labels = model.predict_labels(data)
        queries = torch.ones(x.shape[0], dtype=torch.long, device=x.device)
        for round_ in range(self.augment_rounds + 1):
            train(
                sub,
                data,
                labels,
                epochs=self.epochs,
                val_fraction=0.0,
                patience=None,
                seed=seed + round_,
                show_progress=False,
            )
            if round_ == self.augment_rounds:
                break
            # x + lambda * sign(d F_sub[label](x) / dx): towards the substitute's boundary,
            # where the target's labels say most about its own.
            sub.module.eval()
            point = data.clone().requires_grad_(True)
            score = sub.logits(point).gather(1, labels[:, None]).sum()
            (grad,) = torch.autograd.grad(score, point)
            new = (data + self.lambda_ * (high - low) * grad.sign()).clamp(low, high)
            if self._constraints is not None:
                new = self._constraints.project(new, x[owner], model.bounds, final=True)
            with torch.no_grad():
                new_labels = model.predict_labels(new)
            queries.index_add_(0, owner, torch.ones_like(owner))
            data = torch.cat([data, new])
            labels = torch.cat([labels, new_labels])
            owner = torch.cat([owner, owner])
        sub.module.eval()
        for p in sub.module.parameters():
            p.requires_grad_(False)
        return sub, queries
