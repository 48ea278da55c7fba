"""The worst case over several attacks: per sample, the smallest successful perturbation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from advml import registry
from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.evasion.base import (
    EpsScale,
    EvasionAttack,
    Norm,
    budget_ran_out,
    queries_left,
    spending,
)
from advml.models.base import Classifier, clip_bounds
from advml.validation import check_choice, check_number

__all__ = ["DEFAULT_MEMBERS", "Strongest"]

Member = tuple[str, dict[str, Any]]

DEFAULT_MEMBERS: tuple[Member, ...] = (
    ("apgd", {"loss": "ce"}),
    ("apgd", {"loss": "dlr"}),
    ("square", {}),
)
"""APGD-CE, APGD-DLR and Square: AutoAttack's diverse trio (Croce & Hein 2020) without
the targeted APGD and FAB."""

# Settings the ensemble sets for every member so that all share one threat model.
_SHARED = ("eps", "norm", "targeted", "seed")


@registry.register("evasion", "strongest")
class Strongest(EvasionAttack):
    """Run several attacks and keep, per sample, the successful one with the smallest norm.

    Every member attacks every input within the same ε-ball (``eps`` and ``norm`` of the
    ensemble); for each input the result is the successful adversarial example of
    smallest ``norm``-size over all members, or the first member's output where none
    succeeded. So the ensemble's robust accuracy is at most that of each member: it is
    the worst case a defender must plan for, in the spirit of AutoAttack (Croce & Hein,
    ICML 2020). Query counts add up over the members. Under a query budget each member
    keeps back the queries of its own check; when the budget runs out the members run so
    far are kept (the chunk is not lost) and the rest are not run.

    Parameters
    ----------
    attacks : sequence of (name, settings) pairs
        The members: a registered evasion attack's name and its settings (a mapping;
        ``eps``, ``norm``, ``targeted`` and ``seed`` are set by the ensemble). A bare
        name means default settings. Default: APGD-CE, APGD-DLR, Square.
    eps : float
        Radius of the allowed perturbation (>= 0), for every member.
    norm : {"inf", "2"}
        Norm of the ε-ball and of the size by which successes are compared.
    targeted : bool
        Move towards the labels given as ``y`` (every member must support it).
    seed : int, optional
        Seed given to every member that has one.
    eps_scale : {"absolute", "relative"}, default "absolute"
        ``eps`` in the data's units, or as a fraction of each feature's range (the ball
        then scales per feature; see :data:`~advml.evasion.base.EpsScale`).
    batch_size : int, optional
        Inputs per chunk; default sized to the input.

    Examples
    --------
    >>> from advml.evasion import Strongest
    >>> ensemble = Strongest(attacks=[("apgd", {"loss": "ce"}), ("pgd", {"steps": 40})])
    >>> result = ensemble.generate(model, x_test, y_test)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        attacks: Sequence[tuple[str, dict[str, Any]]] = DEFAULT_MEMBERS,
        eps: float = 0.3,
        norm: Norm = "inf",
        targeted: bool = False,
        seed: int | None = 0,
        eps_scale: EpsScale = "absolute",
        batch_size: int | None = None,
    ) -> None:
        check_number("eps", eps, low=0)
        check_choice("norm", norm, ("inf", "2"))
        self._set_common(targeted=targeted, batch_size=batch_size, seed=seed, eps_scale=eps_scale)
        members = _normalise(attacks)
        self.attacks = attacks
        self.eps = eps
        self.norm = norm
        # Built once here so bad members fail at construction; never changed by use.
        self._members = [self._build(name, settings) for name, settings in members]

    def _build(self, name: str, settings: dict[str, Any]) -> EvasionAttack:
        if name == self.name:
            raise ValueError("attacks cannot contain 'strongest' itself")
        schema = registry.schema("evasion", name)
        shared = {
            "eps": self.eps,
            "norm": self.norm,
            "targeted": self.targeted,
            "seed": self.seed,
        }
        if "eps" not in schema:
            raise ValueError(
                f"attacks: {name!r} has no eps setting; the ensemble compares attacks within "
                f"one eps-ball, so use norm-bounded attacks (e.g. 'apgd', 'pgd', 'square')"
            )
        if self.targeted and "targeted" not in schema:
            raise ValueError(f"attacks: {name!r} cannot run targeted")
        if self.norm != "inf" and "norm" not in schema:
            raise ValueError(f"attacks: {name!r} has no norm setting; it cannot run norm='2'")
        attack = registry.create(
            "evasion",
            name,
            **{k: v for k, v in shared.items() if k in schema},
            **settings,
        )
        return attack

    def _check_model(self, model: Classifier) -> None:
        # The ensemble needs what its members need (each also checks the model's type).
        for member in self._members:
            try:
                member._check_model(model)
            except UnsupportedModelError as err:
                raise UnsupportedModelError(
                    f"Strongest cannot run its member {member.name!r} on this model: {err} "
                    f"Choose members this model allows with attacks=[...]."
                ) from None

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        best = torch.full((n,), float("inf"), device=x.device)
        out: Tensor | None = None
        # The members share the ensemble's seed: each starts from the chunk's fresh
        # generator state, so it draws what it would draw attacking this chunk alone.
        start = generator.get_state()
        for member in self._members:
            left = queries_left(model)
            if left is not None and left <= n:
                # Nothing left for a member beyond its own check: keep what was found.
                budget_ran_out()
                break
            gen = torch.Generator(device=generator.device)
            gen.set_state(start)
            try:
                # Keep this member's check of its outputs out of what it may spend.
                with spending(n) as scope:
                    xa, q = member._run(model, x, y, gen)
            except QueryBudgetExceededError:
                # A member that does not shrink its batches ran out: the members
                # before it are kept.
                budget_ran_out()
                break
            xa = member._finalise(xa.detach(), x, clip_bounds(model))
            queries += q
            with torch.no_grad():
                pred = model.predict_labels(xa)
            queries += 1
            fooled = pred == y if self.targeted else pred != y
            delta = (xa - x).flatten(1)
            size = delta.abs().amax(1) if self.norm == "inf" else delta.norm(dim=1)
            better = fooled & (size < best)
            if out is None:
                out = xa.clone()
            out[better] = xa[better]
            best[better] = size[better]
            if scope.short:
                budget_ran_out()
                break
        if out is None:  # the budget paid for no member: the inputs as they are
            out = x.clone()
        return out, queries


def _normalise(attacks: Any) -> list[Member]:
    """``attacks`` as a list of (name, settings dict); raises naming ``attacks``."""
    if isinstance(attacks, str | bytes) or not isinstance(attacks, Sequence) or not attacks:
        raise ValueError(
            f"attacks must be a non-empty list of (name, settings) pairs, got {attacks!r}"
        )
    known = registry.available("evasion")
    members: list[Member] = []
    for item in attacks:
        if isinstance(item, str):
            name, settings = item, {}
        elif (
            isinstance(item, Sequence)
            and not isinstance(item, str)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], Mapping)
        ):
            name, settings = item[0], dict(item[1])
        else:
            raise ValueError(f"attacks: each member must be a (name, settings) pair, got {item!r}")
        if name not in known:
            raise ValueError(
                f"attacks: unknown evasion attack {name!r}; available: {', '.join(known)}"
            )
        fixed = sorted(set(settings) & set(_SHARED))
        if fixed:
            raise ValueError(
                f"attacks: {name!r} sets {fixed}; set these on the ensemble instead, for "
                f"every member alike"
            )
        members.append((name, settings))
    return members
