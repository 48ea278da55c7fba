"""What the web demo does, without the web: select, attack, defend, describe.

:class:`DemoService` holds one model (loaded once) and the dataset it was trained on,
and turns the demo's three steps into plain data: a *view* of an input is its PNG, its
pixels, the model's label and the confidence of every class. The HTTP layer
(:mod:`advml.web.app`) only validates requests and maps errors to status codes.

Every computation can run under a time limit: :meth:`DemoService.run` starts a
:class:`~advml.web.limits.Job`, and the service queries its model only through a
:class:`~advml.web.limits.LimitedModel`, which raises
:class:`~advml.web.limits.RequestTimeout` at the first query past the limit. An attack
that runs too long thus stops where it is, whatever the kind of model, instead of
occupying the server.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from advml import registry
from advml.data import Dataset, advml_home, load_dataset
from advml.data.embedded import EMBEDDED
from advml.defences.preprocess import Autoencoder, Preprocessor
from advml.evasion import FeatureConstraints
from advml.models.base import Classifier, check_classifier
from advml.validation import check_choice, check_number
from advml.web.images import perturbation_png, png_data_url, resize_to
from advml.web.limits import Clock, Job, LimitedModel, RequestTimeout, ServerBusy

__all__ = [
    "ATTACKS",
    "DEFENCES",
    "STRENGTHS",
    "AttackSpec",
    "DefenceNotReady",
    "DemoService",
    "Job",
    "RequestTimeout",
    "ServerBusy",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
StrengthName = Literal["low", "medium", "high"]
STRENGTHS: tuple[StrengthName, ...] = ("low", "medium", "high")


class DefenceNotReady(RuntimeError):
    """A defence that must be trained first (the autoencoder) is still training."""


@dataclass(frozen=True)
class AttackSpec:
    """How the demo runs one evasion attack at each strength.

    ``eps`` (when the attack has one) is in units of the width of the model's input
    range, so 0.1 means a tenth of the range whatever the bounds; ``settings`` are the
    attack's own settings per strength.
    """

    title: str
    summary: str
    eps: dict[str, float] | None
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


_EPS = {"low": 0.05, "medium": 0.15, "high": 0.3}

ATTACKS: dict[str, AttackSpec] = {
    "fgsm": AttackSpec(
        "FGSM",
        "one gradient-sign step of size eps (Goodfellow et al., ICLR 2015)",
        _EPS,
    ),
    "pgd": AttackSpec(
        "PGD-40",
        "40 projected gradient steps in the eps-ball, random start (Madry et al., ICLR 2018)",
        _EPS,
        {s: {"steps": 40} for s in STRENGTHS},
    ),
    "cw_l2": AttackSpec(
        "Carlini-Wagner L2",
        "the smallest L2 change that flips the label; strength = more search and a "
        "confidence margin (Carlini & Wagner, S&P 2017)",
        None,
        {
            "low": {"steps": 10, "binary_search_steps": 3},
            "medium": {"steps": 20, "binary_search_steps": 4},
            "high": {"steps": 30, "binary_search_steps": 5, "confidence": 5.0},
        },
    ),
    "greedy_pixel": AttackSpec(
        "Greedy pixel",
        "sets one pixel at a time to black or white, the one that helps most, until the "
        "label flips; strength = how many pixels it may change (scores only; each round "
        "tries every pixel, so on images over 16x16 only those near the stroke)",
        None,
        {
            "low": {"max_changes": 0.01},
            "medium": {"max_changes": 0.03},
            "high": {"max_changes": 0.08},
        },
    ),
    "square": AttackSpec(
        "Square",
        "random square-shaped changes kept when they lower the score; needs scores only "
        "(Andriushchenko et al., ECCV 2020)",
        _EPS,
        {
            "low": {"max_queries": 300},
            "medium": {"max_queries": 1000},
            "high": {"max_queries": 1000},
        },
    ),
}

DEFENCES: dict[str, str] = {
    "gaussian_noise": "adds random noise (sigma 0.05 / 0.1 / 0.2 of the range)",
    "median_smoothing": "replaces each pixel by the median of its window (3 / 5 / 7 wide, "
    "smaller on small images)",
    "feature_squeezing": "reduces each pixel to 4 / 2 / 1 bits (Xu et al., NDSS 2018)",
    "jpeg": "JPEG-compresses the image at quality 75 / 50 / 25",
    "autoencoder": "passes the image through a denoising autoencoder trained on clean "
    "data (MagNet, Meng & Chen, CCS 2017)",
}


# Above this many input values, greedy pixel tries only the pixels near the stroke.
_GREEDY_ALL_PIXELS = 256


def _check_int(name: str, value: Any, *, low: int, high: int) -> None:
    """``value`` must be an int in ``[low, high]``; plain Python, so any size is fine."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        digits = len(str(abs(int(value))))
        shown = repr(value) if digits <= 12 else f"an integer of {digits} digits"
        raise ValueError(f"{name} must be between {low} and {high}, got {shown}")


