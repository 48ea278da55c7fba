"""A membership-inference experiment: members, non-members, attacks, numbers.

What ``advml membership`` runs, as a Python API. A :class:`MembershipSetup` says who the
members are and what the attacker holds, either for a target trained here on half of a
pool (:meth:`MembershipSetup.trained_here`, Carlini et al. 2022's setting: the attacker
knows the pool, not the split) or for a given model taken to be trained on a dataset's
training split (:meth:`MembershipSetup.from_splits`). :func:`evaluate_membership` runs
attacks against it and returns a :class:`MembershipReport`.

Examples
--------
>>> from advml.data import load_dataset
>>> from advml.privacy.membership import (
...     MembershipSetup, evaluate_membership, membership_attacks)
>>> setup = MembershipSetup.trained_here(load_dataset("digits"))  # doctest: +SKIP
>>> report = evaluate_membership(setup, membership_attacks(["lira"]))  # doctest: +SKIP
>>> report.outcomes["lira"].metrics.tpr_at_1_fpr  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from advml import registry
from advml.models.architectures import build
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier
from advml.models.training import train
from advml.privacy.membership.base import MembershipAttack, TrainFn
from advml.privacy.membership.lira import LiRA
from advml.privacy.membership.metrics import MembershipMetrics
from advml.privacy.membership.rmia import RMIA
from advml.validation import check_number

if TYPE_CHECKING:  # annotations only: the families do not import advml.data (DESIGN §2)
    from advml.data import Dataset
    from advml.runtime.executors import Executor

__all__ = [
    "AttackOutcome",
    "MembershipReport",
    "MembershipSetup",
    "evaluate_membership",
    "membership_attacks",
]

View = Callable[[Classifier], Classifier]
"""How the attacker sees a model (an access restriction, an output defence); applied to
the target and to every shadow, so that shadows answer in the target API's format."""


