"""Where the work runs: the ``--device`` choice, numeric precision, and chunks sized to the
device's memory.

``resolve_device("auto")`` picks the GPU when torch sees one; ``"cuda"`` on a torch without
CUDA (or on a machine without a GPU) is a clear :class:`DeviceUnavailableError` naming
``--device``, never torch's bare ``AssertionError``.

On a GPU, iterative attacks should run as few, large chunks as the memory allows: each
chunk costs the same number of kernel launches whatever its size, so small chunks leave
the device idle (PGD-20 with 65-image chunks on a ResNet-18 was 7.6x the raw gradient
work on an H200). :func:`cuda_chunk_size` measures one forward + backward pass's peak
memory on two small batches and sizes the chunk to a fraction of the free memory;
:func:`chunk_for_memory` is the arithmetic, kept apart so that it can be tested with
injected figures.
"""

from __future__ import annotations

import contextlib
import math
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from advml.errors import AdvmlError

__all__ = [
    "DEVICE_CHOICES",
    "PRECISIONS",
    "DeviceUnavailableError",
    "Precision",
    "attack_chunk_size",
    "autocast",
    "check_precision",
    "chunk_for_memory",
    "cuda_chunk_size",
    "describe_device",
    "place",
    "resolve_device",
]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
"""What ``--device`` accepts, for help texts and error messages."""

Precision = Literal["float32", "bf16"]
PRECISIONS: tuple[str, ...] = ("float32", "bf16")

# Share of the free device memory one chunk may use. The rest covers what the estimate
# leaves out (allocator fragmentation, cuDNN workspaces of other algorithms, other work in
# the process) and keeps the chunk safe when a second model shares the GPU.
MEMORY_FRACTION = 0.5
# Per input, an iterative attack keeps about this many extra copies of the input beside
# the forward + backward pass (APGD: current, previous, best point, their gradients, the
# output, the clean input...).
ATTACK_COPIES = 12
# The largest chunk the GPU sizing gives: beyond it a pass is long enough that a larger
# chunk gains nothing measurable, and the per-sample bookkeeping tensors stay small.
MAX_GPU_CHUNK = 16_384


class DeviceUnavailableError(AdvmlError, ValueError):
    """The device asked for does not exist in this process (no CUDA build, no GPU, a GPU
    index out of range)."""