def _numeric_array(x: Any, name: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """``x`` (nested lists or an array) as a float64 array, or ValueError naming ``name``.

    Refuses strings and booleans, which numpy would otherwise turn into numbers, and
    ragged lists; integers of any size are taken (and later refused by the bounds).
    """
    what = f"{name} must be a nested list of numbers of shape {input_shape}"
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):  # ragged nesting
        raise ValueError(f"{what}; the nested lists have different lengths") from None
    if raw.dtype.kind in "iuf":
        return raw.astype(np.float64)
    if raw.dtype.kind == "O" and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        for v in raw.ravel()
    ):
        return np.array([_float(v) for v in raw.ravel()], dtype=np.float64).reshape(raw.shape)
    raise ValueError(f"{what}; got values of type {_kind(raw)}")


def _float(v: float) -> float:
    try:
        return float(v)
    except OverflowError:  # an int beyond float range: infinite, refused by the caller
        return math.inf if v > 0 else -math.inf


def _kind(raw: np.ndarray) -> str:
    if raw.dtype.kind == "O":
        kinds = sorted({type(v).__name__ for v in raw.ravel()})
        return ", ".join(kinds[:4])
    return {"b": "bool", "U": "str", "S": "bytes"}.get(raw.dtype.kind, str(raw.dtype))


def _image_datasets() -> list[str]:
    return [name for name, info in EMBEDDED.items() if len(info.input_shape) == 3]