@dataclass(frozen=True)
class MembershipSetup:
    """Who the members are, and what the attacker holds."""

    model: Classifier
    """The target, as trained (before any :data:`View`)."""
    dataset: str
    x: np.ndarray
    """Candidates scored: members and non-members."""
    y: np.ndarray
    is_member: np.ndarray
    """The truth per candidate (the attacker never sees it)."""
    x_attacker: np.ndarray
    """The attacker's own data (calibration of the threshold and shadow attacks)."""
    y_attacker: np.ndarray
    x_pool: np.ndarray
    """LiRA's pool: the candidates (and, for a given model, the attacker's data)."""
    y_pool: np.ndarray
    train_fn: TrainFn | None
    """Trains a shadow exactly as the target was trained, when known; else None (the
    attacks' default: a fresh copy of the target's architecture)."""
    story: str
    """One sentence: where the members come from."""
    info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def trained_here(
        cls,
        dataset: Dataset,
        *,
        architecture: str = "mlp",
        target_size: int = 500,
        epochs: int = 60,
        lr: float = 1e-3,
        batch_size: int = 64,
        seed: int = 0,
        show_progress: bool = True,
    ) -> MembershipSetup:
        """Train a target on ``target_size`` records of a pool of twice that many.

        The pool is drawn from the whole dataset (training and test splits); a random
        half trains the target (members), the other half are non-members; the attacker
        holds the records outside the pool and knows the pool (Carlini et al. 2022, §IV).
        The target is advml's reference ``architecture`` trained for all ``epochs`` (no
        early stopping, so that it fits its records), and shadows are trained alike.

        Raises
        ------
        ValueError
            If the dataset has fewer than ``2 * target_size`` records.
        """
        check_number("target_size", target_size, low=2, integer=True)
        check_number("epochs", epochs, low=1, integer=True)
        check_number("seed", seed, low=0, integer=True)
        x_all = np.concatenate([dataset.x_train, dataset.x_test])
        y_all = np.concatenate([dataset.y_train, dataset.y_test])
        n = target_size
        if 2 * n > len(x_all):
            raise ValueError(
                f"target_size {n} needs a pool of {2 * n} records; {dataset.name} has {len(x_all)}"
            )
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x_all))
        pool, rest = order[: 2 * n], order[2 * n :]
        truth = np.zeros(2 * n, bool)
        truth[rng.choice(2 * n, n, replace=False)] = True

        def train_fn(xs: np.ndarray, ys: np.ndarray, shadow_seed: int) -> TorchClassifier:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(shadow_seed)
                module = build(
                    architecture, input_shape=dataset.input_shape, n_classes=dataset.n_classes
                )
            net = TorchClassifier(
                module,
                input_shape=dataset.input_shape,
                n_classes=dataset.n_classes,
                bounds=dataset.bounds,
            )
            train(
                net,
                xs,
                ys,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                val_fraction=0.0,
                patience=None,
                seed=shadow_seed,
                show_progress=show_progress,
                desc="training",
            )
            return net

        x, y = x_all[pool], y_all[pool]
        model = train_fn(x[truth], y[truth], seed)
        train_acc = float((model.predict(x[truth]) == y[truth]).mean())
        test_acc = float((model.predict(x[~truth]) == y[~truth]).mean())
        model.reset_queries()
        return cls(
            model=model,
            dataset=dataset.name,
            x=x,
            y=y,
            is_member=truth,
            x_attacker=x_all[rest],
            y_attacker=y_all[rest],
            x_pool=x,
            y_pool=y,
            train_fn=train_fn,
            story=f"a {architecture} trained here for {epochs} epochs on {n} records "
            f"(members; accuracy {train_acc:.1%}) of a pool of {2 * n}, the other {n} "
            f"non-members (accuracy {test_acc:.1%}); the attacker's own data: {len(rest)} "
            "other records",
            info={
                "source": "trained",
                "architecture": architecture,
                "epochs": epochs,
                "train_accuracy": train_acc,
                "non_member_accuracy": test_acc,
            },
        )

    @classmethod
    def from_splits(
        cls,
        model: Classifier,
        dataset: Dataset,
        *,
        n_eval: int = 500,
        seed: int = 0,
        name: str = "the model",
    ) -> MembershipSetup:
        """A given model, taken to be trained on ``dataset``'s training split.

        ``n_eval`` training records (members) and as many test records (non-members) are
        scored; the other test records are the attacker's own data. ``name`` says which
        model in the story (e.g. its file).

        Raises
        ------
        ValueError
            If the test split is too small to give non-members and attacker data.
        """
        check_number("n_eval", n_eval, low=1, integer=True)
        check_number("seed", seed, low=0, integer=True)
        rng = np.random.default_rng(seed)
        n_in = min(n_eval, len(dataset.x_train))
        n_out = min(n_eval, len(dataset.x_test) - 2)
        if n_out < 1:
            raise ValueError(f"dataset {dataset.name!r} has too few test records to score")
        members = rng.choice(len(dataset.x_train), n_in, replace=False)
        order = rng.permutation(len(dataset.x_test))
        non_members, rest = order[:n_out], order[n_out:]
        x = np.concatenate([dataset.x_train[members], dataset.x_test[non_members]])
        y = np.concatenate([dataset.y_train[members], dataset.y_test[non_members]])
        x_aux, y_aux = dataset.x_test[rest], dataset.y_test[rest]
        return cls(
            model=model,
            dataset=dataset.name,
            x=x,
            y=y,
            is_member=np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)],
            x_attacker=x_aux,
            y_attacker=y_aux,
            x_pool=np.concatenate([x, x_aux]),
            y_pool=np.concatenate([y, y_aux]),
            train_fn=None,
            story=f"{name}, taken to be trained on the training split of {dataset.name}: "
            f"{n_in} training records (members) against {n_out} test records "
            f"(non-members); the attacker's own data: the other {len(rest)} test records",
            info={"source": "file", "file": name},
        )

    @property
    def n_members(self) -> int:
        return int(self.is_member.sum())

    @property
    def n_non_members(self) -> int:
        return int((~self.is_member).sum())


@dataclass(frozen=True)
class AttackOutcome:
    """One attack's result against the setup, or why it was skipped."""

    attack: str
    metrics: MembershipMetrics | None
    """None when skipped."""
    queries: int = 0
    """Target queries, calibration and inference together."""
    seconds: float = 0.0
    skipped: str = ""

    def summary(self) -> dict[str, Any]:
        """Plain numbers (the JSON row of ``advml membership``)."""
        if self.metrics is None:
            return {"skipped": self.skipped}
        return {
            **self.metrics.summary(),
            "queries": self.queries,
            "seconds": self.seconds,
            "exposed_at_0.1%_fpr": self.metrics.exposed(0.001),
        }


