"""Honest evaluation of an input-cleansing defence: standard and adaptive attacks.

A defence evaluated only against the attack it was designed around proves little. Athalye,
Carlini & Wagner (ICML 2018) broke 7 of 9 ICLR 2018 defences by adapting the attack:
BPDA through non-differentiable steps and EOT over randomness. :func:`evaluate_defence`
runs the same attack twice, once as a library user would (plain gradients through the
pipeline) and once adaptively, and measures both against the defence as deployed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from torch import Tensor

from advml import registry
from advml.defences.preprocess.base import Preprocessor
from advml.defences.preprocess.defended import DefendedClassifier
from advml.evasion.base import EvasionAttack
from advml.models.base import Classifier
from advml.validation import check_labels, check_number

__all__ = [
    "CELL_KINDS",
    "MASKING_GAP",
    "CellKind",
    "DefenceEvaluation",
    "combine_cells",
    "defended_correct",
    "evaluate_defence",
]

CellKind = Literal["clean", "standard", "adaptive"]

MASKING_GAP = 0.10
"""Robust-accuracy gap (fraction) that counts as "only looks strong"/"no real gain"."""


@dataclass(frozen=True)
class DefenceEvaluation:
    """Clean and robust accuracy of a defended model, standard and adaptive.

    Every accuracy is measured on the defence as deployed (one random draw per query for
    randomised preprocessors), over all ``n`` inputs: an input misclassified without
    attack counts as not robust.
    """

    defence: str
    """The preprocessors, as text."""
    attack: str
    eps: float
    n: int
    clean_accuracy: float
    """Accuracy of the defended model on clean inputs."""
    standard_robust_accuracy: float
    """Accuracy under the attack with plain gradients through the pipeline."""
    adaptive_robust_accuracy: float
    """Accuracy under the adaptive attack (BPDA and, for randomised defences, EOT)."""
    worst_case_robust_accuracy: float
    """Fraction of inputs that withstand both attacks (the per-input worst case)."""
    undefended_clean_accuracy: float
    undefended_robust_accuracy: float
    """Accuracy of the bare model under the same attack."""
    adaptive_method: str
    """How the adaptive attack saw the defence ("autograd", "BPDA", "EOT", "BPDA+EOT")."""
    eot_samples: int
    verdict: str
    """Plain words: real robustness, no gain, or gradient masking."""
    seconds: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gradient_masking(self) -> bool:
        """The standard attack overstates robustness by at least :data:`MASKING_GAP`."""
        return self.standard_robust_accuracy - self.adaptive_robust_accuracy >= MASKING_GAP

    @property
    def robust_gain(self) -> float:
        """Adaptive robust accuracy minus the undefended model's (fraction)."""
        return self.adaptive_robust_accuracy - self.undefended_robust_accuracy

    def summary(self) -> dict[str, Any]:
        """Plain numbers and the verdict, for reports."""
        return {
            "defence": self.defence,
            "attack": self.attack,
            "eps": self.eps,
            "n": self.n,
            "clean_accuracy": self.clean_accuracy,
            "standard_robust_accuracy": self.standard_robust_accuracy,
            "adaptive_robust_accuracy": self.adaptive_robust_accuracy,
            "worst_case_robust_accuracy": self.worst_case_robust_accuracy,
            "undefended_clean_accuracy": self.undefended_clean_accuracy,
            "undefended_robust_accuracy": self.undefended_robust_accuracy,
            "adaptive_method": self.adaptive_method,
            "eot_samples": self.eot_samples,
            "gradient_masking": self.gradient_masking,
            "robust_gain": self.robust_gain,
            "verdict": self.verdict,
            "seconds": self.seconds,
        }


