"""Removal attacks on watermarks, and the robustness table that prices them.

An attacker who holds a copy of the owner's model (white-box) or only its API
(black-box) tries to obtain a model the owner can no longer prove is theirs while
keeping its accuracy. Family ``"watermark_removal"``; the verb is
``remove(model, x, y=None) -> RemovalResult``, where ``(x, y)`` is the attacker's own
data (much less than the owner's, as a rule).

- ``ftll``, ``ftal``, ``rtll``, ``rtal``: fine-tune the last layer / all layers, with
  the last layer kept or re-initialised first (Adi et al. 2018, §5.1).
- ``prune``: zero the ``rate`` fraction of smallest-magnitude weights of each chosen
  layer (Uchida et al. 2017, §4.3; Han et al. 2015).
- ``fine_prune``: mask the ``rate`` fraction of a layer's units least active on the
  attacker's clean data, then fine-tune (Liu, Dolan-Gavitt & Garg, RAID 2018).
- ``preprocess``: transform every input at query time (median filter, Gaussian noise,
  bit-depth reduction) without touching the model.
- ``distill``: label the attacker's inputs with the model's answers and train a fresh
  model on them (model extraction; Tramèr et al. 2016, Orekondy et al. 2019);
  ``copycat`` does the same through :mod:`advml.extraction` (soft labels, rounds).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from advml import registry
from advml.base import Component
from advml.errors import UnsupportedModelError
from advml.models.architectures import build as build_architecture
from advml.models.base import Classifier
from advml.models.callable import CallableClassifier
from advml.models.torch import TorchClassifier
from advml.models.training import train
from advml.validation import check_choice, check_labels, check_number
from advml.watermark._images import is_image
from advml.watermark.base import clone_model, last_layer, require_torch
from advml.watermark.key import WatermarkKey
from advml.watermark.verify import DEFAULT_ALPHA, verify

__all__ = [
    "FTAL",
    "FTLL",
    "RTAL",
    "RTLL",
    "Copycat",
    "Distill",
    "FinePrune",
    "Preprocess",
    "Prune",
    "RemovalAttack",
    "RemovalResult",
    "RobustnessRow",
    "RobustnessTable",
    "robustness_table",
]


@dataclass(frozen=True)
class RemovalResult:
    """The attacker's model after a removal attack."""

    model: Classifier
    """A new model; the attacked one is left unchanged."""
    attack: str
    params: dict[str, Any]
    seconds: float
    queries: int
    """Queries the attack asked of the attacked model (extraction only; else 0)."""


class RemovalAttack(Component):
    """Base of the removal attacks: ``remove(model, x, y=None) -> RemovalResult``."""

    family: ClassVar[str] = "watermark_removal"
    needs_labels: ClassVar[bool] = True
    needs_white_box: ClassVar[bool] = True

    def remove(
        self,
        model: Classifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor | None = None,
    ) -> RemovalResult:
        """Attack ``model`` with the attacker's data ``x`` (and labels ``y``).

        Parameters
        ----------
        model : Classifier
            The watermarked model; a ``TorchClassifier`` for every attack but
            ``preprocess`` and ``distill``. Not modified.
        x : array of shape (n, *input_shape)
            The attacker's inputs.
        y : array of shape (n,), optional
            Their labels (required by the fine-tuning attacks; ``distill`` ignores them
            and asks the model instead).

        Returns
        -------
        RemovalResult
        """
        if self.needs_white_box:
            require_torch(model, f"the {self.name!r} removal attack")
        xt = model.as_tensor(x, name="x")
        yt: Tensor | None = None
        if y is not None:
            y_arr = y if isinstance(y, np.ndarray | Tensor) else np.asarray(y)
            check_labels("y", y_arr, model.n_classes, xt.shape[0])
            yt = torch.as_tensor(np.asarray(y_arr) if isinstance(y_arr, np.ndarray) else y_arr)
            yt = yt.to(device=model.device, dtype=torch.long)
        elif self.needs_labels:
            raise ValueError(f"the {self.name!r} attack fine-tunes on labelled data: give y")
        start = time.perf_counter()
        before = model.query_count
        out = self._run(model, xt, yt)
        return RemovalResult(
            model=out,
            attack=self.name,
            params=self.get_params(),
            seconds=time.perf_counter() - start,
            queries=model.query_count - before,
        )

    def _run(self, model: Any, x: Tensor, y: Tensor | None) -> Classifier:
        raise NotImplementedError