@dataclass(frozen=True)
class MembershipReport:
    """Every attack's outcome against one :class:`MembershipSetup`."""

    setup: MembershipSetup
    target: Classifier
    """The target as the attacker saw it (after the view)."""
    outcomes: dict[str, AttackOutcome]

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers: the target, the counts, each attack's row and ROC curve."""
        return {
            "target": dict(self.setup.info),
            "n_members": self.setup.n_members,
            "n_non_members": self.setup.n_non_members,
            "attacks": {name: o.summary() for name, o in self.outcomes.items()},
            "roc": self.curves(),
        }

    def curves(self) -> dict[str, Any]:
        """ROC curves of the attacks that ran, by name."""
        return {n: o.metrics.curve() for n, o in self.outcomes.items() if o.metrics is not None}


def membership_attacks(
    names: Sequence[str],
    settings: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    n_shadow: int | None = None,
) -> dict[str, MembershipAttack]:
    """Registered membership attacks by name, each given the ``settings`` it has.

    Parameters
    ----------
    names : sequence of str
        Registered names (``registry.available("membership")``).
    settings : mapping, optional
        Settings applied to every attack that has them; one no attack has is an error.
    seed : int
        Seed of every attack that takes one (unless ``settings`` gives it).
    n_shadow : int, optional
        Shadow models of the attacks that train several (``shadow``, ``lira``), >= 2,
        and reference models of ``rmia``.

    Raises
    ------
    ValueError
        For an unknown name, a setting no chosen attack has, or ``n_shadow < 2``.
    """
    known = registry.available("membership")
    unknown = [a for a in names if a not in known]
    if unknown:
        raise ValueError(f"attacks has unknown names {unknown}; available: {', '.join(known)}")
    if n_shadow is not None:
        check_number("n_shadow", n_shadow, low=2, integer=True)
    extra = dict(settings or {})
    attacks: dict[str, MembershipAttack] = {}
    for name in names:
        schema = registry.schema("membership", name)
        chosen = {k: v for k, v in extra.items() if k in schema}
        if "seed" in schema:
            chosen.setdefault("seed", seed)
        if n_shadow is not None and "n_shadow" in schema:
            chosen["n_shadow"] = n_shadow
        if n_shadow is not None and "n_reference" in schema:
            chosen["n_reference"] = n_shadow
        attack = registry.create("membership", name, **chosen)
        attacks[name] = attack
    ignored = sorted(set(extra) - {k for n in attacks for k in registry.schema("membership", n)})
    if ignored:
        raise ValueError(f"settings {ignored}: no chosen attack has such a setting")
    return attacks


def evaluate_membership(
    setup: MembershipSetup,
    attacks: Mapping[str, MembershipAttack],
    *,
    view: View | None = None,
    executor: Executor | None = None,
) -> MembershipReport:
    """Run each attack against the setup's target and measure it against the truth.

    Each attack is calibrated on the attacker's data (LiRA on the pool, which holds the
    candidates: its online form needs them), scores the candidates, and is measured
    (AUC, TPR at 0.1% / 1% FPR, ...). Shadows are trained by ``setup.train_fn`` when the
    setup knows how the target was trained, else by each attack's default.

    Parameters
    ----------
    setup : MembershipSetup
        Target, candidates and truth, attacker's data.
    attacks : mapping of name to MembershipAttack
        E.g. from :func:`membership_attacks`. Score-based attacks against a label-only
        view are skipped with the reason.
    view : callable, optional
        How the attacker sees a model (e.g. an access restriction or an output defence),
        applied to the target and to every shadow.
    executor : Executor, optional
        Trains the shadow / reference models (``local``, ``process`` or ``ray``,
        :func:`advml.runtime.executors.make_executor`); the figures do not depend on it.

    Returns
    -------
    MembershipReport
    """
    target = view(setup.model) if view is not None else setup.model
    outcomes: dict[str, AttackOutcome] = {}
    for name, attack in attacks.items():
        reason = attack.unsupported_reason(target)
        if reason is not None:
            outcomes[name] = AttackOutcome(name, None, skipped=reason)
            continue
        if isinstance(attack, LiRA | RMIA):  # the online attacks need the candidates in the pool
            fit_x, fit_y = setup.x_pool, setup.y_pool
        else:
            fit_x, fit_y = setup.x_attacker, setup.y_attacker
        fitted = attack.fit(
            target,
            fit_x,
            fit_y,
            train_fn=setup.train_fn,
            shadow_wrapper=view,
            executor=executor,
        )
        result = fitted.infer(target, setup.x, setup.y)
        outcomes[name] = AttackOutcome(
            name,
            result.metrics(setup.is_member),
            queries=result.queries + fitted.fit_queries,
            seconds=result.seconds + fitted.fit_seconds,
        )
    return MembershipReport(setup=setup, target=target, outcomes=outcomes)