def evaluate_defence(
    model: Classifier,
    defence: Preprocessor | Sequence[Preprocessor],
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    *,
    attack: str | EvasionAttack = "pgd",
    eps: float = 0.3,
    steps: int = 40,
    eot_samples: int | None = None,
    seed: int = 0,
    undefended_accuracy: tuple[float, float] | None = None,
) -> DefenceEvaluation:
    """Clean, standard-attack and adaptive-attack accuracy of ``model`` behind ``defence``.

    Parameters
    ----------
    model : Classifier
        The undefended model (white-box: the adaptive attack needs its gradients).
    defence : Preprocessor or sequence of Preprocessor
        The input-cleansing pipeline, fitted where it needs fitting.
    x, y : arrays
        Test inputs ``(n, *input_shape)`` and their true labels ``(n,)``.
    attack : str or EvasionAttack
        A registered gradient attack's name (built with ``eps``, ``steps`` and ``seed``
        where it has them) or a ready attack object.
    eps : float
        Perturbation budget when ``attack`` is a name.
    steps : int
        Attack iterations when ``attack`` is a name.
    eot_samples : int, optional
        Draws per query for the adaptive attack on a randomised defence; default
        :data:`~advml.defences.preprocess.defended.DEFAULT_EOT_SAMPLES`.
    seed : int
        Seeds the defence's randomness and the attack.
    undefended_accuracy : (float, float), optional
        The bare model's clean and robust accuracy on ``x, y`` under this same attack,
        when already measured (the audit evaluates several defences against one
        undefended run); default: measured here.

    Returns
    -------
    DefenceEvaluation
    """
    import time

    start = time.perf_counter()
    atk = _build_attack(attack, eps=eps, steps=steps, seed=seed)
    y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    check_labels("y", y_np, model.n_classes, len(x))
    if undefended_accuracy is None:
        undefended_clean = float(_correct(model, x, y_np).mean())
        undefended_robust = float(_correct(model, atk.generate(model, x, y_np).x_adv, y_np).mean())
    else:
        undefended_clean, undefended_robust = (float(v) for v in undefended_accuracy)
        for name, v in (("clean", undefended_clean), ("robust", undefended_robust)):
            check_number(f"undefended_accuracy ({name})", v, low=0, high=1)
    cells = {
        kind: defended_correct(
            model, defence, x, y_np, kind=kind, attack=atk, eot_samples=eot_samples, seed=seed
        )
        for kind in CELL_KINDS
    }
    return combine_cells(
        model,
        defence,
        attack=atk,
        clean=cells["clean"],
        standard=cells["standard"],
        adaptive=cells["adaptive"],
        undefended_accuracy=(undefended_clean, undefended_robust),
        eot_samples=eot_samples,
        seed=seed,
        seconds=time.perf_counter() - start,
        eps=float(getattr(atk, "eps", eps)),
    )


CELL_KINDS: tuple[CellKind, ...] = ("clean", "standard", "adaptive")
"""The three independent measurements of :func:`evaluate_defence`, in its order."""


def _correct(m: Classifier, xs: np.ndarray | Tensor, y: np.ndarray) -> np.ndarray:
    pred = m.predict(xs)
    return np.asarray(pred.detach().cpu() if isinstance(pred, Tensor) else pred) == y