def resolve_device(spec: str | torch.device | None, *, name: str = "device") -> torch.device:
    """The ``torch.device`` a ``--device`` value names, checked to exist.

    Parameters
    ----------
    spec : str or torch.device or None
        ``"auto"`` (the GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"``, or a ``torch.device``; ``None`` means ``"auto"``.
    name : str
        The parameter's name in error messages (``"device"``, ``"--device"``).

    Raises
    ------
    DeviceUnavailableError
        When CUDA is asked for and this torch build or machine has none, or the index is
        out of range; the message names ``name`` and the values that work here.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if isinstance(spec, str):
        try:
            device = torch.device(spec.strip().lower())
        except RuntimeError:
            raise DeviceUnavailableError(
                f"{_setting(name, str(spec))} is not a device; use {DEVICE_CHOICES}"
            ) from None
    elif isinstance(spec, torch.device):
        device = spec
    else:
        raise DeviceUnavailableError(
            f"{name} must be a string ({DEVICE_CHOICES}) or a torch.device, "
            f"got {type(spec).__name__}"
        )
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                f"this torch ({torch.__version__}) was built without CUDA"
                if torch.version.cuda is None
                else "torch sees no GPU on this machine"
            )
            raise DeviceUnavailableError(
                f"{_setting(name, str(spec))} asks for a GPU, but {why}; use "
                f"{_setting(name, 'cpu')} or {_setting(name, 'auto')} (auto picks the GPU "
                f"when there is one)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceUnavailableError(
                f"{_setting(name, str(spec))}: there are {count} GPU(s), numbered 0 to {count - 1}"
            )
        return device
    if device.type == "meta":  # shape-only runs (tests); nothing to check
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceUnavailableError(
                f"{_setting(name, str(spec))}: this machine or torch build has no Apple MPS "
                f"device; use {_setting(name, 'cpu')}"
            )
        return device
    raise DeviceUnavailableError(
        f"{_setting(name, str(spec))} is not supported; use {DEVICE_CHOICES}"
    )


def place(
    model: Any,
    device: str | torch.device | None = None,
    precision: str | None = None,
    *,
    name: str = "device",
) -> Any:
    """``model`` moved to ``device`` and set to ``precision``, for the commands, the audit
    and the web demo (which load or build a model, then place it).

    A PyTorch adapter (anything with ``to(device)`` and a ``precision`` attribute, such as
    :class:`~advml.models.TorchClassifier`) moves; other models (scikit-learn, a prediction
    function) compute where they are, with a warning when a GPU was asked for by name.
    ``device=None`` means ``"auto"``; ``precision=None`` leaves the model's own.
    """
    target = resolve_device(device, name=name)
    move = getattr(model, "to", None)
    if callable(move) and hasattr(model, "module"):
        model = move(target)
    elif target.type != "cpu" and device not in (None, "auto"):
        warnings.warn(
            f"{name}={device}: {type(model).__name__} computes outside PyTorch and stays "
            f"where it is; only PyTorch models run on the GPU",
            stacklevel=2,
        )
    if precision is not None:
        chosen = check_precision(name.replace("device", "precision"), precision)
        if hasattr(model, "precision"):
            model.precision = chosen
        elif chosen != "float32":
            warnings.warn(
                f"precision={chosen} applies to PyTorch models only; "
                f"{type(model).__name__} keeps its own",
                stacklevel=2,
            )
    return model


def _setting(name: str, value: str) -> str:
    """How a user writes ``name`` set to ``value``: ``--device cpu`` or ``device='cpu'``."""
    return f"{name} {value}" if name.startswith("--") else f"{name}={value!r}"


def describe_device(device: torch.device) -> str:
    """One line for reports: ``"cpu"``, or ``"cuda:0 (NVIDIA H200, 139 GiB)"``."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"


def check_precision(name: str, value: object) -> Precision:
    """``value`` if it is a precision advml knows (``"float32"`` or ``"bf16"``), else a
    ValueError naming ``name``; ``"bfloat16"`` is accepted as ``"bf16"``."""
    if value == "bfloat16":
        return "bf16"
    if value not in PRECISIONS:
        raise ValueError(
            f"{name} must be one of {', '.join(PRECISIONS)}, got {value!r} "
            f"(bf16 runs the model's forward pass under torch.autocast)"
        )
    return "bf16" if value == "bf16" else "float32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision) -> Iterator[None]:
    """``torch.autocast`` to bfloat16 on ``device`` for ``precision="bf16"``; nothing for
    float32. Matrix products and convolutions then run in bfloat16; callers cast what they
    return to float32, so results keep their dtype at the public boundary."""
    if precision != "bf16":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


