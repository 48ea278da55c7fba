"""Equation solving (Tramèr, Zhang, Juels, Reiter & Ristenpart, USENIX Security 2016, §4.1)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from advml import registry
from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.extraction.base import Evaluation, ExtractionAttack, _Run
from advml.models.architectures import build
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier
from advml.validation import check_choice, check_number

__all__ = ["EquationSolving"]

# advml's adapters and hardened APIs floor what they hide (top-k, rounded to 0) at a
# probability of 1e-12 while the top class keeps at least 1/k: an answer 1e-12 * k times
# below its top class or less is taken as hidden (a genuine one that small only costs an
# equation).
_HIDDEN_BELOW_TOP = math.log(1e-12) + 1e-3
# Beyond this many unknowns the joint system of partly hidden answers is not built densely.
_MAX_JOINT_UNKNOWNS = 4000


@registry.register("extraction", "equation_solving")
class EquationSolving(ExtractionAttack):
    """Recover a linear or logistic model's parameters exactly from its scores.

    For a logistic or softmax regression, and any model whose scores are a linear
    function ``z = W x + b`` of the input, the log-probabilities differ from the logits
    by one offset per input (the log of the softmax normaliser), so differences between
    classes are affine in ``x``:

    ``log p_j(x) - log p_0(x) = (w_j - w_0) · x + (b_j - b_0)``   (Tramèr et al. 2016, §4.1)

    Each query therefore gives ``k - 1`` linear equations, one in each class's ``d + 1``
    unknowns ``(w_j - w_0, b_j - b_0)``. With ``d + 1`` affinely independent queries every
    class's system is square and non-singular, so all parameters are recovered exactly,
    up to the shared offset ``(w_0, b_0)`` that no query can reveal (softmax is invariant to
    it) and that changes no prediction. Fewer queries cannot do: with ``n <= d`` queries
    each class's ``d + 1`` unknowns meet at most ``d`` equations, so some direction ``v``
    with ``X̃ v = 0`` can be added to ``w_j - w_0`` without changing any answer while
    changing predictions elsewhere. Hence ``d + 1`` queries is the minimum for binary
    (``k = 2``) and multiclass models alike; the stolen model is the logits
    ``[0, (w_j - w_0) · x + b_j - b_0]``.

    Answers that hide classes (top-k) or round probabilities to 0 give fewer equations;
    those classes' entries are dropped and the remaining equations, taken relative to each
    answer's top class, are solved jointly by least squares. Rounding makes the
    equations approximate; more ``queries`` than ``d + 1`` average the error. A label-only
    victim gives no equations at all and is refused.

    Parameters
    ----------
    queries : int, optional
        Number of queries (>= 2); default ``d + 1``, the minimum (d = input features).
        More give a least-squares fit and a residual that tells whether the victim is
        linear in its logits.
    design : {"axes", "random"}
        Where to query: ``"axes"`` the middle of the bounds and one step along each
        feature axis (the best-conditioned system), extra queries uniform at random;
        ``"random"`` all uniform at random in the bounds, as in Tramèr et al.
    seed : int, optional
        Seed of the random queries.

    Raises
    ------
    UnsupportedModelError
        From ``extract`` when the victim answers labels only.
    ValueError
        From ``extract`` when ``queries < d + 1`` or the answers hide too much to determine
        the parameters (the message says how many unknowns were determined).

    Examples
    --------
    >>> from advml.extraction import EquationSolving
    >>> result = EquationSolving().extract(victim, x_eval=x_test)  # doctest: +SKIP
    >>> result.queries, result.fidelity  # doctest: +SKIP
    (31, 1.0)
    """

    needs_scores = True

    def __init__(
        self,
        *,
        queries: int | None = None,
        design: Literal["axes", "random"] = "axes",
        seed: int | None = 0,
    ) -> None:
        if queries is not None:
            check_number("queries", queries, low=2, integer=True)
        check_choice("design", design, ("axes", "random"))
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        self.queries = queries
        self.design = design
        self.seed = seed

    def _check_victim(self, victim: Classifier) -> None:
        if not victim.has_scores:
            raise UnsupportedModelError(
                f"equation solving is impossible against {type(victim).__name__}: it answers "
                f"labels only, and a label gives no equation in the model's parameters (the "
                f"attack needs probabilities or scores, Tramèr et al. 2016 §4.1). Use "
                f"learning-based stealing instead, e.g. registry.create('extraction', "
                f"'copycat', outputs='labels'), which needs many more queries"
            )

    def _run(
        self,
        victim: Classifier,
        pool: Tensor | None,
        evaluation: Evaluation,
        generator: torch.Generator,
    ) -> _Run:
        d = math.prod(victim.input_shape)
        k = victim.n_classes
        n = d + 1 if self.queries is None else int(self.queries)
        if n < d + 1:
            raise ValueError(
                f"queries={n} cannot determine a linear model of d={d} features: each class "
                f"has d + 1 = {d + 1} unknowns and a query gives one equation in them; "
                f"use queries >= {d + 1}"
            )
        left = getattr(victim, "queries_left", None)
        if left is not None and n > left:
            # All d + 1 answers or none are of use: refuse before spending any.
            raise QueryBudgetExceededError(
                f"equation solving needs {n} queries (d + 1 = {d + 1} for d={d} features) "
                f"but the victim's query budget has {left} left; nothing was asked"
            )
        x = self._design(n, d, victim.bounds, generator)
        answers = []
        with torch.no_grad():
            for i in range(0, n, 256):
                xb = x[i : i + 256].to(device=victim.device, dtype=torch.float32)
                answers.append(victim.logits(xb.reshape(-1, *victim.input_shape)).double().cpu())
        logp = torch.log_softmax(torch.cat(answers), dim=1)
        # The queries as the victim saw them (float32), with a column of ones for the bias.
        xt = torch.cat([x.float().double(), torch.ones(n, 1, dtype=torch.float64)], dim=1)
        below_top = logp - logp.max(dim=1, keepdim=True).values
        revealed = below_top > _HIDDEN_BELOW_TOP + math.log(k)
        if bool(revealed.all()):
            # Full answers: class 0 is the reference of every equation, and the classes
            # decouple into k - 1 systems sharing one matrix.
            solution = torch.linalg.lstsq(xt, logp[:, 1:] - logp[:, :1]).solution
            rank = int(torch.linalg.matrix_rank(xt)) * (k - 1)
            residual = xt @ solution - (logp[:, 1:] - logp[:, :1])
            v = solution.T  # (k - 1, d + 1)
        else:
            v, rank, residual = self._joint(xt, logp, revealed, d, k)
        needed = (d + 1) * (k - 1)
        if rank < needed:
            raise ValueError(
                f"the victim's answers to {n} queries determine only {rank} of the {needed} "
                f"unknown parameters: it hides or rounds away too many probabilities "
                f"({int((~revealed).sum())} of {n * k} answers were hidden). Raise queries "
                f"(currently {n}) or use learning-based stealing ('copycat')"
            )
        stolen = self._linear_model(victim, v, d, k)
        point = evaluation.measure(stolen, n)
        return _Run(
            stolen=stolen,
            outputs="scores",
            curve=(point,),
            details={
                "unknowns": needed,
                "rank": rank,
                "max_residual": float(residual.abs().max()) if residual.numel() else 0.0,
                "hidden_answers": int((~revealed).sum()),
                "minimum_queries": d + 1,
            },
        )

    def _design(
        self, n: int, d: int, bounds: tuple[float, float], generator: torch.Generator
    ) -> Tensor:
        low, high = bounds
        rand = low + (high - low) * torch.rand((n, d), generator=generator, dtype=torch.float64)
        if self.design == "random":
            return rand
        # x0 in the middle of the box, x0 + h e_i at its faces: an orthogonal design whose
        # system is as well conditioned as any.
        middle = (low + high) / 2
        axes = torch.full((d + 1, d), middle, dtype=torch.float64)
        axes[1:] += torch.eye(d, dtype=torch.float64) * (high - middle)
        return torch.cat([axes, rand[d + 1 :]])

    @staticmethod
    def _joint(
        xt: Tensor, logp: Tensor, revealed: Tensor, d: int, k: int
    ) -> tuple[Tensor, int, Tensor]:
        # Unknowns v_1..v_{k-1} (v_0 = 0); an answer i gives, for each revealed class j
        # other than its top class r, (v_j - v_r) · x̃_i = log p_ij - log p_ir.
        unknowns = (k - 1) * (d + 1)
        if unknowns > _MAX_JOINT_UNKNOWNS:
            raise ValueError(
                f"the victim hides some probabilities and the {unknowns} unknowns are too many "
                f"to solve jointly here (at most {_MAX_JOINT_UNKNOWNS}); use learning-based "
                f"stealing ('copycat')"
            )
        rows, rhs = [], []
        top = logp.argmax(dim=1)
        for i in range(xt.shape[0]):
            r = int(top[i])
            for j in revealed[i].nonzero().flatten().tolist():
                if j == r:
                    continue
                row = torch.zeros(unknowns, dtype=torch.float64)
                if j > 0:
                    row[(j - 1) * (d + 1) : j * (d + 1)] += xt[i]
                if r > 0:
                    row[(r - 1) * (d + 1) : r * (d + 1)] -= xt[i]
                rows.append(row)
                rhs.append(logp[i, j] - logp[i, r])
        if not rows:
            return torch.zeros(k - 1, d + 1, dtype=torch.float64), 0, torch.zeros(0)
        a = torch.stack(rows)
        b = torch.stack(rhs)[:, None]
        solution = torch.linalg.lstsq(a, b).solution
        rank = int(torch.linalg.matrix_rank(a))
        return solution.reshape(k - 1, d + 1), rank, a @ solution - b

    @staticmethod
    def _linear_model(victim: Classifier, v: Tensor, d: int, k: int) -> TorchClassifier:
        # The reference MLP without hidden layers is flatten + one linear layer ("out"),
        # which advml.models.save_model can write and read back.
        module = build("mlp", input_shape=victim.input_shape, n_classes=k, hidden=())
        layer = module.get_submodule("out")
        assert isinstance(layer, nn.Linear)
        with torch.no_grad():
            weight = torch.cat([torch.zeros(1, d + 1, dtype=torch.float64), v.cpu()])
            layer.weight.copy_(weight[:, :d].float())
            layer.bias.copy_(weight[:, d].float())
        return TorchClassifier(
            module,
            input_shape=victim.input_shape,
            n_classes=k,
            bounds=victim.bounds,
            device=victim.device,
        )
