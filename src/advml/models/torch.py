"""PyTorch adapter: any ``nn.Module`` that maps inputs to logits."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from advml.errors import UnsupportedModelError
from advml.models.base import BaseClassifier, Bounds, Normalisation, full_bounds, same_kind_as
from advml.runtime.cache import fingerprint as hash_data
from advml.runtime.device import (
    Precision,
    attack_chunk_size,
    autocast,
    check_precision,
    resolve_device,
)

__all__ = ["TorchClassifier", "reinitialise", "require_torch"]


class TorchClassifier(BaseClassifier):
    """White-box adapter for a PyTorch module that returns logits.

    Normalisation belongs here, never to an attack: inputs stay in ``bounds`` (for
    images usually ``[0, 1]``) and ``(x - mean) / std`` is applied inside :meth:`logits`.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch ``(n, *input_shape)`` to logits ``(n, n_classes)``.
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)``.
    n_classes : int
        Number of classes.
    bounds : (float, float)
        Valid input range before normalisation; default ``(0.0, 1.0)``.
    preprocessing : (mean, std), optional
        Normalisation applied inside the adapter. Scalars, or one value per channel
        (the first axis of ``input_shape``), or arrays of ``input_shape``.
    device : torch.device or str, optional
        Where to run. Defaults to the device of the module's parameters; when given and
        different, the module is moved there (``module.to(device)``).
    query_budget : int, optional
        Maximum number of inputs the model may evaluate.
    batch_size : int
        Inputs per forward pass in ``predict``/``predict_proba``/``activations``.
    precision : {"float32", "bf16"}
        ``"bf16"`` runs the module under ``torch.autocast`` to bfloat16 (faster on GPUs
        with bfloat16 tensor cores, and on recent CPUs); logits are returned as float32
        either way, so attacks, training and reports see float32 at their boundary.

    A ``device`` string may be ``"auto"`` (the GPU when there is one), ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``; one that does not exist here raises
    :class:`~advml.runtime.device.DeviceUnavailableError` naming ``device``.

    Examples
    --------
    >>> import torch
    >>> from advml.models import TorchClassifier
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> model = TorchClassifier(net, input_shape=(4,), n_classes=3, bounds=(0, 1))
    >>> model.predict(torch.zeros(2, 4)).shape
    torch.Size([2])
    """

    has_gradients = True
    has_scores = True

    def __init__(
        self,
        module: nn.Module,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: Bounds = (0.0, 1.0),
        preprocessing: Normalisation | None = None,
        device: torch.device | str | None = None,
        query_budget: int | None = None,
        batch_size: int = 256,
        precision: Precision = "float32",
    ) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if device is None:
            param = next(iter(module.parameters()), None)
            device = param.device if param is not None else torch.device("cpu")
        else:
            device = resolve_device(device)
        self.precision: Precision = check_precision("precision", precision)
        super().__init__(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            device=device,
            query_budget=query_budget,
            batch_size=batch_size,
        )
        self.module = module.to(self.device)
        self.preprocessing = preprocessing
        self._mean: Tensor | None = None
        self._std: Tensor | None = None
        if preprocessing is not None:
            try:
                mean, std = preprocessing
            except (TypeError, ValueError):
                raise ValueError(
                    f"preprocessing must be a pair (mean, std), got {preprocessing!r}"
                ) from None
            self._mean = self._broadcastable("preprocessing mean", mean)
            self._std = self._broadcastable("preprocessing std", std)
            if bool((self._std <= 0).any()):
                raise ValueError("preprocessing std must be > 0 everywhere")
        self._masks: dict[str, Tensor] = {}
        self._mask_hooks: dict[str, torch.utils.hooks.RemovableHandle] = {}

    def _broadcastable(self, name: str, value: object) -> Tensor:
        t = torch.as_tensor(np.asarray(value, dtype=np.float32), device=self.device)
        if t.ndim == 0 or t.shape == self.input_shape:
            return t
        per_channel = (self.input_shape[0], *([1] * (len(self.input_shape) - 1)))
        if t.ndim == 1 and t.shape[0] == self.input_shape[0]:
            return t.reshape(per_channel)
        if tuple(t.shape) == per_channel:  # torchvision's (C, 1, 1) habit
            return t
        raise ValueError(
            f"{name} must be a scalar, one value per channel ({self.input_shape[0]}, or shape "
            f"{per_channel}) or of shape {self.input_shape}; got shape {tuple(t.shape)}"
        )

    # -- scores ----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Normalise and run the module, without counting a query (for training)."""
        if self._mean is not None and self._std is not None:
            x = (x - self._mean) / self._std
        if self.precision == "bf16":
            with autocast(self.device, "bf16"):
                low: Tensor = self.module(x)
            return low.float()
        out: Tensor = self.module(x)
        return out

    def to(self, device: torch.device | str) -> TorchClassifier:
        """Move the network, the normalisation and any unit masks to ``device`` (``"auto"``,
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``); returns this adapter. Inputs given later in
        numpy or on another device are moved by :meth:`as_tensor`, and results come back as
        the caller gave the inputs."""
        target = resolve_device(device)
        if target == self.device:
            return self
        self.module.to(target)
        if self._mean is not None and self._std is not None:
            self._mean, self._std = self._mean.to(target), self._std.to(target)
        self._masks = {layer: mask.to(target) for layer, mask in self._masks.items()}
        self.device = target
        return self

    def attack_chunk_size(self) -> int | None:
        """Inputs per chunk for an iterative attack's default batching on this device:
        sized from the free GPU memory on CUDA (measured once per model), None on the
        CPU (the attack's own default then applies); see
        :func:`advml.runtime.device.attack_chunk_size`."""
        return attack_chunk_size(self)

    def _logits(self, x: Tensor) -> Tensor:
        return self.forward(x)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode (dropout off, batch-norm statistics frozen), then the caller's modes."""
        modes = [(m, m.training) for m in _submodules(self.module)]
        if not any(training for _, training in modes):
            yield  # already in eval mode (a served model, a loop of calls): nothing to undo
            return
        self.module.eval()
        try:
            yield
        finally:
            for m, training in modes:
                m.training = training

    # -- layers ------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """Names of the module's sub-layers, as ``module.named_modules()`` gives them."""
        return [name for name, _ in self.module.named_modules() if name]

    def _layer(self, layer: str) -> nn.Module:
        modules = dict(self.module.named_modules())
        if layer not in modules or not layer:
            raise UnsupportedModelError(
                f"layer {layer!r} not found; available layers: {', '.join(self.layer_names)}"
            )
        return modules[layer]

    def activations(
        self, x: np.ndarray | Tensor, layer: str, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor:
        """Outputs of ``layer`` for inputs ``x`` (with any unit masks applied).

        Returns an array of shape ``(n, *layer_output_shape)``; numpy in, numpy out.
        Activations are computed in eval mode without gradients and count as queries.
        """
        module = self._layer(layer)
        t = self.as_tensor(x)
        captured: list[Tensor] = []

        def hook(_m: nn.Module, _i: object, output: Tensor) -> None:
            captured.append(output.detach())

        handle = module.register_forward_hook(hook)
        try:
            self._batched(t, self.logits, batch_size)
        finally:
            handle.remove()
        return same_kind_as(torch.cat(captured), x)

    def n_units(self, layer: str) -> int:
        """Number of units of ``layer``: channels of a conv output, features of a linear one."""
        module = self._layer(layer)
        zero = torch.full((1, *self.input_shape), self.bounds[0], device=self.device)
        shapes: list[int] = []
        handle = module.register_forward_hook(lambda _m, _i, out: shapes.append(out.shape[1]))
        try:
            # A shape probe, not a query of the model's decisions: not counted.
            with torch.no_grad(), self.evaluating():
                self.forward(zero)
        finally:
            handle.remove()
        return int(shapes[0])

    # -- identity --------------------------------------------------------------------
    def fingerprint(self) -> str:
        """A hash of the weights (every tensor of the state dict) and the normalisation."""
        state = {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        parts: list[object] = [self._identity(), state, repr(self.preprocessing)]
        if self.precision != "float32":  # float32 fingerprints stay as they were
            parts.append(self.precision)
        return hash_data(parts)

    def describe(self) -> str:
        """One line for reports: the network, its size, white-box."""
        arch = getattr(self.module, "advml_architecture", None)
        n_params = sum(p.numel() for p in self.module.parameters())
        name = arch[0] if arch else type(self.module).__name__
        return f"PyTorch {name} ({n_params:,} parameters), white-box"

    def clone(self) -> TorchClassifier:
        """An independent copy: same network and weights, bounds, normalisation and masks.

        The copy's module is a deep copy without this adapter's mask hooks (their closures
        read this adapter's masks); the copy installs its own for the same masks. Its
        query counter starts at 0 and it has no query budget: it is a private copy for
        the owner's work (training, pruning, embedding), not the deployed API.
        """
        module = copy.deepcopy(self.module)
        named = dict(module.named_modules())
        for layer, handle in self._mask_hooks.items():
            named[layer]._forward_hooks.pop(handle.id, None)
        twin = TorchClassifier(
            module,
            input_shape=self.input_shape,
            n_classes=self.n_classes,
            bounds=full_bounds(self),
            preprocessing=self.preprocessing,
            device=self.device,
            batch_size=self.batch_size,
            precision=self.precision,
        )
        for layer, mask in self._masks.items():
            twin.set_unit_mask(layer, mask.bool())
        return twin

    def reinitialised(self, seed: int) -> TorchClassifier:
        """:meth:`clone` with fresh, seeded initial weights (same architecture): the
        start of training a model like this one from scratch (see :func:`reinitialise`)."""
        twin = self.clone()
        reinitialise(twin.module, seed)
        return twin

    def set_unit_mask(self, layer: str, keep: np.ndarray | Tensor | Sequence[bool]) -> None:
        """Zero the outputs of the units of ``layer`` where ``keep`` is False (pruning).

        ``keep`` has one boolean per unit (channel for conv layers). The mask stays in
        force for every later call until :meth:`clear_unit_masks`; the module's weights
        are not changed.
        """
        module = self._layer(layer)
        mask = torch.as_tensor(
            np.asarray(keep, dtype=bool) if not isinstance(keep, Tensor) else keep
        )
        units = self.n_units(layer) if layer not in self._masks else self._masks[layer].numel()
        if mask.ndim != 1 or mask.numel() != units:
            raise ValueError(
                f"keep must have one boolean per unit of {layer!r} ({units}), "
                f"got shape {tuple(mask.shape)}"
            )
        self._masks[layer] = mask.to(device=self.device, dtype=torch.float32)
        if layer not in self._mask_hooks:

            def hook(_m: nn.Module, _i: object, output: Tensor) -> Tensor:
                m = self._masks[layer]
                return output * m.reshape(1, -1, *([1] * (output.ndim - 2)))

            self._mask_hooks[layer] = module.register_forward_hook(hook)

    def unit_mask(self, layer: str) -> Tensor | None:
        """The keep-mask in force on ``layer``, or None."""
        mask = self._masks.get(layer)
        return None if mask is None else mask.bool()

    def clear_unit_masks(self) -> None:
        """Remove every unit mask."""
        for handle in self._mask_hooks.values():
            handle.remove()
        self._mask_hooks.clear()
        self._masks.clear()


def reinitialise(module: nn.Module, seed: int) -> list[str]:
    """Draw fresh initial weights for ``module`` in place, seeded; the global random state
    is left alone.

    Every submodule with ``reset_parameters()`` (linear, convolution, normalisation
    layers...) draws its own initial values again, in module order, so the same seed
    gives the same weights.

    Returns
    -------
    list of str
        The parameters no ``reset_parameters()`` covered (they keep their values); the
        caller decides whether that deserves a warning.
    """
    covered: set[int] = set()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for sub in module.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
                covered.update(id(p) for p in sub.parameters(recurse=False))
        missed = [name for name, p in module.named_parameters() if id(p) not in covered]
        if missed:
            # TorchScript and torch.export modules keep no reset_parameters(): PyTorch's
            # default initialisation, recognised from names and shapes (models/reinit.py).
            from advml.models.reinit import reset_by_shape

            missed = reset_by_shape(module, missed)
    return missed


def require_torch(
    model: object, who: str, needs: str = "its weights and layers"
) -> TorchClassifier:
    """``model`` if it is a :class:`TorchClassifier`, else :class:`UnsupportedModelError`
    saying who needs it, for what, and how to get one.

    Parameters
    ----------
    model : object
        The model given.
    who : str
        What needs it, e.g. ``"Uchida"`` or ``"Neural Cleanse"``.
    needs : str
        What of the network it needs, e.g. ``"its named layers"``.
    """
    if not isinstance(model, TorchClassifier):
        raise UnsupportedModelError(
            f"{who} needs a white-box PyTorch model (TorchClassifier) for {needs}; got "
            f"{type(model).__name__}. Wrap an nn.Module with advml.models.TorchClassifier"
        )
    return model


def _submodules(root: nn.Module) -> list[nn.Module]:
    """``root`` and every module under it (a shared one more than once), as
    ``root.modules()`` finds them without its names and duplicate check: about 4x faster,
    which matters when a served model answers each request under :meth:`evaluating`."""
    found = [root]
    i = 0
    while i < len(found):
        found.extend(m for m in found[i]._modules.values() if m is not None)
        i += 1
    return found
