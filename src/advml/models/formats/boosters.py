"""Gradient-boosted trees from their native files: XGBoost (``.json``/``.ubj``),
LightGBM (``.txt``) and CatBoost (``.cbm``, when catboost is installed).

The adapter answers with scores (the booster's raw margins as logits, so their softmax
is the booster's probabilities) and no gradients; the library's own object stays
reachable as :attr:`BoosterClassifier.booster` for tree-aware tools.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from advml.models.base import BaseClassifier
from advml.models.formats.onnx import _normalisation
from advml.runtime.cache import fingerprint as hash_data

__all__ = ["BoosterClassifier", "load_booster", "sniff_booster"]

Library = Literal["xgboost", "lightgbm", "catboost"]
_INSTALL = {
    "xgboost": "pip install 'advml[xgboost]' (or pip install xgboost)",
    "lightgbm": "pip install 'advml[formats]' (or pip install lightgbm)",
    "catboost": "pip install catboost",
}


class BoosterClassifier(BaseClassifier):
    """A gradient-boosted tree ensemble as a black-box model with scores.

    Parameters
    ----------
    booster : xgboost.Booster, lightgbm.Booster or catboost.CatBoost
        The fitted ensemble; kept as :attr:`booster`.
    library : {"xgboost", "lightgbm", "catboost"}
        Which library it is from.
    n_classes : int
        Number of classes (2 for a binary objective).
    input_shape : tuple of int
        Shape of one input; its size must be the booster's number of features (inputs
        are flattened before the booster sees them).
    bounds : (float, float)
        Valid input range.
    preprocessing : (mean, std), optional
        Normalisation applied before the booster (inputs stay in ``bounds``).

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> from advml.models import BoosterClassifier
    >>> x = np.random.default_rng(0).random((60, 4)); y = (x[:, 0] > 0.5).astype(int)
    >>> b = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=y), 3)
    >>> model = BoosterClassifier(b, library="xgboost", n_classes=2, input_shape=(4,),
    ...                           bounds=(0, 1))
    >>> model.predict(x[:3].astype(np.float32)).shape
    (3,)
    """

    has_gradients = False
    has_scores = True

    def __init__(
        self,
        booster: Any,
        *,
        library: Library,
        n_classes: int,
        input_shape: tuple[int, ...],
        bounds: tuple[float, float],
        preprocessing: tuple[Any, Any] | None = None,
        device: torch.device | str | None = None,
        query_budget: int | None = None,
        batch_size: int = 4096,
    ) -> None:
        super().__init__(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            device=device,
            query_budget=query_budget,
            batch_size=batch_size,
        )
        if library not in _INSTALL:
            raise ValueError(f"library must be one of {', '.join(_INSTALL)}, got {library!r}")
        self.booster = booster
        self.library: Library = library
        self.preprocessing = preprocessing
        self._mean, self._std = _normalisation(preprocessing, self.input_shape)
        features = _n_features(booster, library)
        size = int(np.prod(self.input_shape))
        if features is not None and features != size:
            raise ValueError(
                f"input_shape {self.input_shape} has {size} values but the {library} model "
                f"takes {features} features; pass --input-shape {features} (Python: "
                f"input_shape=({features},))"
            )

    def margins(self, x: np.ndarray) -> np.ndarray:
        """The booster's raw scores for flattened inputs ``(n, n_features)``: shape
        ``(n,)`` for a binary model, ``(n, n_classes)`` otherwise."""
        if self.library == "xgboost":
            import xgboost as xgb

            return np.asarray(self.booster.predict(xgb.DMatrix(x), output_margin=True))
        if self.library == "lightgbm":
            return np.asarray(self.booster.predict(x, raw_score=True))
        return np.asarray(self.booster.predict(x, prediction_type="RawFormulaVal"))

    def _logits(self, x: Tensor) -> Tensor:
        arr = x.detach().cpu().numpy().astype(np.float32)
        if self._mean is not None and self._std is not None:
            arr = (arr - self._mean) / self._std
        m = self.margins(arr.reshape(arr.shape[0], -1)).astype(np.float64)
        if m.ndim == 1 or (m.ndim == 2 and m.shape[1] == 1 and self.n_classes == 2):
            # A binary model's margin m is the log-odds of class 1: logits (0, m) have
            # softmax (1 - sigmoid(m), sigmoid(m)).
            m = m.reshape(-1)
            m = np.stack([np.zeros_like(m), m], axis=1)
        return torch.as_tensor(m, dtype=torch.float32, device=self.device)

    def fingerprint(self) -> str:
        """A hash of the booster's serialised trees and the adapter's settings."""
        return hash_data(
            [self._identity(), _model_bytes(self.booster, self.library), repr(self.preprocessing)]
        )

    def describe(self) -> str:
        names = {"xgboost": "XGBoost", "lightgbm": "LightGBM", "catboost": "CatBoost"}
        return f"{names[self.library]} booster ({self.n_classes} classes), black-box (scores)"


def _n_features(booster: Any, library: Library) -> int | None:
    try:
        if library == "xgboost":
            return int(booster.num_features())
        if library == "lightgbm":
            return int(booster.num_feature())
        return len(booster.feature_names_) if booster.feature_names_ else None
    except Exception:  # an unfitted or unusual object: the first prediction says more
        return None


def _model_bytes(booster: Any, library: Library) -> bytes:
    if library == "xgboost":
        return bytes(booster.save_raw("ubj"))
    if library == "lightgbm":
        return str(booster.model_to_string()).encode()
    return repr(booster.get_params()).encode() + repr(booster.tree_count_).encode()


# -- files -------------------------------------------------------------------------------
def sniff_booster(data: bytes) -> Library | None:
    """Which booster library wrote ``data``, from its first bytes."""
    head = data[:256]
    if head.startswith(b"tree\nversion=") or head.startswith(b"tree\r\nversion="):
        return "lightgbm"
    if head.startswith(b"CBM1"):
        return "catboost"
    stripped = head.lstrip()
    if stripped.startswith(b"{") and b"learner" in head:
        return "xgboost"  # JSON ({"learner": ...}) or UBJSON ({L...learner)
    return None


def load_booster(path: pathlib.Path, data: bytes, library: Library) -> tuple[Any, int, str]:
    """The booster, its class count and its objective.

    Raises
    ------
    ImportError
        When the library is not installed (with the install command).
    ValueError
        For a damaged file or a regression model.
    """
    try:
        if library == "xgboost":
            import xgboost as xgb
        elif library == "lightgbm":
            import lightgbm as lgb
        else:
            import catboost
    except ImportError as e:
        raise ImportError(
            f"{str(path)!r} is a {library} model file; reading it needs {library}: "
            f"{_INSTALL[library]}"
        ) from e
    try:
        if library == "xgboost":
            booster: Any = xgb.Booster()
            booster.load_model(bytearray(data))
            config = json.loads(booster.save_config())["learner"]
            objective = str(config["objective"]["name"])
            n_classes = int(config["learner_model_param"].get("num_class", 0) or 0)
        elif library == "lightgbm":
            text = data.decode("utf-8")
            booster = lgb.Booster(model_str=text)
            # The header, before the first tree, names the objective.
            header = text.split("\nTree=", 1)[0].splitlines()
            objective = next(
                (ln.split("=", 1)[1] for ln in header if ln.startswith("objective=")), ""
            )
            n_classes = int(booster.num_model_per_iteration())
        else:
            booster = catboost.CatBoost()
            booster.load_model(blob=data)
            objective = str(booster.get_all_params().get("loss_function", ""))
            n_classes = len(getattr(booster, "classes_", []) or [])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{str(path)!r} is a damaged {library} model file ({_first_line(e)})"
        ) from None
    except Exception as e:  # the libraries' own error types (XGBoostError, LightGBMError)
        raise ValueError(
            f"{str(path)!r} is a damaged {library} model file ({_first_line(e)})"
        ) from None
    low = objective.lower()
    if low.startswith(
        (
            "reg",
            "regression",
            "rmse",
            "mae",
            "huber",
            "quantile",
            "poisson",
            "tweedie",
            "gamma",
            "survival",
            "rank",
            "lambdarank",
        )
    ):
        raise ValueError(
            f"{str(path)!r} is a {library} regression/ranking model (objective {objective!r}); "
            f"advml audits classifiers"
        )
    if n_classes <= 1:
        n_classes = 2  # a binary objective keeps one margin per input
    return booster, n_classes, objective


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
