"""Feature constraints for non-image data: what an attacker may and may not change.

An image attacker may move any pixel within the bounds. Elsewhere the domain limits the
attacker: an applicant's age cannot change, a malware sample must keep working, so its
binary features (API calls, permissions) may be switched *on* but never off (Grosse,
Papernot, Manoharan, Backes & McDaniel, "Adversarial Examples for Malware Detection",
ESORICS 2017), and a feature may have a narrower range than the model's bounds.
:class:`FeatureConstraints` says so once; every attack with a ``constraints`` setting
honours it, and :meth:`FeatureConstraints.satisfied` checks a result.

Features are indexed in the flattened input (``x.reshape(n, -1)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["FeatureConstraints", "as_constraints"]

_TOL = 1e-6


def _indices(name: str, value: Any) -> tuple[int, ...]:
    try:
        items = [value] if isinstance(value, int | np.integer) else list(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of feature indices, got {value!r}") from None
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise TypeError(f"{name} must hold integer feature indices, got {item!r}")
        if item < 0:
            raise ValueError(f"{name} must hold feature indices >= 0, got {int(item)}")
        out.append(int(item))
    return tuple(sorted(set(out)))


def _filled(flat: Tensor, value: float | Tensor) -> Tensor:
    """A new ``(n, d)`` tensor of ``value``: a float, or a per-feature tensor."""
    if isinstance(value, Tensor):
        return value.to(flat).reshape(1, -1).expand_as(flat).clone()
    return torch.full_like(flat, value)


@dataclass(frozen=True)
class FeatureConstraints:
    """What an attack may change, per feature of the flattened input.

    Parameters
    ----------
    immutable : sequence of int
        Features the attacker cannot change at all (kept exactly as in ``x``).
    switch_on : sequence of int
        Binary features that may only be switched on: each stays at its original value
        or becomes the upper bound (its range's upper end where one is given, else the
        model's). The malware setting: adding an API call keeps the program working,
        removing one may not.
    ranges : mapping int -> (low, high), or sequence of (index, low, high)
        Per-feature valid values, inside the model's bounds.

    Examples
    --------
    >>> from advml.evasion import FeatureConstraints, PGD
    >>> rules = FeatureConstraints(immutable=[0, 1], switch_on=[5, 6], ranges={2: (0.0, 0.5)})
    >>> attack = PGD(eps=0.3, constraints=rules)
    """

    immutable: tuple[int, ...] = ()
    switch_on: tuple[int, ...] = ()
    ranges: tuple[tuple[int, float, float], ...] = ()

    def __post_init__(self) -> None:
        immutable = _indices("immutable", self.immutable)
        switch_on = _indices("switch_on", self.switch_on)
        both = set(immutable) & set(switch_on)
        if both:
            raise ValueError(
                f"features {sorted(both)} are both immutable and switch_on; choose one"
            )
        raw = self.ranges
        items: list[Any] = list(raw.items()) if isinstance(raw, Mapping) else list(raw)
        ranges = []
        for item in items:
            try:
                if isinstance(raw, Mapping):
                    index, (low, high) = item
                else:
                    index, low, high = item
                low, high = float(low), float(high)
            except (TypeError, ValueError):
                raise ValueError(
                    f"ranges must map a feature index to (low, high), got {item!r}"
                ) from None
            (index,) = _indices("ranges", [index])
            if not (np.isfinite(low) and np.isfinite(high)) or low > high:
                raise ValueError(
                    f"ranges[{index}] must be finite with low <= high, got ({low}, {high})"
                )
            ranges.append((index, low, high))
        seen = [r[0] for r in ranges]
        if len(seen) != len(set(seen)):
            raise ValueError(f"ranges gives a feature more than once: {sorted(seen)}")
        object.__setattr__(self, "immutable", immutable)
        object.__setattr__(self, "switch_on", switch_on)
        object.__setattr__(self, "ranges", tuple(sorted(ranges)))

    # -- construction from plain data ---------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureConstraints:
        """Build from plain data (a config file, ``--set constraints=...`` on the CLI)."""
        unknown = set(data) - {"immutable", "switch_on", "ranges"}
        if unknown:
            raise ValueError(
                f"constraints has unknown key(s) {sorted(unknown)}; "
                f"valid: immutable, switch_on, ranges"
            )
        ranges = data.get("ranges", ())
        if isinstance(ranges, Mapping):  # JSON keys are strings
            ranges = {int(k): v for k, v in ranges.items()}
        return cls(
            immutable=data.get("immutable", ()),
            switch_on=data.get("switch_on", ()),
            ranges=ranges,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for reports; ``from_dict(c.to_dict()) == c``."""
        return {
            "immutable": list(self.immutable),
            "switch_on": list(self.switch_on),
            "ranges": {i: [lo, hi] for i, lo, hi in self.ranges},
        }

    @property
    def is_empty(self) -> bool:
        return not (self.immutable or self.switch_on or self.ranges)

    # -- use ----------------------------------------------------------------------------
    def check_features(self, n_features: int) -> None:
        """Raise ``ValueError`` naming ``constraints`` if an index is out of range."""
        used = [*self.immutable, *self.switch_on, *(r[0] for r in self.ranges)]
        if used and max(used) >= n_features:
            raise ValueError(
                f"constraints names feature {max(used)}, but the model's inputs have "
                f"{n_features} features (flattened indices 0..{n_features - 1})"
            )

    def mutable_mask(self, n_features: int, device: torch.device | str = "cpu") -> Tensor:
        """Boolean mask of shape ``(n_features,)``: True where the attacker may act."""
        mask = torch.ones(n_features, dtype=torch.bool, device=device)
        if self.immutable:
            mask[list(self.immutable)] = False
        return mask

    def in_unit_box(self, low: np.ndarray, high: np.ndarray) -> FeatureConstraints:
        """These constraints for inputs seen as ``z = (x - low) / (high - low)`` (the
        space of a relative-eps attack): ``ranges`` mapped per feature; immutable and
        switch-on features are the same features."""
        lo, span = np.ravel(low), np.ravel(high) - np.ravel(low)
        ranges = tuple(
            (i, float((a - lo[i]) / span[i]), float((b - lo[i]) / span[i]))
            for i, a, b in self.ranges
        )
        return FeatureConstraints(immutable=self.immutable, switch_on=self.switch_on, ranges=ranges)

    def limits(self, x: Tensor, bounds: Any) -> tuple[Tensor, Tensor]:
        """Per-sample, per-feature ``(low, high)`` the features may take, shape of ``x``.

        ``bounds`` is the model's ``(low, high)``: two floats, or per-feature tensors
        that broadcast to ``x``. Immutable features are pinned to ``x``; switch-on
        features lie in ``[x, on]``.
        """
        flat = x.reshape(x.shape[0], -1)
        low = _filled(flat, bounds[0])
        high = _filled(flat, bounds[1])
        for index, lo, hi in self.ranges:
            low[:, index] = low[:, index].clamp(min=lo)
            high[:, index] = high[:, index].clamp(max=hi)
        if self.switch_on:
            idx = list(self.switch_on)
            low[:, idx] = torch.minimum(flat[:, idx], high[:, idx])
        if self.immutable:
            idx = list(self.immutable)
            low[:, idx] = flat[:, idx]
            high[:, idx] = flat[:, idx]
        return low.view_as(x), high.view_as(x)

    def project(self, x_adv: Tensor, x: Tensor, bounds: Any, *, final: bool = False) -> Tensor:
        """Move ``x_adv`` back into what the constraints allow (a new tensor).

        During an attack (``final=False``) switch-on features may take any value between
        the original and the "on" value, so gradient steps can move them gradually; the
        final projection rounds each to the nearer of the two.
        """
        low, high = self.limits(x, bounds)
        out = torch.max(torch.min(x_adv, high), low)
        if final and self.switch_on:
            flat = out.reshape(out.shape[0], -1).clone()
            idx = list(self.switch_on)
            on = high.reshape(high.shape[0], -1)[:, idx]
            start = x.reshape(x.shape[0], -1)[:, idx]
            flat[:, idx] = torch.where(flat[:, idx] >= (start + on) / 2, on, start)
            out = flat.view_as(out)
        return out

    def switch_off_partial(self, x_adv: Tensor, x: Tensor, bounds: Any) -> Tensor:
        """Set switch-on features that are neither original nor on back to the original.

        Used after a norm-ball projection has shrunk a switched-on feature: a binary
        feature half on is not a valid input, and off never leaves the ball.
        """
        if not self.switch_on:
            return x_adv
        _, high = self.limits(x, bounds)
        idx = list(self.switch_on)
        flat = x_adv.reshape(x_adv.shape[0], -1).clone()
        on = high.reshape(high.shape[0], -1)[:, idx]
        start = x.reshape(x.shape[0], -1)[:, idx]
        keep = (flat[:, idx] - on).abs() <= _TOL
        flat[:, idx] = torch.where(keep, on, start)
        return flat.view_as(x_adv)

    def satisfied(
        self,
        x: np.ndarray | Tensor,
        x_adv: np.ndarray | Tensor,
        bounds: tuple[float, float] = (-np.inf, np.inf),
        *,
        tol: float = _TOL,
    ) -> np.ndarray:
        """Per sample: does ``x_adv`` keep every constraint relative to ``x``?

        Returns a boolean array of shape ``(n,)``.
        """
        xo = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64)
        xa = np.asarray(
            x_adv.detach().cpu() if isinstance(x_adv, Tensor) else x_adv, dtype=np.float64
        )
        xo, xa = xo.reshape(len(xo), -1), xa.reshape(len(xa), -1)
        ok = np.ones(len(xo), dtype=bool)
        if self.immutable:
            idx = list(self.immutable)
            ok &= np.all(np.abs(xa[:, idx] - xo[:, idx]) <= tol, axis=1)
        top = np.full(xo.shape[1], bounds[1], dtype=np.float64)
        for index, lo, hi in self.ranges:
            ok &= (xa[:, index] >= lo - tol) & (xa[:, index] <= hi + tol)
            top[index] = min(hi, bounds[1])
        if self.switch_on:
            idx = list(self.switch_on)
            same = np.abs(xa[:, idx] - xo[:, idx]) <= tol
            on = np.abs(xa[:, idx] - top[idx]) <= tol
            ok &= np.all(same | on, axis=1)
        return ok


def as_constraints(name: str, value: Any) -> FeatureConstraints | None:
    """Validate a ``constraints`` setting: None, a FeatureConstraints or a plain mapping."""
    if value is None or isinstance(value, FeatureConstraints):
        return value
    if isinstance(value, Mapping):
        try:
            return FeatureConstraints.from_dict(value)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name}: {err}") from None
    raise TypeError(
        f"{name} must be a FeatureConstraints, a mapping with keys immutable/switch_on/"
        f"ranges, or None; got {type(value).__name__}"
    )