def chunk_for_memory(
    *,
    free_bytes: int,
    bytes_per_input: float,
    fixed_bytes: float = 0.0,
    fraction: float = MEMORY_FRACTION,
    minimum: int = 16,
    maximum: int = MAX_GPU_CHUNK,
) -> int:
    """How many inputs one chunk may hold so that it uses at most ``fraction`` of
    ``free_bytes``.

    ``(fraction * free_bytes - fixed_bytes) / bytes_per_input``, rounded down to a
    multiple of 8 (tensor-core friendly batch sizes) and kept within ``[minimum,
    maximum]``; ``minimum`` also when even that much does not fit (the pass then fails
    with torch's out-of-memory error, which names the memory, rather than a silent
    batch of 1).

    Examples
    --------
    >>> chunk_for_memory(free_bytes=80 * 2**30, bytes_per_input=2 * 2**20)
    16384
    >>> chunk_for_memory(free_bytes=2**30, bytes_per_input=2**20)
    512
    """
    if bytes_per_input <= 0 or not math.isfinite(bytes_per_input):
        return maximum
    room = fraction * free_bytes - fixed_bytes
    n = int(room // bytes_per_input)
    n = n - n % 8 if n >= 8 else n
    return int(min(maximum, max(minimum, n)))


# One measurement per (module, input shape, precision): the module's memory per input
# does not change between attacks, and a measurement costs two passes.
_MEASURED: weakref.WeakKeyDictionary[object, dict[tuple[object, ...], tuple[float, float]]] = (
    weakref.WeakKeyDictionary()
)


def measure_pass(
    forward: Callable[[Tensor], Tensor],
    input_shape: tuple[int, ...],
    device: torch.device,
    *,
    low: float = 0.0,
    high: float = 1.0,
    small: int = 4,
    large: int = 16,
) -> tuple[float, float]:
    """Peak CUDA memory of one forward + backward pass (gradient w.r.t. the input) on
    ``small`` and on ``large`` inputs: returns ``(bytes per input, fixed bytes)``.

    The difference of the two peaks divided by ``large - small`` is the cost of one more
    input (activations kept for the backward pass, their gradients); what remains is the
    part that does not grow with the batch (workspaces). Measured from the memory already
    allocated before the pass, so the weights are not counted.
    """
    peaks = []
    for n in (small, large):
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        x = torch.empty((n, *input_shape), device=device).uniform_(low, high)
        x.requires_grad_(True)
        with torch.enable_grad():
            out = forward(x)
            (grad,) = torch.autograd.grad(out.float().logsumexp(1).sum(), x)
        del out, grad, x
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_input = max(0.0, (peaks[1] - peaks[0]) / (large - small))
    fixed = max(0.0, peaks[0] - small * per_input)
    return per_input, fixed


def cuda_chunk_size(
    key: object,
    forward: Callable[[Tensor], Tensor],
    input_shape: tuple[int, ...],
    device: torch.device,
    *,
    bounds: tuple[float, float] = (0.0, 1.0),
    tag: object = None,
) -> int:
    """The default chunk of an iterative attack on a CUDA model: measured once per
    ``key`` (the module), then sized from the free memory now (:func:`chunk_for_memory`).

    Per input it counts the measured pass plus :data:`ATTACK_COPIES` float32 copies of
    the input that the attack keeps.
    """
    cache = _MEASURED.setdefault(key, {})
    k = (tuple(input_shape), str(device), tag)
    if k not in cache:
        cache[k] = measure_pass(forward, input_shape, device, low=bounds[0], high=bounds[1])
    per_input, fixed = cache[k]
    per_input += ATTACK_COPIES * 4 * math.prod(input_shape)
    free, _total = torch.cuda.mem_get_info(device)
    # Memory torch's caching allocator holds but no tensor uses is free for this process
    # too, though the driver counts it as taken.
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return chunk_for_memory(
        free_bytes=int(free + cached), bytes_per_input=per_input, fixed_bytes=fixed
    )


def attack_chunk_size(model: object) -> int | None:
    """The default chunk of an iterative attack on ``model`` when it runs on a GPU (sized
    by :func:`cuda_chunk_size`), or None elsewhere (the caller's CPU default applies).

    Uses the model's uncounted ``forward`` (white-box adapters; other models get None),
    so sizing never spends a query.
    """
    device = getattr(model, "device", None)
    if not isinstance(device, torch.device) or device.type != "cuda":
        return None
    # White-box adapters only: another model's uncounted pass may still be a paid call
    # (a prediction function), which sizing must never make.
    forward = getattr(model, "forward", None)
    input_shape = getattr(model, "input_shape", None)
    if forward is None or input_shape is None:
        return None
    bounds = getattr(model, "bounds", (0.0, 1.0))
    # Scalar bounds, or per-feature arrays: the probe only needs values in range.
    low, high = float(np.max(bounds[0])), float(np.min(bounds[1]))
    # Measured in eval mode: a pass in train mode would update batch-norm statistics.
    evaluating = getattr(model, "evaluating", None)
    with evaluating() if callable(evaluating) else contextlib.nullcontext():
        return cuda_chunk_size(
            model,
            forward,
            tuple(input_shape),
            device,
            bounds=(low, max(low, high)),
            tag=getattr(model, "precision", None),
        )
