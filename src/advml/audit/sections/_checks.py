"""Checks for a flawed robustness evaluation, run beside the evasion and defence figures.

A robust accuracy is only an upper bound on the truth when the attacks behind it work.
Carlini et al. ("On Evaluating Adversarial Robustness", 2019, §5) and Athalye et al.
("Obfuscated Gradients Give a False Sense of Security", ICML 2018, §3.1) list the signs
that they did not: an unbounded attack that does not reach ~0 % accuracy, a single-step
attack stronger than an iterative one, accuracy that does not fall as ε grows, more
steps or restarts that still help, a black-box attack stronger than the white-box one,
gradients that vanish at the inputs, and randomness attacked without EOT. Each check
here states its rule, its evidence and ``pass``/``fail``/``not checked``; a failed one
turns the section's verdict into "evaluation not conclusive" with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from advml import registry
from advml.audit.sections.base import AuditContext, Level, Verdict
from advml.metrics.intervals import proportion

if TYPE_CHECKING:
    from advml.models.base import Classifier

__all__ = ["N_CHECK", "defence_checks", "evasion_checks", "inconclusive"]

N_CHECK = 64
"""Inputs the checks that attack again use (the first of the evaluated ones)."""
UNBOUNDED_MAX = 0.1
"""An attack with ε = the whole input range must leave at most this accuracy."""
TOLERANCE = 0.02
"""Accuracy differences up to this are noise for the ordering checks (single vs iterative,
ε monotone, white vs black box)."""
CONVERGENCE_GAIN = 0.05
"""Doubling the steps and adding restarts may lower accuracy by at most this."""
ZERO_GRADIENT_MAX = 0.1
"""Largest share of inputs whose loss gradient is exactly zero (Athalye et al. 2018)."""
_GRADIENT_FREE = ("square", "hopskipjump", "boundary", "transfer", "greedy_pixel")


def _check(name: str, title: str, status: str, evidence: str) -> dict[str, Any]:
    return {"name": name, "title": title, "status": status, "evidence": evidence}


def _attack_acc(
    model: Classifier, attack_name: str, params: Mapping[str, Any], x: np.ndarray, y: np.ndarray
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    attack = registry.create("evasion", attack_name, **dict(params))
    result = attack.generate(model, x, y)
    y_adv = np.asarray(result.y_adv)
    return {"robust": int((y_adv == y).sum()), "n": len(y)}, {"y_adv": y_adv}


def _gradient_step(
    model: Classifier, x: np.ndarray, y: np.ndarray
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per input: the L1 norm of the cross-entropy loss's input gradient, and whether two
    calls on the same inputs give the same scores (a randomised model does not)."""
    xt = model.as_tensor(x).clone().requires_grad_(True)
    with model.evaluating():
        logits = model.logits(xt)
        loss = torch.nn.functional.cross_entropy(
            logits, torch.as_tensor(y, device=logits.device), reduction="sum"
        )
        (grad,) = torch.autograd.grad(loss, xt)
        with torch.no_grad():
            again = model.logits(model.as_tensor(x))
    norms = grad.detach().abs().flatten(1).sum(1).double().cpu().numpy()
    changes = float((again.double() - logits.detach().double()).abs().max().cpu())
    return {"max_change": changes}, {"grad_l1": norms}