def _check_tuning(epochs: int, lr: float, batch_size: int, seed: int) -> None:
    check_number("epochs", epochs, low=1, integer=True)
    check_number("lr", lr, low=0, low_inclusive=False)
    check_number("batch_size", batch_size, low=1, integer=True)
    check_number("seed", seed, low=0, integer=True)


def _module(model: TorchClassifier, layer: str) -> nn.Module:
    return dict(model.module.named_modules())[layer]


def _reinitialise(module: nn.Module, seed: int) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in module.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()


class _FineTuning(RemovalAttack):
    """Fine-tuning with the last layer kept or re-initialised (Adi et al. 2018, §5.1)."""

    reinitialise: ClassVar[bool] = False
    all_layers: ClassVar[bool] = False

    def __init__(
        self, *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 64, seed: int = 0
    ) -> None:
        _check_tuning(epochs, lr, batch_size, seed)
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def _run(self, model: TorchClassifier, x: Tensor, y: Tensor | None) -> Classifier:
        assert y is not None  # checked by remove()
        out = clone_model(model)
        head = _module(out, last_layer(out))
        if self.reinitialise:
            _reinitialise(head, self.seed)
        params = None if self.all_layers else list(head.parameters())
        train(
            out,
            x,
            y,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            val_fraction=0.0,
            patience=None,
            params=params,
            seed=self.seed,
            show_progress=False,
            desc=f"removal {self.name}",
        )
        out.reset_queries()
        return out


_TUNING_DOC = """

    Parameters
    ----------
    epochs : int
        Passes over the attacker's data; default 10.
    lr : float
        Adam learning rate; default 1e-3 (the reference models' training rate).
    batch_size : int
        Samples per step; default 64.
    seed : int
        Seeds the shuffling and any re-initialisation; default 0.
    """


@registry.register("watermark_removal", "ftll")
class FTLL(_FineTuning):
    __doc__ = "Fine-tune the last layer only on the attacker's data (FTLL)." + _TUNING_DOC


@registry.register("watermark_removal", "ftal")
class FTAL(_FineTuning):
    __doc__ = "Fine-tune all layers on the attacker's data (FTAL)." + _TUNING_DOC
    all_layers = True


@registry.register("watermark_removal", "rtll")
class RTLL(_FineTuning):
    __doc__ = "Re-initialise the last layer, then train it alone (RTLL)." + _TUNING_DOC
    reinitialise = True


@registry.register("watermark_removal", "rtal")
class RTAL(_FineTuning):
    __doc__ = "Re-initialise the last layer, then train all layers (RTAL)." + _TUNING_DOC
    reinitialise = True
    all_layers = True


def _weight_layers(model: TorchClassifier) -> list[str]:
    return [
        name
        for name, m in model.module.named_modules()
        if name and isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.ndim >= 2
    ]


def _check_layers(layers: Sequence[str] | None) -> None:
    if layers is None:
        return
    if isinstance(layers, str) or not all(isinstance(n, str) and n for n in layers) or not layers:
        raise ValueError(f"layers must be a non-empty list of layer names or None, got {layers!r}")


