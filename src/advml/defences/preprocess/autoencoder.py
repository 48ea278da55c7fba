"""A trained denoising autoencoder: MagNet's reformer (Meng & Chen, CCS 2017)."""

from __future__ import annotations

import io
import os
import pathlib
import pickle
from collections import OrderedDict
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from advml import registry
from advml.defences.preprocess.base import (
    Preprocessor,
    Strength,
    check_optional,
    check_seed,
)
from advml.errors import UntrustedFileError
from advml.imaging import from_unit, to_unit
from advml.models.torch import TorchClassifier
from advml.models.training import History, train
from advml.runtime.files import atomic_write
from advml.validation import check_bounds, check_choice, check_finite, check_number

__all__ = ["Autoencoder", "build_autoencoder"]

FORMAT = "advml-autoencoder"
FORMAT_VERSION = 1


def build_autoencoder(input_shape: tuple[int, ...], channels: int) -> nn.Sequential:
    """MagNet's MNIST autoencoder shape (Meng & Chen 2017, Table 1), with ReLU inside.

    Conv 3x3 - average pool 2x2 - conv 3x3 - conv 3x3 - upsample - conv 3x3 - conv 3x3
    back to the input's channels, with a sigmoid output in ``[0, 1]``. The bottleneck
    halves the resolution, so the reformer cannot simply copy its input.
    """
    c, h, w = input_shape
    return nn.Sequential(
        OrderedDict(
            enc1=nn.Conv2d(c, channels, 3, padding=1),
            act1=nn.ReLU(),
            pool=nn.AvgPool2d(2, ceil_mode=True),
            enc2=nn.Conv2d(channels, channels, 3, padding=1),
            act2=nn.ReLU(),
            dec1=nn.Conv2d(channels, channels, 3, padding=1),
            act3=nn.ReLU(),
            up=nn.Upsample(size=(h, w), mode="nearest"),
            dec2=nn.Conv2d(channels, channels, 3, padding=1),
            act4=nn.ReLU(),
            out=nn.Conv2d(channels, c, 3, padding=1),
            sigmoid=nn.Sigmoid(),
        )
    )


class _ReconstructionLogits(nn.Module):
    """Two "logits" whose cross-entropy with label 0 is the reconstruction error.

    The shared training loop validates with cross-entropy; with logits ``[0, z]`` and
    ``z = log(exp(mse) - 1)``, ``CE = log(1 + exp(z)) = mse`` exactly, so its early
    stopping watches the mean squared reconstruction error of clean validation inputs.
    """

    def __init__(self, net: nn.Module, bounds: tuple[float, float]) -> None:
        super().__init__()
        self.net = net
        self.bounds = bounds

    def forward(self, x: Tensor) -> Tensor:
        u = to_unit(x, self.bounds)
        mse = (self.net(u) - u).pow(2).flatten(1).mean(1)
        z = torch.log(torch.expm1(mse.clamp_min(1e-12)))
        return torch.stack([torch.zeros_like(z), z], dim=1)