def evasion_checks(
    ctx: AuditContext,
    attacks: list[dict[str, Any]],
    step_arrays: Mapping[tuple[str, float], Mapping[str, np.ndarray]],
) -> list[dict[str, Any]]:
    """The checklist of the evasion section (Carlini et al. 2019 §5)."""
    model = ctx.model
    n = min(N_CHECK, len(ctx.y))
    x, y = ctx.x[:n], ctx.y[:n]
    low, high = model.bounds
    ref_eps = ctx.config.reference_eps
    seed = ctx.config.seed
    checks: list[dict[str, Any]] = []
    points = {a["name"]: {p["eps"]: p for p in a["points"]} for a in attacks}

    # 1. An unbounded attack succeeds.
    if model.has_gradients:
        span = float(high - low)
        params = {"eps": span, "steps": 20, "step_size": span / 10, "seed": seed}
        meta, _ = ctx.step(
            "check-unbounded", params, partial(_attack_acc, model, "pgd", params, x, y)
        )
        iv = proportion(meta["robust"], meta["n"])
        checks.append(
            _check(
                "unbounded",
                "An unbounded attack drives accuracy to ~0",
                "pass" if iv.value <= UNBOUNDED_MAX else "fail",
                f"PGD-20 with ε = the whole input range ({span:g}) leaves {iv.words()} "
                f"correct (rule: at most {UNBOUNDED_MAX:.0%}).",
            )
        )
    else:
        checks.append(
            _check(
                "unbounded",
                "An unbounded attack drives accuracy to ~0",
                "not checked",
                "no gradients",
            )
        )

    # 2. Iterative at least as strong as single-step.
    single = points.get("fgsm", {})
    iterative = {k: v for k, v in points.items() if k in ("pgd", "bim", "apgd", "strongest")}
    worse = [
        (name, eps)
        for name, pts in iterative.items()
        for eps, p in pts.items()
        if eps in single and p["robust_accuracy"] > single[eps]["robust_accuracy"] + TOLERANCE
    ]
    if single and iterative:
        checks.append(
            _check(
                "iterative",
                "Iterative attacks at least as strong as single-step",
                "fail" if worse else "pass",
                "FGSM leaves lower accuracy than "
                + ", ".join(f"{a.upper()} at ε = {e:g}" for a, e in worse)
                if worse
                else "At every ε both ran, the iterative attack leaves at most "
                f"{TOLERANCE:.0%} more accuracy than FGSM.",
            )
        )
    else:
        checks.append(
            _check(
                "iterative",
                "Iterative attacks at least as strong as single-step",
                "not checked",
                "needs FGSM and an iterative attack in the config's attacks",
            )
        )

    # 3. Accuracy falls as ε grows.
    rising = []
    for name, pts in points.items():
        ordered = sorted(pts.items())
        for (e1, p1), (e2, p2) in pairwise(ordered):
            if p2["robust_accuracy"] > p1["robust_accuracy"] + TOLERANCE:
                rising.append(f"{name.upper()} from ε = {e1:g} to {e2:g}")
    checks.append(
        _check(
            "monotone",
            "Accuracy falls as ε grows",
            "fail" if rising else "pass",
            "Accuracy rises with ε for " + "; ".join(rising)
            if rising
            else f"No attack's accuracy rises by more than {TOLERANCE:.0%} as ε grows.",
        )
    )

    # 4. More steps and restarts do not help much (convergence).
    pgd_eps = [e for e in points.get("pgd", {}) if 0 < e <= ref_eps + 1e-12]
    if pgd_eps and model.has_gradients and ("pgd", max(pgd_eps)) in step_arrays:
        eps = max(pgd_eps)
        base = points["pgd"][eps]
        steps = int(base["params"].get("steps", 40))
        params = {"eps": eps, "steps": 2 * steps, "restarts": 2, "seed": seed}
        meta, _ = ctx.step(
            "check-convergence", params, partial(_attack_acc, model, "pgd", params, x, y)
        )
        before = int((step_arrays[("pgd", eps)]["y_adv"][:n] == y).sum())
        gain = (before - meta["robust"]) / n
        checks.append(
            _check(
                "convergence",
                "More steps and restarts do not help much",
                "fail" if gain > CONVERGENCE_GAIN else "pass",
                f"On the first {n} inputs at ε = {eps:g}, PGD-{steps} leaves {before} correct "
                f"and PGD-{2 * steps} with 2 restarts {meta['robust']} (rule: at most "
                f"{CONVERGENCE_GAIN:.0%} fewer).",
            )
        )
    else:
        checks.append(
            _check(
                "convergence",
                "More steps and restarts do not help much",
                "not checked",
                "needs PGD at a non-zero ε up to the reference ε, with gradients",
            )
        )

    # 5. White-box at least as strong as black-box.
    at_ref: dict[str, float] = {}
    for name, pts in points.items():
        eligible = [e for e in pts if 0 < e <= ref_eps + 1e-12]
        if eligible:
            at_ref[name] = pts[max(eligible)]["robust_accuracy"]
    white = {k: v for k, v in at_ref.items() if k not in _GRADIENT_FREE}
    black = {k: v for k, v in at_ref.items() if k in _GRADIENT_FREE}
    if white and black:
        stronger = [k for k, v in black.items() if v < min(white.values()) - TOLERANCE]
        checks.append(
            _check(
                "white_box",
                "White-box at least as strong as black-box",
                "fail" if stronger else "pass",
                (
                    f"{', '.join(s.upper() for s in stronger)} (no gradients) leave(s) less "
                    f"accuracy than the best white-box attack ({min(white.values()):.1%})"
                )
                if stronger
                else "The white-box attacks leave at most the black-box attacks' accuracy.",
            )
        )
    else:
        checks.append(
            _check(
                "white_box",
                "White-box at least as strong as black-box",
                "not checked",
                "needs a white-box and a gradient-free attack (e.g. square) in the attacks",
            )
        )

    # 6 and 7. Gradients that vanish; randomness without EOT.
    if model.has_gradients:
        meta, arrays = ctx.step("check-gradients", None, partial(_gradient_step, model, x, y))
        zero = int((arrays["grad_l1"] == 0).sum())
        checks.append(
            _check(
                "gradients",
                "Loss gradients do not vanish at the inputs (no gradient masking)",
                "fail" if zero / n > ZERO_GRADIENT_MAX else "pass",
                f"The loss gradient is exactly zero at {zero} of {n} inputs (rule: at most "
                f"{ZERO_GRADIENT_MAX:.0%}); a non-differentiable step such as input "
                "quantisation zeroes it (Athalye et al. 2018 §3.1).",
            )
        )
        randomised = meta["max_change"] > 1e-5
        eot = any("eot" in str(a.get("params", {})).lower() for a in attacks)
        checks.append(
            _check(
                "randomness",
                "A randomised model is attacked with EOT",
                "fail" if randomised and not eot else "pass",
                (
                    f"Two calls on the same inputs differ by up to {meta['max_change']:.3g} "
                    "in the logits: the model is randomised"
                    + (
                        " and the attacks average over it (EOT)."
                        if eot
                        else ", and no attack used EOT (Athalye et al. 2018 §4)."
                    )
                )
                if randomised
                else "The model gives the same answers on repeated calls (not randomised).",
            )
        )
    return checks


