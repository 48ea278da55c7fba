"""Model-stealing removal through :class:`advml.extraction.Copycat`, the API only."""

from __future__ import annotations

from torch import Tensor

from advml import extraction, registry
from advml.models.base import Classifier
from advml.validation import check_number
from advml.watermark.removal.base import RemovalAttack

__all__ = ["Copycat"]


@registry.register("watermark_removal", "copycat")
class Copycat(RemovalAttack):
    """Model stealing with :mod:`advml.extraction`'s copycat, through the API only.

    Runs :class:`advml.extraction.Copycat` with ``strategy="pool"`` and the attacker's
    inputs as the pool: the victim's scores (labels where it gives only those) on up to
    ``queries`` of them train a fresh copy whose architecture the attacker picks (see
    that attack's documentation).

    Parameters
    ----------
    queries : int, optional
        Query budget; default every attacker input once.
    epochs : int
        Passes over the answered data per round; default 30.
    seed : int
        Seeds the queries and the copy; default 0.
    """

    needs_labels = False
    needs_white_box = False

    def __init__(self, *, queries: int | None = None, epochs: int = 30, seed: int = 0) -> None:
        if queries is not None:
            check_number("queries", queries, low=1, integer=True)
        check_number("epochs", epochs, low=1, integer=True)
        check_number("seed", seed, low=0, integer=True)
        self.queries = queries
        self.epochs = epochs
        self.seed = seed

    def _run(self, model: Classifier, x: Tensor, y: Tensor | None) -> Classifier:
        budget = x.shape[0] if self.queries is None else min(self.queries, x.shape[0])
        attack = extraction.Copycat(
            strategy="pool",
            queries=budget,
            rounds=min(4, budget),
            epochs=self.epochs,
            seed=self.seed,
        )
        stolen: Classifier = attack.extract(model, x, n_random=0).stolen
        return stolen