@registry.register("preprocess", "autoencoder")
class Autoencoder(Preprocessor):
    """Reform inputs with an autoencoder trained to denoise clean data (MagNet).

    Meng & Chen (2017, §3.3) train an autoencoder on clean data only, with small
    Gaussian noise added to its input, to reconstruct the clean image; passing an
    input through it moves it towards the manifold of clean data (the "reformer"). Its
    reconstruction error ``||x - AE(x)||`` is large off that manifold, which makes it a
    detector too (§3.2; see :meth:`reconstruction_error` and
    :class:`advml.defences.detection.AutoencoderDetector`).

    It is differentiable, so a white-box attacker simply attacks through it (Carlini &
    Wagner, "MagNet and 'Efficient defenses...' are not robust", 2017).

    Call :meth:`fit` on clean training inputs before use; :meth:`save` and :meth:`load`
    keep the fitted network in a file that loads without running code.

    Parameters
    ----------
    strength : {"low", "medium", "high"}
        Preset training noise: sigma 0.05, 0.1 (MagNet's) or 0.2 of the bounds' width.
        A reformer trained on stronger noise pulls inputs harder towards clean data.
    noise : float, optional
        Training noise sigma (fraction of the bounds' width, >= 0); overrides the preset.
    channels : int
        Filters of each convolution (MagNet uses 3).
    epochs : int
        Maximum training epochs (early stopping on held-out reconstruction error).
    batch_size : int
        Training batch size.
    lr : float
        Adam learning rate.
    seed : int
        Seeds the initial weights, the split, shuffling and the training noise.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network, mapping ``[0, 1]``-scaled inputs to reconstructions.
    input_shape_ : tuple of int
        Shape of one input it was fitted on.
    bounds_ : (float, float)
        Bounds of the data it was fitted on.
    history_ : History or None
        The training history (``None`` after :meth:`load`).
    """

    differentiable = True
    randomised = False
    needs_fit = True
    image_only = True
    presets: ClassVar[dict[str, dict[str, float]]] = {
        "low": {"noise": 0.05},
        "medium": {"noise": 0.1},
        "high": {"noise": 0.2},
    }

    def __init__(
        self,
        *,
        strength: Strength = "medium",
        noise: float | None = None,
        channels: int = 8,
        epochs: int = 10,
        batch_size: int = 64,
        lr: float = 1e-2,
        seed: int = 0,
    ) -> None:
        check_optional("noise", noise, low=0)
        check_number("channels", channels, low=1, integer=True)
        check_number("epochs", epochs, low=1, integer=True)
        check_number("batch_size", batch_size, low=1, integer=True)
        check_number("lr", lr, low=0, low_inclusive=False)
        check_seed(seed)
        self._init_strength(strength, noise=noise)
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed

    # -- fitting -------------------------------------------------------------------------
    def fit(
        self,
        x_train: np.ndarray | Tensor,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        show_progress: bool = True,
    ) -> Autoencoder:
        """Train the reformer on clean inputs with the shared training loop; return self.

        Parameters
        ----------
        x_train : array of shape (n, channels, height, width)
            Clean inputs within ``bounds`` (labels are not needed). 10% are held out to
            stop early when the reconstruction error stops falling.
        bounds : (float, float)
            Minimum and maximum valid input value.
        show_progress : bool
            Show a progress bar over epochs.
        """
        low, high = check_bounds("bounds", bounds)
        if not isinstance(x_train, np.ndarray | Tensor):
            x_train = np.asarray(x_train)
        if x_train.ndim != 4 or x_train.shape[0] < 2:
            raise ValueError(
                f"x_train must be a batch of at least 2 images (n, channels, height, width), "
                f"got shape {tuple(x_train.shape)}"
            )
        check_finite("x_train", x_train)
        shape = tuple(int(d) for d in x_train.shape[1:])
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            net = build_autoencoder(shape, int(self.channels))
        wrapper = TorchClassifier(
            _ReconstructionLogits(net, (low, high)),
            input_shape=shape,
            n_classes=2,
            bounds=(low, high),
        )
        sigma = float(self.resolved()["noise"])

        def denoising_loss(model: TorchClassifier, xb: Tensor, _yb: Tensor) -> Tensor:
            u = to_unit(xb, (low, high))
            noisy = (u + sigma * torch.randn_like(u)).clamp(0, 1) if sigma > 0 else u
            return F.mse_loss(net(noisy), u)

        history = train(
            wrapper,
            x_train,
            np.zeros(x_train.shape[0], dtype=np.int64),
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            loss_fn=denoising_loss,
            seed=int(self.seed),
            show_progress=show_progress,
            desc="training autoencoder",
        )
        net.eval().requires_grad_(False)
        self.module_ = net
        self.input_shape_ = shape
        self.bounds_ = (low, high)
        self.history_: History | None = history
        return self

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "module_")

    def _check_fitted(self) -> nn.Module:
        if not self.is_fitted:
            raise RuntimeError(
                "this Autoencoder is not fitted yet: call fit(x_train) on clean data, or "
                "load a fitted one with Autoencoder.load(path)"
            )
        return self.module_

    def check_input_shape(self, input_shape: tuple[int, ...]) -> None:
        super().check_input_shape(input_shape)
        self._check_fitted()
        if tuple(input_shape) != self.input_shape_:
            raise ValueError(
                f"x must have inputs of shape {self.input_shape_} (the shape the "
                f"autoencoder was fitted on), got {tuple(input_shape)}"
            )

    # -- using it ------------------------------------------------------------------------
    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
        net = self._check_fitted().to(x.device)
        # The fitted network is always used in inference mode (it has no dropout or
        # batch norm, so this only guards against a caller's module.train()).
        return from_unit(net(to_unit(x, bounds).clamp(0, 1)), bounds)

    def reconstruction_error(
        self,
        x: np.ndarray | Tensor,
        *,
        norm: Literal["1", "2"] = "1",
        bounds: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """Mean absolute (``norm="1"``) or squared (``"2"``) error of each reconstruction.

        MagNet's detector score (Meng & Chen 2017, §3.2): large where the input lies off
        the clean data the autoencoder learnt. Computed in ``[0, 1]``-scaled units.

        Returns
        -------
        numpy array of shape (n,)
        """
        check_choice("norm", norm, ("1", "2"))
        b = self.bounds_ if bounds is None and self.is_fitted else (bounds or (0.0, 1.0))
        recon = self(x, bounds=b)
        xt = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach())
        rt = torch.as_tensor(np.asarray(recon) if not isinstance(recon, Tensor) else recon)
        diff = (to_unit(rt.float().cpu(), b) - to_unit(xt.float().cpu(), b)).flatten(1)
        err = diff.abs().mean(1) if norm == "1" else diff.pow(2).mean(1)
        return err.numpy()

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """Write the fitted autoencoder to ``path`` as tensors and plain data (no pickle)."""
        net = self._check_fitted()
        payload: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "settings": self.get_params(),
            "input_shape": list(self.input_shape_),
            "bounds": list(self.bounds_),
            "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path = pathlib.Path(path)
        atomic_write(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Autoencoder:
        """Read an autoencoder written by :meth:`save`; nothing in the file is executed."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"autoencoder file {str(path)!r} does not exist")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise UntrustedFileError(
                f"{str(path)!r} holds Python objects beyond tensors and plain data; advml "
                f"reads only autoencoders written by Autoencoder.save"
            ) from None
        except Exception as e:
            raise ValueError(f"{str(path)!r} is not a readable autoencoder file: {e}") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not an autoencoder written by Autoencoder.save")
        if obj.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has autoencoder format version {obj.get('version')!r}; this "
                f"advml reads version {FORMAT_VERSION}"
            )
        settings = obj["settings"]
        prep = cls(**{k: v for k, v in settings.items() if k in cls._param_names()})
        shape = tuple(int(d) for d in obj["input_shape"])
        net = build_autoencoder(shape, int(prep.channels))
        try:
            net.load_state_dict(obj["state"], strict=True)
        except RuntimeError as e:
            raise ValueError(f"{str(path)!r} has weights that do not fit: {e}") from None
        net.eval().requires_grad_(False)
        prep.module_ = net
        prep.input_shape_ = shape
        prep.bounds_ = (float(obj["bounds"][0]), float(obj["bounds"][1]))
        prep.history_ = None
        return prep