def defence_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The defence section's checklist: each randomised defence attacked with EOT, and the
    adaptive attack (BPDA/EOT) at least as strong as the standard one."""
    checks: list[dict[str, Any]] = []
    for r in rows:
        name = r["name"].replace("_", " ")
        if r.get("randomised"):
            ok = (
                int(r.get("eot_samples", 1)) >= 2
                and "eot" in str(r.get("adaptive_method", "")).lower()
            )
            checks.append(
                _check(
                    f"eot-{r['name']}",
                    f"{name}: randomised, attacked with EOT",
                    "pass" if ok else "fail",
                    f"adaptive attack {r.get('adaptive_method')} with {r.get('eot_samples')} "
                    "samples per step",
                )
            )
        std, ada = r.get("standard_robust_accuracy"), r.get("adaptive_robust_accuracy")
        if std is not None and ada is not None:
            checks.append(
                _check(
                    f"adaptive-{r['name']}",
                    f"{name}: the adaptive attack at least as strong as the standard one",
                    "fail" if ada > std + TOLERANCE else "pass",
                    f"standard {std:.1%}, adaptive {ada:.1%}; the figure used is the lower",
                )
            )
    return checks


def inconclusive(verdict: Verdict, checks: list[dict[str, Any]]) -> Verdict:
    """The verdict, or "evaluation not conclusive" with the reasons when a check failed.

    A failed check means the attacks may not have worked, so a robust figure is not
    evidence of robustness: the level is at best ``warn`` ("fail" stays).
    """
    failed = [c for c in checks if c["status"] == "fail"]
    if not failed or verdict.level == "unknown":
        return verdict
    reasons = "; ".join(f"{c['title'].lower()} failed ({c['evidence']})" for c in failed)
    level: Level = "fail" if verdict.level == "fail" else "warn"
    return Verdict(
        level,
        "evaluation not conclusive",
        f"{verdict.text} The evaluation is not conclusive: {reasons}.",
        {**verdict.numbers, "checks_failed": [c["name"] for c in failed]},
    )