@registry.register("watermark_removal", "prune")
class Prune(RemovalAttack):
    """Magnitude pruning: zero the smallest weights of each chosen layer.

    In each layer, the ``rate`` fraction of weights with the smallest absolute value is
    set to zero (Han et al. 2015; the attack Uchida et al. 2017, §4.3, test against).
    Biases are kept. Nothing is retrained.

    Parameters
    ----------
    rate : float
        Fraction of each layer's weights to zero, in [0, 1); default 0.5.
    layers : list of str, optional
        Layers to prune; default every convolutional and dense layer.
    """

    needs_labels = False

    def __init__(self, *, rate: float = 0.5, layers: list[str] | None = None) -> None:
        check_number("rate", rate, low=0, high=1, high_inclusive=False)
        _check_layers(layers)
        self.rate = rate
        self.layers = None if layers is None else list(layers)

    def _run(self, model: TorchClassifier, x: Tensor, y: Tensor | None) -> Classifier:
        out = clone_model(model)
        names = self.layers or _weight_layers(out)
        modules = dict(out.module.named_modules())
        for name in names:
            module = modules.get(name)
            weight = getattr(module, "weight", None)
            if not isinstance(weight, nn.Parameter):
                raise UnsupportedModelError(
                    f"layer {name!r} has no weights to prune; layers with weights: "
                    f"{', '.join(_weight_layers(out))}"
                )
            k = math.floor(self.rate * weight.numel())
            if k == 0:
                continue
            with torch.no_grad():
                flat = weight.abs().flatten()
                cut = flat.kthvalue(k).values
                # Ties at the threshold: zero exactly k weights, the first ones in order.
                below = flat < cut
                ties = torch.nonzero(flat == cut).flatten()[: k - int(below.sum())]
                mask = below.clone()
                mask[ties] = True
                weight.view(-1)[mask] = 0.0
        return out


def _default_unit_layer(model: TorchClassifier) -> str:
    """The last convolutional layer, or else the last hidden dense layer."""
    convs = [n for n, m in model.module.named_modules() if isinstance(m, nn.Conv1d | nn.Conv2d)]
    if convs:
        return convs[-1]
    dense = [n for n, m in model.module.named_modules() if isinstance(m, nn.Linear)]
    if len(dense) < 2:
        raise UnsupportedModelError("fine-pruning needs a hidden layer; this model has none")
    return dense[-2]