class DemoService:
    """The demo's model, data and verbs.

    Parameters
    ----------
    model : Classifier
        The model under attack: a :class:`~advml.models.TorchClassifier` for the
        gradient attacks (others, e.g. a scikit-learn model or a callable, get the
        attacks that need scores only). The service queries it only through
        :attr:`model`, a :class:`~advml.web.limits.LimitedModel` around it.
    dataset : Dataset
        The data the model was trained on: its test split is the gallery, its training
        split trains the autoencoder defence.
    model_description : str
        What the page says about the model.
    timeout : float
        Seconds one computation may run under :meth:`run` before it is stopped.
    seed : int
        Seed of the attacks and defences that draw random numbers, and of the
        autoencoders' training.
    cache_dir : path, optional
        Where trained autoencoders are kept (default ``$ADVML_HOME/models``).
    clock : callable, optional
        The clock time limits are read on (``time.monotonic``); tests inject their own.
    """

    def __init__(
        self,
        model: Classifier,
        dataset: Dataset,
        *,
        model_description: str = "",
        timeout: float = 30.0,
        seed: int = 0,
        cache_dir: Path | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        check_number("timeout", timeout, low=0, low_inclusive=False)
        check_classifier("model", model)
        if tuple(model.input_shape) != tuple(dataset.input_shape):
            raise ValueError(
                f"the model takes inputs of shape {tuple(model.input_shape)} but dataset "
                f"{dataset.name!r} has inputs of shape {dataset.input_shape}; choose the "
                f"dataset the model was trained on"
            )
        self._local = threading.local()
        self.model = LimitedModel(model, self.current_job)
        self.dataset = dataset
        self.model_description = model_description or type(model).__name__
        self.timeout = float(timeout)
        self.seed = seed
        self.clock = clock
        self.cache_dir = cache_dir if cache_dir is not None else advml_home() / "models"
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in model.input_shape)
        self.bounds = (float(model.bounds[0]), float(model.bounds[1]))
        self._datasets: dict[str, Dataset] = {dataset.name: dataset}
        self._data_lock = threading.Lock()
        self._autoencoders: dict[str, Autoencoder] = {}
        self._ae_errors: dict[str, str] = {}
        self._ae_thread: threading.Thread | None = None

    # -- time limits ---------------------------------------------------------------------
    def new_job(self) -> Job:
        """A job with this service's time limit and clock (not started)."""
        return Job(self.timeout, self.clock)

    def current_job(self) -> Job | None:
        """The job running on the calling thread, or ``None`` (then nothing is limited)."""
        job: Job | None = getattr(self._local, "job", None)
        return job

    def run(self, fn: Callable[[], T], job: Job | None = None) -> T:
        """Run ``fn`` under ``job``'s time limit (a new :meth:`new_job` by default).

        Every model query ``fn`` makes on this thread first checks the job, so the
        computation stops at its first query past the limit or after
        :meth:`Job.cancel`, whatever the kind of model.

        Raises
        ------
        RequestTimeout
            When the job is (or was already) past its limit or cancelled.
        """
        job = job if job is not None else self.new_job()
        if job.cancelled:
            raise RequestTimeout("the computation was cancelled before it started")
        previous = self.current_job()
        self._local.job = job
        job.start()
        try:
            return fn()
        finally:
            self._local.job = previous

    # -- what there is -------------------------------------------------------------------
    def attack_available(self, name: str) -> str | None:
        """``None`` when ``name`` can attack this model, else why not."""
        return registry.get("evasion", name).unsupported_reason(self.model)

    def info(self) -> dict[str, Any]:
        """The model, its data, the attacks and defences with their strengths."""
        ds = self.dataset
        return {
            "model": self.model_description,
            "dataset": ds.name,
            "input_shape": list(self.input_shape),
            "bounds": list(self.bounds),
            "class_names": list(ds.class_names),
            "timeout_seconds": self.timeout,
            "strengths": list(STRENGTHS),
            "attacks": [
                {
                    "name": name,
                    "title": spec.title,
                    "summary": spec.summary,
                    "has_eps": spec.eps is not None,
                    "eps": spec.eps,
                    "unavailable": self.attack_available(name),
                }
                for name, spec in ATTACKS.items()
            ],
            "defences": [
                {"name": name, "summary": text, "unavailable": self._defence_unavailable(name)}
                for name, text in DEFENCES.items()
            ],
        }

    def datasets(self) -> list[dict[str, Any]]:
        """The embedded image datasets; images of others are resized to the model's input."""
        if self.tabular:
            ds = self.dataset
            return [
                {
                    "name": ds.name,
                    "description": f"{ds.name}: test rows of {self.input_shape[0]} features",
                    "input_shape": list(self.input_shape),
                    "model_dataset": True,
                    "resized": False,
                    "tabular": True,
                }
            ]
        out = []
        for name in _image_datasets():
            info = EMBEDDED[name]
            out.append(
                {
                    "name": name,
                    "description": info.description,
                    "input_shape": list(info.input_shape),
                    "model_dataset": name == self.dataset.name,
                    "resized": tuple(info.input_shape) != self.input_shape,
                }
            )
        return out

    def _data(self, name: str, field: str = "dataset") -> Dataset:
        check_choice(field, name, self._gallery_names())
        with self._data_lock:
            if name not in self._datasets:
                self._datasets[name] = load_dataset(name)
            return self._datasets[name]

    def n_images(self, dataset: str) -> int:
        """Images in the test split of ``dataset`` (the gallery)."""
        return self._data(dataset).n_test

    def image(self, dataset: str, index: int, *, name: str = "") -> tuple[np.ndarray, int]:
        """Test image ``index`` of ``dataset`` as one model input ``(1, *input_shape)``.

        Images of another dataset are resized and channel-matched to the model's input.
        ``name`` prefixes the parameter names in error messages (e.g. ``"image."``).
        """
        ds = self._data(dataset, f"{name}dataset")
        _check_int(f"{name}index", index, low=0, high=ds.n_test - 1)
        x = ds.x_test[int(index) : int(index) + 1].astype(np.float32)
        if tuple(ds.input_shape) != self.input_shape:
            x = self._rescale(resize_to(x, self.input_shape), ds.bounds)
        return x, int(ds.y_test[int(index)])

    def _rescale(self, x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        low, high = bounds
        new_low, new_high = self.bounds
        return ((x - low) / (high - low) * (new_high - new_low) + new_low).astype(np.float32)

    def thumbnails(self, dataset: str, offset: int, limit: int) -> dict[str, Any]:
        """PNG thumbnails and true labels of test images ``offset .. offset + limit``."""
        ds = self._data(dataset)
        _check_int("offset", offset, low=0, high=ds.n_test)
        _check_int("limit", limit, low=1, high=200)
        stop = min(ds.n_test, int(offset) + int(limit))
        items = [
            {
                "index": i,
                "label": int(ds.y_test[i]),
                "label_name": ds.class_names[int(ds.y_test[i])],
                "image": png_data_url(ds.x_test[i], ds.bounds),
                # A row of a table has no picture worth looking at: its values are shown.
                **(
                    {"features": [round(float(v), 4) for v in ds.x_test[i].ravel()]}
                    if len(ds.input_shape) != 3
                    else {}
                ),
            }
            for i in range(int(offset), stop)
        ]
        return {
            "dataset": ds.name,
            "total": ds.n_test,
            "offset": int(offset),
            "tabular": len(ds.input_shape) != 3,
            "images": items,
        }

    def gallery_view(self, dataset: str, index: int) -> dict[str, Any]:
        """Test image ``index`` of ``dataset``: its view and its true label."""
        x, y = self.image(dataset, index)
        names = self._data(dataset).class_names
        return {
            "dataset": dataset,
            "index": int(index),
            "true_label": y,
            "true_label_name": names[y] if y < len(names) else str(y),
            **self.view(x),
        }

    # -- the model's answer --------------------------------------------------------------
    def resolve(
        self,
        *,
        pixels: Any = None,
        dataset: str | None = None,
        index: int | None = None,
        name: str = "image",
    ) -> np.ndarray:
        """One model input from explicit ``pixels`` or a gallery ``dataset`` and ``index``.

        Errors name the parameter as ``name.pixels``, ``name.dataset``, ``name.index``.
        """
        if pixels is not None:
            if dataset is not None or index is not None:
                raise ValueError(f"{name}: give either pixels or dataset and index, not both")
            return self.check_input(pixels, f"{name}.pixels")
        if dataset is None or index is None:
            raise ValueError(f"{name}: give pixels, or both dataset and index")
        return self.image(dataset, index, name=f"{name}.")[0]

    def check_input(self, x: Any, name: str = "pixels") -> np.ndarray:
        """``x`` as one model input ``(1, *input_shape)``, or ValueError naming ``name``."""
        arr = _numeric_array(x, name, self.input_shape)
        if tuple(arr.shape) not in (self.input_shape, (1, *self.input_shape)):
            raise ValueError(
                f"{name} must have shape {self.input_shape} (one input of this model), got "
                f"{tuple(arr.shape)}"
            )
        if not np.isfinite(arr).all():
            raise ValueError(
                f"{name} contains NaN or infinite values (or numbers too large for a float)"
            )
        low, high = self.bounds
        if arr.min() < low - 1e-6 or arr.max() > high + 1e-6:
            raise ValueError(
                f"{name} has values in [{arr.min():g}, {arr.max():g}], outside the model's "
                f"input bounds [{low:g}, {high:g}]"
            )
        return np.clip(arr.reshape(1, *self.input_shape), low, high).astype(np.float32)

    def view(self, x: np.ndarray) -> dict[str, Any]:
        """The image, its pixels, the model's label and every class's confidence."""
        names = self.dataset.class_names
        if getattr(self.model, "has_scores", True):
            probs = np.asarray(self.model.predict_proba(x), dtype=np.float64)[0]
            label = int(probs.argmax())
            confidences: list[float] | None = [round(float(p), 6) for p in probs]
            confidence: float | None = float(probs[label])
        else:
            label = int(np.asarray(self.model.predict(x))[0])
            confidences, confidence = None, None
        return {
            "image": png_data_url(x[0], self.bounds),
            "pixels": x[0].tolist(),
            "label": label,
            "label_name": names[label] if label < len(names) else str(label),
            "confidence": confidence,
            "confidences": confidences,
        }

    # -- step 2: attack ------------------------------------------------------------------
    def attack_settings(
        self, attack: str, strength: StrengthName, eps: float | None
    ) -> dict[str, Any]:
        """The attack's settings for ``strength``, with ``eps`` (range units) overriding."""
        check_choice("attack", attack, tuple(ATTACKS))
        check_choice("strength", strength, STRENGTHS)
        spec = ATTACKS[attack]
        settings = dict(spec.settings.get(strength, {}))
        width = self.bounds[1] - self.bounds[0]
        if eps is not None:
            if spec.eps is None:
                raise ValueError(
                    f"eps does not apply to {attack}: it is not bounded by an eps-ball; use "
                    f"strength instead"
                )
            if isinstance(eps, int) and not isinstance(eps, bool) and abs(eps) > 1:
                raise ValueError(
                    f"eps must be <= 1 (a fraction of the input range), got an integer of "
                    f"{len(str(abs(eps)))} digits"
                )
            check_number("eps", eps, low=0, high=1, low_inclusive=False)
        if spec.eps is not None:
            settings["eps"] = float(eps if eps is not None else spec.eps[strength]) * width
        if "seed" in registry.schema("evasion", attack):
            settings["seed"] = self.seed
        if attack == "greedy_pixel":
            n_features = math.prod(self.input_shape)
            settings["max_changes"] = max(1, round(settings["max_changes"] * n_features))
        return settings

    def _near_stroke(self, x: np.ndarray) -> np.ndarray:
        """Flat mask of the values within 2 pixels of ink (any channel above 10% of range).

        Greedy pixel tries every allowed value each round; on a 28x28 image that is ~800
        model calls a round (about 2 s on two busy cores). Far from the stroke a change
        rarely helps, so the demo lets it try only pixels near the stroke there.
        """
        low, high = self.bounds
        ink = ((x[0] - low) / (high - low) > 0.1).any(axis=0)
        near = np.zeros_like(ink)
        h, w = ink.shape
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = np.zeros_like(ink)
                shifted[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = ink[
                    max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
                ]
                near |= shifted
        if not near.any():
            near[:] = True
        return np.broadcast_to(near, x.shape[1:]).reshape(-1).copy()

    def attack(
        self,
        x: np.ndarray,
        *,
        attack: str,
        strength: StrengthName = "medium",
        eps: float | None = None,
    ) -> dict[str, Any]:
        """Attack one input; the original and adversarial views and the perturbation.

        The attack is untargeted against the model's own label of ``x`` (no true label
        is needed, so uploads work the same as gallery images).
        """
        settings = self.attack_settings(attack, strength, eps)
        why = self.attack_available(attack)
        if why is not None:
            raise ValueError(why)
        start = time.perf_counter()
        run_settings: dict[str, Any] = dict(settings)
        if attack == "greedy_pixel" and math.prod(self.input_shape) > _GREEDY_ALL_PIXELS:
            near = self._near_stroke(x)
            run_settings["constraints"] = FeatureConstraints(
                immutable=tuple(int(i) for i in np.flatnonzero(~near))
            )
            settings["pixels_tried"] = int(near.sum())
        result = registry.create("evasion", attack, **run_settings).generate(self.model, x)
        seconds = time.perf_counter() - start
        x_adv = np.asarray(result.x_adv, dtype=np.float32)
        original, adversarial = self.view(x), self.view(x_adv)
        delta = x_adv[0] - x[0]
        magnified, factor = perturbation_png(delta)
        width = self.bounds[1] - self.bounds[0]
        return {
            "attack": attack,
            "strength": strength,
            "settings": settings,
            "original": original,
            "adversarial": adversarial,
            "label_changed": adversarial["label"] != original["label"],
            "perturbation": {
                "image": magnified,
                "magnification": factor,
                "linf": float(np.abs(delta).max()) / width,
                "l2": float(np.linalg.norm(delta.ravel())) / width,
                "l0": int((np.abs(delta) > 1e-7).sum()),
            },
            "queries": int(np.asarray(result.queries).sum()),
            "seconds": round(seconds, 4),
        }

    # -- step 4: the adaptive attack ----------------------------------------------------
    def adaptive_attack(
        self,
        x: np.ndarray,
        *,
        defence: str,
        strength: StrengthName = "medium",
        attack_strength: StrengthName = "medium",
        eps: float | None = None,
    ) -> dict[str, Any]:
        """PGD against the defence as an attacker who knows it sees it: gradients through
        non-differentiable preprocessors by BPDA (identity on the backward pass) and
        through randomised ones by EOT (the mean over draws) -- Athalye, Carlini & Wagner,
        "Obfuscated Gradients Give a False Sense of Security", ICML 2018, §4.1-4.2.

        ``x`` is the original input: the attack starts over, now aimed at the defended
        model. The answer says whether the deployed defence (one draw, the real
        preprocessing) still gives the original's label.
        """
        from advml.defences.preprocess import DefendedClassifier

        prep = self.defence(defence, strength)
        settings = self.attack_settings("pgd", attack_strength, eps)
        start = time.perf_counter()
        deployed = DefendedClassifier(self.model, prep, seed=self.seed)
        adaptive = deployed.adaptive()
        if deployed.differentiable and not deployed.randomised:
            method = "exact gradients (the defence is differentiable)"
        else:
            parts = [
                name
                for name, used in (
                    ("BPDA", not deployed.differentiable),
                    ("EOT", deployed.randomised),
                )
                if used
            ]
            method = " + ".join(parts)
        result = registry.create("evasion", "pgd", **settings).generate(adaptive, x)
        x_adv = np.asarray(result.x_adv, dtype=np.float32)
        x_def = np.asarray(prep(x_adv, bounds=self.bounds), dtype=np.float32)
        seconds = time.perf_counter() - start
        original, adversarial, defended = self.view(x), self.view(x_adv), self.view(x_def)
        return {
            "defence": defence,
            "strength": strength,
            "method": method,
            "settings": settings,
            "original": original,
            "adversarial": adversarial,
            "defended": defended,
            "defence_broken": defended["label"] != original["label"],
            "queries": int(np.asarray(result.queries).sum()),
            "seconds": round(seconds, 4),
        }

    # -- step 3: defend ------------------------------------------------------------------
    def _autoencoder_path(self, strength: str) -> Path:
        return self.cache_dir / f"web-autoencoder-{self.dataset.name}-{strength}-seed{self.seed}.pt"

    def _defence_unavailable(self, name: str) -> str | None:
        if name == "autoencoder" and len(self.input_shape) != 3:
            return "the autoencoder works on images only"
        if name in ("median_smoothing", "jpeg") and len(self.input_shape) != 3:
            return f"{name.replace('_', ' ')} works on images only"
        return None

    @property
    def tabular(self) -> bool:
        """Whether the model takes feature vectors, not images: its gallery is then a
        table of its own test rows."""
        return len(self.input_shape) != 3

    def _gallery_names(self) -> list[str]:
        """What the gallery offers: the image datasets (resized to the model's input), or
        for a tabular model its own dataset's test rows."""
        return [self.dataset.name] if self.tabular else _image_datasets()

    def prepare_autoencoders(self, *, background: bool = True) -> None:
        """Load or train the autoencoder defence at every strength (once, then cached).

        With ``background`` the training runs in a daemon thread; until a strength is
        ready, defending with it raises :class:`DefenceNotReady`.
        """
        if self._defence_unavailable("autoencoder") is not None:
            return
        if background:
            if self._ae_thread is None:
                self._ae_thread = threading.Thread(
                    target=self._fit_autoencoders, name="advml-autoencoders", daemon=True
                )
                self._ae_thread.start()
        else:
            self._fit_autoencoders()

    def wait_for_defences(self, timeout: float | None = None) -> bool:
        """Wait for background training started by :meth:`prepare_autoencoders`.

        Returns ``True`` when no training is under way any more.
        """
        thread = self._ae_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _fit_autoencoders(self) -> None:
        for strength in STRENGTHS:
            path = self._autoencoder_path(strength)
            try:
                if path.exists():
                    ae = Autoencoder.load(path)
                else:
                    ae = Autoencoder(strength=strength, seed=self.seed).fit(
                        self.dataset.x_train, bounds=self.dataset.bounds, show_progress=False
                    )
                    path.parent.mkdir(parents=True, exist_ok=True)
                    ae.save(path)
            except (OSError, ValueError, RuntimeError) as err:
                log.warning("autoencoder (%s) unavailable: %s", strength, err)
                self._ae_errors[strength] = str(err)
                continue
            self._autoencoders[strength] = ae

    def defence(self, name: str, strength: StrengthName) -> Preprocessor:
        """The preprocessor ``name`` at ``strength``, sized to the model's input."""
        check_choice("defence", name, tuple(DEFENCES))
        check_choice("strength", strength, STRENGTHS)
        why = self._defence_unavailable(name)
        if why is not None:
            raise ValueError(why)
        if name == "autoencoder":
            if strength in self._autoencoders:
                return self._autoencoders[strength]
            if strength in self._ae_errors:
                raise ValueError(
                    f"the autoencoder could not be trained: {self._ae_errors[strength]}"
                )
            self.prepare_autoencoders()
            raise DefenceNotReady(
                "the autoencoder defence is still being trained on this dataset (first start "
                "only; it is cached afterwards); try again in a few seconds"
            )
        settings: dict[str, Any] = {"strength": strength}
        if name == "median_smoothing" and len(self.input_shape) == 3:
            # A window wider than half the image erases it (7x7 on 8x8 digits).
            presets = {"low": 3, "medium": 5, "high": 7}
            limit = max(1, (min(self.input_shape[1:]) // 2) | 1)
            settings["size"] = min(presets[strength], limit)
        if "seed" in registry.schema("preprocess", name):
            settings["seed"] = self.seed
        prep: Preprocessor = registry.create("preprocess", name, **settings)
        return prep

    def defend(
        self,
        x: np.ndarray,
        *,
        defence: str,
        strength: StrengthName = "medium",
        reference: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Cleanse one input; the input's and the defended input's views.

        With ``reference`` (the original the input was attacked from), the answer also
        says whether the defence restored the model's label of the original.
        """
        prep = self.defence(defence, strength)
        start = time.perf_counter()
        x_def = np.asarray(prep(x, bounds=self.bounds), dtype=np.float32)
        seconds = time.perf_counter() - start
        given, defended = self.view(x), self.view(x_def)
        out: dict[str, Any] = {
            "defence": defence,
            "strength": strength,
            "settings": prep.get_params(),
            "input": given,
            "defended": defended,
            "seconds": round(seconds, 4),
        }
        if reference is not None:
            original = self.view(reference)
            out["original_label"] = original["label"]
            out["restored"] = defended["label"] == original["label"]
        return out
