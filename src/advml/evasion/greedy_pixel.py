"""Greedy feature (pixel) search: the simplest query-only attack.

Needs the model's scores, never its gradients: each round tries every single-feature
change and keeps the one that lowers the attacked class's score the most, until the
label flips or a budget of changed features is spent. Brute force, but it finds
adversarial examples that change few features, and it works on any model that returns
scores, trees, forests and nearest neighbours included. It is the "greedy search for
the decision boundary by changing pixels, minimising changes" baseline; JSMA (Papernot
et al. 2016) is the gradient-guided version of the same search.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from advml import registry
from advml.evasion.base import EvasionAttack, affordable
from advml.evasion.constraints import FeatureConstraints
from advml.models.base import Classifier
from advml.validation import check_number

__all__ = ["GreedyPixel", "margin_score"]

# Candidate inputs per forward pass: about 1M input values (4 MB of float32).
_QUERY_VALUES = 1_000_000


def margin_score(logits: Tensor, y: Tensor, targeted: bool) -> Tensor:
    """Per sample: how far from the goal, negative once it is reached.

    Untargeted: the label's score minus the best other class's (Carlini & Wagner 2017,
    eq. 6 without the clamp); targeted: the best other class's minus the target's.
    """
    own = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return other - own if targeted else own - other


@registry.register("evasion", "greedy_pixel")
class GreedyPixel(EvasionAttack):
    """Change one feature at a time, always the one that helps most (scores only).

    Each round evaluates, for every sample still to fool, every admissible change of a
    single feature (to its lower or upper bound, or by ``±step``) in batches, and applies
    the change that lowers the margin between the true class's score and the best other
    class's the most (targeted: raises the target's). It stops per sample when the
    label flips or ``max_changes`` features have been changed. ``result.l0`` is the
    number of features changed; ``result.queries`` counts every candidate evaluated.

    Parameters
    ----------
    max_changes : int, optional
        Budget of changed features per sample (>= 1); default 10% of the input's
        features, at least 1.
    step : float, optional
        Change a feature by ``±step`` (a feature may then change several times, and the
        search stops early on a sample once no change lowers its margin). Default: set
        the feature to its lower or upper bound, each feature at most once.
    targeted : bool
        Move towards the labels given as ``y``.
    constraints : FeatureConstraints or mapping, optional
        Features that may not change, may only be switched on, or have narrower ranges.
    batch_size : int, optional
        Samples per chunk; default sized to the input.

    Examples
    --------
    >>> from advml.evasion import GreedyPixel
    >>> result = GreedyPixel(max_changes=20).generate(model, x_test, y_test)  # doctest: +SKIP
    >>> result.l0[result.success]  # pixels changed per fooled input  # doctest: +SKIP
    """

    randomised = False  # draws nothing: chunks need not follow the random blocks

    needs_gradients = False
    needs_scores = True

    def __init__(
        self,
        *,
        max_changes: int | None = None,
        step: float | None = None,
        targeted: bool = False,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        if max_changes is not None:
            check_number("max_changes", max_changes, low=1, integer=True)
        if step is not None:
            check_number("step", step, low=0, low_inclusive=False)
        self._set_common(targeted=targeted, batch_size=batch_size, constraints=constraints)
        self.max_changes = max_changes
        self.step = step

    def _budget(self, n_features: int) -> int:
        if self.max_changes is not None:
            return int(self.max_changes)
        return max(1, int(0.1 * n_features))

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        flat = x.reshape(n, -1)
        d = flat.shape[1]
        budget = self._budget(d)
        rules = self._constraints
        if rules is not None:
            low, high = (t.reshape(n, d) for t in rules.limits(x, model.bounds))
        else:
            low = torch.full_like(flat, model.bounds[0])
            high = torch.full_like(flat, model.bounds[1])
        x_adv = flat.clone()
        changed = torch.zeros(n, d, dtype=torch.bool, device=x.device)
        with torch.no_grad():
            score = margin_score(model.logits(x_adv.view_as(x)), y, self.targeted)
        queries = torch.ones(n, dtype=torch.long, device=x.device)
        active = score >= 0
        span = float(model.bounds[1] - model.bounds[0])
        rounds = budget if self.step is None else budget * max(1, math.ceil(span / self.step))
        chunk = max(1, _QUERY_VALUES // d)
        for _ in range(rounds):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            cur = x_adv[idx]
            # Candidate values: (samples, 2 directions, features).
            if self.step is None:
                values = torch.stack([low[idx], high[idx]], dim=1)
                allowed = ~changed[idx]
            else:
                values = torch.stack(
                    [(cur - self.step).clamp(min=low[idx]), (cur + self.step).clamp(max=high[idx])],
                    dim=1,
                )
                full = changed[idx].sum(1, keepdim=True) >= budget
                allowed = ~full | changed[idx]
            valid = (values != cur[:, None, :]) & allowed[:, None, :]
            cand = valid.nonzero()  # rows (sample, direction, feature), in order
            if cand.shape[0] == 0:
                active[idx] = False
                break
            # Where the model's budget ends within this round, the candidates it still
            # pays for are evaluated; a sample then takes the best of those it got.
            paid = affordable(model, cand)
            cut = paid.shape[0] < cand.shape[0]
            if paid.shape[0] == 0:
                break
            if cut:
                valid = torch.zeros_like(valid)
                valid[paid[:, 0], paid[:, 1], paid[:, 2]] = True
                cand = paid
            scores = torch.full(valid.shape, math.inf, device=x.device)
            found = torch.empty(cand.shape[0], device=x.device)
            with torch.no_grad():
                for start in range(0, cand.shape[0], chunk):
                    c = cand[start : start + chunk]
                    trial = cur[c[:, 0]].clone()
                    rows = torch.arange(c.shape[0], device=x.device)
                    trial[rows, c[:, 2]] = values[c[:, 0], c[:, 1], c[:, 2]]
                    logits = model.logits(trial.view(-1, *x.shape[1:]))
                    found[start : start + chunk] = margin_score(
                        logits, y[idx][c[:, 0]], self.targeted
                    )
            scores[valid] = found
            queries[idx] += valid.flatten(1).sum(1)
            best_score, best = scores.flatten(1).min(1)
            direction, feature = best // d, best % d
            has_move = torch.isfinite(best_score)
            if self.step is not None:
                # With steps a sample could oscillate; stop where no change helps.
                has_move &= best_score < score[idx]
            rows = torch.arange(idx.numel(), device=x.device)
            new = values[rows, direction, feature]
            movers = idx[has_move]
            x_adv[movers, feature[has_move]] = new[has_move]
            changed[movers, feature[has_move]] = True
            score[movers] = best_score[has_move]
            going = has_move & (best_score >= 0)
            if self.step is None:
                going &= changed[idx].sum(1) < budget
            active[idx] = going
            if cut:
                break
        return x_adv.view_as(x), queries