@registry.register("watermark_removal", "fine_prune")
class FinePrune(RemovalAttack):
    """Prune the units least active on clean data, then fine-tune (Liu et al. 2018, §4).

    Units of ``layer`` are ranked by their mean activation on the attacker's inputs;
    the ``rate`` fraction with the lowest is masked (through the model's unit masks, so
    they stay pruned during fine-tuning), then all layers are fine-tuned.

    Parameters
    ----------
    rate : float
        Fraction of the layer's units to prune, in [0, 1); default 0.5.
    layer : str, optional
        Layer whose units are pruned; default the last convolutional layer, or the last
        hidden dense layer.
    epochs : int
        Fine-tuning epochs after pruning; default 5.
    lr : float
        Adam learning rate; default 1e-3.
    batch_size : int
        Samples per step; default 64.
    seed : int
        Seeds the shuffling; default 0.
    """

    def __init__(
        self,
        *,
        rate: float = 0.5,
        layer: str | None = None,
        epochs: int = 5,
        lr: float = 1e-3,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        check_number("rate", rate, low=0, high=1, high_inclusive=False)
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ValueError(f"layer must be a layer name or None, got {layer!r}")
        _check_tuning(epochs, lr, batch_size, seed)
        self.rate = rate
        self.layer = layer
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def _run(self, model: TorchClassifier, x: Tensor, y: Tensor | None) -> Classifier:
        assert y is not None
        out = clone_model(model)
        layer = self.layer or _default_unit_layer(out)
        acts = torch.as_tensor(out.activations(x, layer))
        mean = acts.transpose(0, 1).flatten(1).mean(dim=1)
        n_prune = math.floor(self.rate * mean.numel())
        keep = torch.ones(mean.numel(), dtype=torch.bool)
        keep[torch.argsort(mean, stable=True)[:n_prune]] = False
        out.set_unit_mask(layer, keep)
        train(
            out,
            x,
            y,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            val_fraction=0.0,
            patience=None,
            seed=self.seed,
            show_progress=False,
            desc="removal fine_prune",
        )
        out.reset_queries()
        return out


@registry.register("watermark_removal", "preprocess")
class Preprocess(RemovalAttack):
    """Transform every input before the model sees it (the model is left as it is).

    The result is a black-box model (a ``CallableClassifier``) that applies the
    transform and then asks the attacked model; white-box verification reads the
    weights, which this attack does not change.

    Parameters
    ----------
    kind : {"median", "noise", "squeeze"}
        Median filter over ``size`` x ``size`` pixels (images only), Gaussian noise of
        standard deviation ``std`` (fraction of the bounds' width), or bit-depth
        reduction to ``bits`` bits; default "median".
    size : int
        Odd median window; default 3.
    std : float
        Noise standard deviation relative to the bounds' width (> 0); default 0.1.
    bits : int
        Bit depth kept by "squeeze", 1 to 8; default 3.
    seed : int
        Seeds the noise; default 0.
    """

    needs_labels = False
    needs_white_box = False

    def __init__(
        self,
        *,
        kind: Literal["median", "noise", "squeeze"] = "median",
        size: int = 3,
        std: float = 0.1,
        bits: int = 3,
        seed: int = 0,
    ) -> None:
        check_choice("kind", kind, ("median", "noise", "squeeze"))
        check_number("size", size, low=1, integer=True)
        if int(size) % 2 == 0:
            raise ValueError(f"size must be odd, got {size}")
        check_number("std", std, low=0, low_inclusive=False)
        check_number("bits", bits, low=1, high=8, integer=True)
        check_number("seed", seed, low=0, integer=True)
        self.kind = kind
        self.size = size
        self.std = std
        self.bits = bits
        self.seed = seed

    def _run(self, model: Classifier, x: Tensor, y: Tensor | None) -> Classifier:
        if self.kind == "median" and not is_image(model.input_shape):
            raise UnsupportedModelError(
                f"a median filter needs image inputs; this model takes {model.input_shape}. "
                f"Use kind='noise' or 'squeeze'"
            )
        low, high = model.bounds
        generator = torch.Generator(device=model.device).manual_seed(self.seed)
        transform = self._transform(low, high, generator)
        scores = model.has_scores

        def answer(batch: Tensor) -> Tensor:
            with torch.no_grad(), model.evaluating():
                cleaned = transform(batch.to(model.device))
                return model.logits(cleaned) if scores else model.predict_labels(cleaned)

        return CallableClassifier(
            answer,
            input_shape=model.input_shape,
            n_classes=model.n_classes,
            bounds=model.bounds,
            returns="logits" if scores else "labels",
            accepts="torch",
            device=model.device,
        )

    def _transform(self, low: float, high: float, generator: torch.Generator) -> Any:
        if self.kind == "noise":
            std = self.std * (high - low)

            def noise(x: Tensor) -> Tensor:
                eps = torch.randn(x.shape, generator=generator, device=x.device) * std
                return (x + eps).clamp(low, high)

            return noise
        if self.kind == "squeeze":
            levels = 2**self.bits - 1

            def squeeze(x: Tensor) -> Tensor:
                unit = (x - low) / (high - low)
                return low + (high - low) * torch.round(unit * levels) / levels

            return squeeze
        k = int(self.size)

        def median(x: Tensor) -> Tensor:
            padded = F.pad(x, (k // 2, k // 2, k // 2, k // 2), mode="reflect")
            patches = padded.unfold(2, k, 1).unfold(3, k, 1)
            return patches.reshape(*x.shape, k * k).median(dim=-1).values

        return median


@registry.register("watermark_removal", "distill")
class Distill(RemovalAttack):
    """Extraction: train a fresh model on the attacked model's labels for the attacker's inputs.

    The attacker queries the model once per input (black-box access suffices, labels
    only are enough), then trains a network of the same architecture (rebuilt from the
    recorded architecture, or the same module with every parameter re-initialised) from
    a fresh initialisation on those labels. Watermarks the model learned off the data's
    distribution are rarely asked about, so they rarely survive (Adi et al. 2018, §5;
    Lukas et al. 2022).

    Parameters
    ----------
    epochs : int
        Training epochs of the fresh model; default 20.
    lr : float
        Adam learning rate; default 1e-3.
    batch_size : int
        Samples per step; default 64.
    seed : int
        Seeds the fresh initialisation and the shuffling; default 0.
    architecture : {"same", "mlp", "cnn"}
        Architecture of the fresh model: the attacked model's own, or a reference one;
        default "same" (which needs a white-box model; a black-box model gets "mlp").
    """

    needs_labels = False
    needs_white_box = False

    def __init__(
        self,
        *,
        epochs: int = 20,
        lr: float = 1e-3,
        batch_size: int = 64,
        seed: int = 0,
        architecture: Literal["same", "mlp", "cnn"] = "same",
    ) -> None:
        _check_tuning(epochs, lr, batch_size, seed)
        check_choice("architecture", architecture, ("same", "mlp", "cnn"))
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.architecture = architecture

    def _fresh(self, model: Classifier) -> TorchClassifier:
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            if self.architecture == "same" and isinstance(model, TorchClassifier):
                recorded = model.module.__dict__.get("advml_architecture")
                if recorded is not None:
                    module = build_architecture(recorded[0], **recorded[1])
                else:
                    module = clone_model(model).module
                    _reinitialise(module, self.seed)
                preprocessing = model.preprocessing
            else:
                arch = "mlp" if self.architecture == "same" else self.architecture
                module = build_architecture(
                    arch, input_shape=model.input_shape, n_classes=model.n_classes
                )
                preprocessing = None
        return TorchClassifier(
            module,
            input_shape=model.input_shape,
            n_classes=model.n_classes,
            bounds=model.bounds,
            preprocessing=preprocessing,
            device=model.device,
        )

    def _run(self, model: Classifier, x: Tensor, y: Tensor | None) -> Classifier:
        labels = torch.as_tensor(model.predict(x))
        student = self._fresh(model)
        train(
            student,
            x,
            labels,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            val_fraction=0.0,
            patience=None,
            seed=self.seed,
            show_progress=False,
            desc="removal distill",
        )
        student.reset_queries()
        return student


@registry.register("watermark_removal", "copycat")
class Copycat(RemovalAttack):
    """Model stealing with :mod:`advml.extraction`'s copycat, through the API only.

    Runs ``registry.create("extraction", "copycat", strategy="pool", ...)`` with the
    attacker's inputs as the pool: the victim's scores (labels where it gives only
    those) on up to ``queries`` of them train a fresh copy whose architecture the
    attacker picks (see that attack's documentation).

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
        attack = registry.create(
            "extraction",
            "copycat",
            strategy="pool",
            queries=budget,
            rounds=min(4, budget),
            epochs=self.epochs,
            seed=self.seed,
        )
        result = attack.extract(model, x, n_random=0)  # type: ignore[attr-defined]
        stolen: Classifier = result.stolen
        return stolen


# -- the robustness table -----------------------------------------------------------------
@dataclass(frozen=True)
class RobustnessRow:
    """One removal attack against one watermarked model."""

    attack: str
    """Label of the attack, e.g. ``"prune(rate=0.5)"``; ``"none"`` for the marked model."""
    params: dict[str, Any]
    detected: bool | None
    """Watermark still verified; None where verification does not apply."""
    match_rate: float | None
    chance_probability: float | None
    clean_accuracy: float
    accuracy_drop: float
    """Baseline clean accuracy minus this row's (points in [0, 1])."""
    seconds: float
    queries: int
    note: str = ""


@dataclass(frozen=True)
class RobustnessTable:
    """The price of removing a watermark: per attack, detected or not and accuracy kept."""

    scheme: str
    baseline_accuracy: float
    rows: tuple[RobustnessRow, ...] = field(default_factory=tuple)

    def summary(self) -> list[dict[str, Any]]:
        return [
            {
                "attack": r.attack,
                "detected": r.detected,
                "match_rate": r.match_rate,
                "chance_probability": r.chance_probability,
                "clean_accuracy": r.clean_accuracy,
                "accuracy_drop": r.accuracy_drop,
                "seconds": r.seconds,
                "queries": r.queries,
                "note": r.note,
            }
            for r in self.rows
        ]

    def to_text(self) -> str:
        """A plain-text table for the terminal."""
        head = f"{'attack':<30} {'detected':>8} {'match':>6} {'chance p':>9} {'accuracy':>8}"
        lines = [f"watermark scheme: {self.scheme}", head, "-" * len(head)]
        for r in self.rows:
            detected = "n/a" if r.detected is None else ("yes" if r.detected else "NO")
            match = "" if r.match_rate is None else f"{r.match_rate:.2f}"
            chance = "" if r.chance_probability is None else f"{r.chance_probability:.1e}"
            lines.append(
                f"{r.attack:<30} {detected:>8} {match:>6} {chance:>9} {r.clean_accuracy:>8.4f}"
            )
        return "\n".join(lines)


def describe(attack: RemovalAttack) -> str:
    """``name(setting=value, ...)`` with the settings that differ from the defaults."""
    text = repr(attack)
    return attack.name + text[text.index("(") :]


def robustness_table(
    model: Classifier,
    key: WatermarkKey,
    attacks: Sequence[RemovalAttack],
    x_attacker: np.ndarray | Tensor,
    y_attacker: np.ndarray | Tensor,
    x_test: np.ndarray | Tensor,
    y_test: np.ndarray | Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
) -> RobustnessTable:
    """Run each removal attack on ``model`` and verify the result against ``key``.

    Parameters
    ----------
    model : Classifier
        The watermarked model.
    key : WatermarkKey
        Its key.
    attacks : sequence of RemovalAttack
        The attacks to run, each on the original ``model``.
    x_attacker, y_attacker : arrays
        The attacker's labelled data (``distill`` uses only the inputs).
    x_test, y_test : arrays
        Held-out data for the clean accuracy the attacker keeps.
    alpha : float
        Significance level of the ownership claim.

    Returns
    -------
    RobustnessTable
        The first row (``"none"``) is the watermarked model itself.
    """
    y_test_arr = np.asarray(torch.as_tensor(y_test).cpu())

    def accuracy(m: Classifier) -> float:
        return float((np.asarray(torch.as_tensor(m.predict(x_test)).cpu()) == y_test_arr).mean())

    base = accuracy(model)
    rows: list[RobustnessRow] = []

    def add(
        label: str, params: dict[str, Any], m: Classifier, seconds: float, queries: int
    ) -> None:
        note = ""
        try:
            v = verify(m, key, alpha=alpha)
            detected: bool | None = v.verified
            match: float | None = v.match_rate
            chance: float | None = v.chance_probability
        except UnsupportedModelError:
            detected, match, chance = None, None, None
            note = "white-box verification reads the weights; this attack leaves them unchanged"
        acc = accuracy(m)
        rows.append(
            RobustnessRow(
                attack=label,
                params=params,
                detected=detected,
                match_rate=match,
                chance_probability=chance,
                clean_accuracy=acc,
                accuracy_drop=base - acc,
                seconds=seconds,
                queries=queries,
                note=note,
            )
        )

    add("none", {}, model, 0.0, 0)
    for attack in attacks:
        if not isinstance(attack, RemovalAttack):
            raise TypeError(
                f"attacks must hold RemovalAttack objects (registry family "
                f"'watermark_removal'), got {type(attack).__name__}"
            )
        result = attack.remove(model, x_attacker, y_attacker)
        add(describe(attack), result.params, result.model, result.seconds, result.queries)
    return RobustnessTable(scheme=key.scheme, baseline_accuracy=base, rows=tuple(rows))