def defended_correct(
    model: Classifier,
    defence: Preprocessor | Sequence[Preprocessor],
    x: np.ndarray | Tensor,
    y: np.ndarray,
    *,
    kind: CellKind,
    attack: EvasionAttack | None = None,
    eot_samples: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """One cell of :func:`evaluate_defence`: per input, whether the defended model is right.

    ``kind`` is ``"clean"`` (no attack), ``"standard"`` (``attack`` with plain gradients
    through the pipeline) or ``"adaptive"`` (BPDA, and EOT with ``eot_samples`` draws for
    a randomised defence). Each cell builds its own freshly seeded defended models, so
    the three are independent of each other and of the order they run in (an audit runs
    them as separate tasks, anywhere): the attack runs on the defence seeded with
    ``seed``, and the adversarial inputs are judged by one seeded ``seed + 1`` (clean),
    ``seed + 2`` (standard) or ``seed + 3`` (adaptive), as deployed. ``attack`` is
    needed by the two attacked cells only.

    Returns
    -------
    array of bool, shape (n,)
    """
    if kind not in CELL_KINDS:
        raise ValueError(f"kind must be one of {list(CELL_KINDS)}, got {kind!r}")
    if kind == "clean":
        return _correct(DefendedClassifier(model, defence, seed=seed + 1), x, y)
    if attack is None:
        raise ValueError(f"the {kind} cell needs the attack: give attack=")
    deployed = DefendedClassifier(model, defence, seed=seed)
    target = deployed if kind == "standard" else deployed.adaptive(eot_samples)
    x_adv = attack.generate(target, x, y).x_adv
    judge = DefendedClassifier(model, defence, seed=seed + (2 if kind == "standard" else 3))
    return _correct(judge, x_adv, y)


def combine_cells(
    model: Classifier,
    defence: Preprocessor | Sequence[Preprocessor],
    *,
    attack: EvasionAttack,
    clean: np.ndarray,
    standard: np.ndarray,
    adaptive: np.ndarray,
    undefended_accuracy: tuple[float, float],
    eot_samples: int | None = None,
    seed: int = 0,
    seconds: float = 0.0,
    eps: float | None = None,
) -> DefenceEvaluation:
    """The :class:`DefenceEvaluation` of the three cells of :func:`defended_correct`
    (boolean arrays over the same inputs), beside the undefended ``(clean, robust)``
    accuracy under the same attack; ``eps`` defaults to the attack's."""
    undefended_clean, undefended_robust = (float(v) for v in undefended_accuracy)
    deployed = DefendedClassifier(model, defence, seed=seed)
    used = deployed.adaptive(eot_samples).eot_samples
    clean_acc = float(np.mean(clean))
    standard_acc, adaptive_acc = float(np.mean(standard)), float(np.mean(adaptive))
    method = _method(deployed, used)
    names = ", ".join(repr(p) for p in deployed.preprocessors)
    ev_eps = float(getattr(attack, "eps", float("nan")) if eps is None else eps)
    verdict = _verdict(
        standard=standard_acc,
        adaptive=adaptive_acc,
        undefended=undefended_robust,
        clean=clean_acc,
        undefended_clean=undefended_clean,
        method=method,
        eps=ev_eps,
    )
    return DefenceEvaluation(
        defence=names,
        attack=attack.name,
        eps=ev_eps,
        n=len(clean),
        clean_accuracy=clean_acc,
        standard_robust_accuracy=standard_acc,
        adaptive_robust_accuracy=adaptive_acc,
        worst_case_robust_accuracy=float((np.asarray(standard) & np.asarray(adaptive)).mean()),
        undefended_clean_accuracy=undefended_clean,
        undefended_robust_accuracy=undefended_robust,
        adaptive_method=method,
        eot_samples=used,
        verdict=verdict,
        seconds=seconds,
        params={"attack": attack.get_params(), "seed": seed},
    )


def _build_attack(
    attack: str | EvasionAttack, *, eps: float, steps: int, seed: int
) -> EvasionAttack:
    if isinstance(attack, EvasionAttack):
        built = attack
    elif isinstance(attack, str):
        check_number("eps", eps, low=0)
        check_number("steps", steps, low=1, integer=True)
        schema = registry.schema("evasion", attack)
        wanted = {"eps": eps, "steps": steps, "seed": seed}
        built = registry.create(
            "evasion", attack, **{k: v for k, v in wanted.items() if k in schema}
        )
    else:
        raise TypeError(
            f"attack must be a registered attack's name or an EvasionAttack, got "
            f"{type(attack).__name__}"
        )
    if not built.needs_gradients:
        raise ValueError(
            f"attack {built.name!r} does not use gradients, so BPDA/EOT cannot adapt it; "
            f"give a gradient attack such as 'pgd'"
        )
    if built.targeted:
        raise ValueError("attack must be untargeted (targeted=False) to measure robust accuracy")
    return built


def _method(defended: DefendedClassifier, eot_samples: int) -> str:
    parts = []
    if not defended.differentiable:
        parts.append("BPDA")
    if defended.randomised and eot_samples > 1:
        parts.append("EOT")
    return "+".join(parts) or "autograd"


def _pct(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{100 * v:.1f}%"


def _verdict(
    *,
    standard: float,
    adaptive: float,
    undefended: float,
    clean: float,
    undefended_clean: float,
    method: str,
    eps: float,
) -> str:
    cost = undefended_clean - clean
    cost_text = f" It costs {100 * cost:.1f} points of clean accuracy." if cost >= 0.005 else ""
    if standard - adaptive >= MASKING_GAP:
        return (
            f"Only looks strong: the standard attack leaves {_pct(standard)} accuracy at "
            f"eps={eps:g}, but the adaptive attack ({method}) brings it to {_pct(adaptive)} "
            f"(undefended: {_pct(undefended)}). The apparent robustness is gradient "
            f"masking, not security.{cost_text}"
        )
    if adaptive <= undefended - MASKING_GAP:
        return (
            f"Worse than no defence: under the adaptive attack ({method}) accuracy is "
            f"{_pct(adaptive)} at eps={eps:g}, below the undefended model's "
            f"{_pct(undefended)}.{cost_text}"
        )
    if adaptive - undefended < MASKING_GAP:
        return (
            f"No real protection: under the adaptive attack ({method}) accuracy is "
            f"{_pct(adaptive)} at eps={eps:g}, within {100 * MASKING_GAP:.0f} points of the "
            f"undefended model's {_pct(undefended)}.{cost_text}"
        )
    return (
        f"Some robustness remains: {_pct(adaptive)} accuracy under the adaptive attack "
        f"({method}) at eps={eps:g}, against {_pct(undefended)} undefended. This is an "
        f"upper bound: a stronger attack can only leave less, not a guarantee.{cost_text}"
    )
