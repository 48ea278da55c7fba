"""ONNX models: white-box when the graph converts to PyTorch and the converted network
answers as onnxruntime does, black-box through onnxruntime otherwise.

The conversion uses onnx2pytorch, which converts the opset-20 graphs that
``torch.onnx.export`` writes (Gelu and ReduceMean included). It imports
``torchvision.ops`` at import time (for DeformConv, RoiAlign, NMS); where torchvision is
not importable (it does not import beside every torch), a stand-in module is put in
place for that one import, whose functions raise: a graph that uses those operators
then stays black-box.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from advml.errors import UnsupportedModelError
from advml.models.base import BaseClassifier
from advml.models.formats.torch_files import PROBE_SEED, FixedBatch

__all__ = ["OnnxGraph", "OnnxRuntimeClassifier", "convert", "read_graph"]

# The converted network must answer as onnxruntime does within this much (issue 13:
# "to 1e-4"): float32 kernels of two libraries differ by a few ulps, a wrong conversion
# by far more.
CONVERSION_TOLERANCE = 1e-4
_PROBES = 8
_PROBA_FLOOR = 1e-12


class OnnxGraph:
    """What advml reads from an ONNX graph: its input, batch size, class count, output."""

    def __init__(self, proto: Any, data: bytes) -> None:
        self.proto = proto
        self.data = data
        graph = proto.graph
        initialisers = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initialisers]
        self.n_inputs = len(inputs)
        self.input_name = inputs[0].name if inputs else ""
        dims = _dims(inputs[0]) if inputs else []
        self.batch: int | None = dims[0] if dims and isinstance(dims[0], int) else None
        rest = dims[1:]
        self.input_shape: tuple[int, ...] | None = (
            tuple(int(d) for d in rest) if rest and all(isinstance(d, int) for d in rest) else None
        )
        # The scores: the first float output of rank 2 (a scikit-learn export also has
        # a label output).
        self.output_index = 0
        self.n_classes: int | None = None
        for k, out in enumerate(graph.output):
            out_dims = _dims(out)
            if out.type.tensor_type.elem_type in (1, 10, 11) and len(out_dims) == 2:
                self.output_index = k
                last = out_dims[1]
                self.n_classes = last if isinstance(last, int) else None
                break
        self.output_name = graph.output[self.output_index].name if graph.output else ""
        producer = {o: n.op_type for n in graph.node for o in n.output}
        # A Softmax at the end gives probabilities; advml's scores are logits, whose
        # softmax must be the probabilities: the log is taken.
        self.returns_probabilities = producer.get(self.output_name) == "Softmax"
        self.opset = max(
            (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0
        )


def _dims(value_info: Any) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def read_graph(path: pathlib.Path, data: bytes) -> OnnxGraph | None:
    """The graph when ``data`` is an ONNX model (a protobuf with nodes), else None."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        proto = onnx.load_model_from_string(data)
    except Exception:
        return None
    if proto.ir_version <= 0 or not proto.graph.node or not proto.graph.output:
        return None
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer):
        # torch.onnx.export writes the weights beside the graph (net.onnx.data); onnx
        # refuses locations outside the model's folder.
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, str(path.parent))
        except Exception as e:
            raise ValueError(
                f"{str(path)!r}: the ONNX graph keeps its weights in a separate file that "
                f"cannot be read ({_first_line(e)}); keep the .onnx.data file beside it"
            ) from None
        data = proto.SerializeToString()
    return OnnxGraph(proto, data)


def session(path: pathlib.Path, graph: OnnxGraph) -> Any:
    """An onnxruntime session of the graph, on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError(
            "reading .onnx files needs onnxruntime: pip install 'advml[formats]'"
        ) from e
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            graph.data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:
        raise ValueError(
            f"{str(path)!r}: onnxruntime cannot run this graph ({_first_line(e)})"
        ) from None


class OnnxRuntimeClassifier(BaseClassifier):
    """A black-box adapter that runs an ONNX graph with onnxruntime (scores, no gradients).

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        The graph's session; reachable as :attr:`session`.
    input_shape : tuple of int
        Shape of one input.
    n_classes : int
        Number of classes.
    bounds : (float, float)
        Valid input range.
    input_name, output_index : str, int
        The graph's input and the index of its score output.
    batch : int, optional
        The batch size the graph fixes (inputs are run in chunks of it, padded), or None.
    returns_probabilities : bool
        The output is probabilities (a Softmax at the end): their log is the logits.
    preprocessing : (mean, std), optional
        Normalisation applied before the graph (inputs stay in ``bounds``).
    device : torch.device or str, optional
        Device of the tensors returned; the graph itself runs on the CPU.
    """

    has_gradients = False
    has_scores = True

    def __init__(
        self,
        session: Any,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float],
        input_name: str,
        output_index: int = 0,
        batch: int | None = None,
        returns_probabilities: bool = False,
        preprocessing: tuple[Any, Any] | None = None,
        device: torch.device | str | None = None,
        query_budget: int | None = None,
        batch_size: int = 256,
    ) -> None:
        super().__init__(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            device=device,
            query_budget=query_budget,
            batch_size=batch_size,
        )
        self.session = session
        self.input_name = input_name
        self.output_index = int(output_index)
        self.batch = batch
        self.returns_probabilities = bool(returns_probabilities)
        self.preprocessing = preprocessing
        self._mean, self._std = _normalisation(preprocessing, self.input_shape)

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: x})[self.output_index]
        return np.asarray(out, dtype=np.float32)

    def _logits(self, x: Tensor) -> Tensor:
        arr = x.detach().cpu().numpy().astype(np.float32)
        if self._mean is not None and self._std is not None:
            arr = ((arr - self._mean) / self._std).astype(np.float32)
        n, b = arr.shape[0], self.batch
        if b is None or b == n:
            out = self._run(arr)
        else:
            parts = []
            for start in range(0, n, b):
                chunk = arr[start : start + b]
                short = b - chunk.shape[0]
                if short:
                    chunk = np.concatenate([chunk, np.zeros((short, *chunk.shape[1:]), np.float32)])
                parts.append(self._run(chunk)[: b - short])
            out = np.concatenate(parts)
        if out.shape != (n, self.n_classes):
            raise UnsupportedModelError(
                f"the ONNX graph returned shape {out.shape} for {n} inputs; expected "
                f"({n}, {self.n_classes}) scores"
            )
        if self.returns_probabilities:
            out = np.log(np.maximum(out, _PROBA_FLOOR))
        return torch.as_tensor(out, device=self.device)

    def describe(self) -> str:
        return f"ONNX graph through onnxruntime ({self.n_classes} classes), black-box (scores)"


def _normalisation(
    preprocessing: tuple[Any, Any] | None, input_shape: tuple[int, ...]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if preprocessing is None:
        return None, None
    out = []
    for value in preprocessing:
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 1 and arr.shape[0] == input_shape[0] and len(input_shape) > 1:
            arr = arr.reshape(input_shape[0], *([1] * (len(input_shape) - 1)))
        out.append(arr)
    return out[0], out[1]


# -- conversion to PyTorch -------------------------------------------------------------
class _LogOf(nn.Module):
    """log of a network's probabilities: logits whose softmax is them."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return torch.log(self.inner(x).clamp_min(_PROBA_FLOOR))


class _Pick(nn.Module):
    """One output of a network with several (a list or tuple)."""

    def __init__(self, inner: nn.Module, index: int) -> None:
        super().__init__()
        self.inner = inner
        self.index = index

    def forward(self, x: Tensor) -> Tensor:
        out = self.inner(x)
        return out[self.index] if isinstance(out, list | tuple) else out


def _stand_in(name: str, missing: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__doc__ = "advml's stand-in for torchvision while importing onnx2pytorch"

    def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise UnsupportedModelError(
            f"this ONNX graph uses an operator ({missing}) that onnx2pytorch runs with "
            f"torchvision, which cannot be imported here; the model stays black-box"
        )

    for attr in ("deform_conv2d", "roi_pool", "roi_align", "nms", "box_convert", "decode_image"):
        setattr(module, attr, unavailable)
    module.ImageReadMode = types.SimpleNamespace(UNCHANGED=0)  # type: ignore[attr-defined]
    return module


@contextlib.contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    """A stand-in ``torchvision`` in ``sys.modules`` during the import of onnx2pytorch
    when the real one cannot be imported; removed afterwards, so nothing else sees it."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # missing, or built for another torch (RuntimeError, OSError...)
        pass
    else:
        yield
        return
    names = ("torchvision", "torchvision.ops", "torchvision.io")
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n.split(".")[0] == "torchvision"}
    root = _stand_in("torchvision", "torchvision")
    root.ops = _stand_in("torchvision.ops", "DeformConv / RoiAlign / MaxRoiPool / NMS")  # type: ignore[attr-defined]
    root.io = _stand_in("torchvision.io", "ImageDecoder")  # type: ignore[attr-defined]
    sys.modules.update(
        {"torchvision": root, "torchvision.ops": root.ops, "torchvision.io": root.io}
    )
    try:
        yield
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def import_converter() -> Any:
    """onnx2pytorch's ``ConvertModel`` (see the module docstring about torchvision)."""
    if "onnx2pytorch" in sys.modules:
        return sys.modules["onnx2pytorch"].ConvertModel
    with _torchvision_stand_in():
        import onnx2pytorch
    return onnx2pytorch.ConvertModel


def convert(
    graph: OnnxGraph,
    sess: Any,
    input_shape: tuple[int, ...],
    bounds: tuple[float, float],
) -> tuple[nn.Module | None, str]:
    """The graph as a PyTorch network that answers as onnxruntime does, or None; and why.

    The converted network is compared with onnxruntime on seeded probe inputs within
    the bounds (largest difference of the raw outputs <= 1e-4 times their scale, at
    least 1e-4) and must give finite input gradients.
    """
    try:
        convert_model = import_converter()
    except ImportError as e:
        return None, f"onnx2pytorch is not installed ({e}); pip install 'advml[formats]'"
    try:
        module: nn.Module = convert_model(graph.proto).eval()
    except Exception as e:  # onnx2pytorch raises NotImplementedError, KeyError, ...
        return None, f"onnx2pytorch cannot convert the graph ({_first_line(e)})"
    if graph.output_index or len(graph.proto.graph.output) > 1:
        module = _Pick(module, graph.output_index)
    if graph.batch is not None:
        module = FixedBatch(module, graph.batch)
    low, high = bounds
    gen = torch.Generator().manual_seed(PROBE_SEED)
    x = low + (high - low) * torch.rand(_PROBES, *input_shape, generator=gen)
    n = x.shape[0]
    b = graph.batch or n
    runtime = []
    for start in range(0, n, b):
        chunk = x[start : start + b].numpy()
        if chunk.shape[0] < b:
            break
        runtime.append(sess.run(None, {graph.input_name: chunk})[graph.output_index])
    expected = np.concatenate(runtime).astype(np.float64)
    probe = x[: expected.shape[0]].clone().requires_grad_(True)
    try:
        out = module(probe)
        grad = torch.autograd.grad(out.sum(), probe)[0]
    except Exception as e:
        return None, f"the converted network fails on probe inputs ({_first_line(e)})"
    got = out.detach().double().numpy()
    if got.shape != expected.shape:
        return None, (
            f"the converted network returns shape {got.shape} where onnxruntime returns "
            f"{expected.shape}"
        )
    diff = float(np.abs(got - expected).max())
    scale = max(1.0, float(np.abs(expected).max()))
    if not diff <= CONVERSION_TOLERANCE * scale:
        return None, (
            f"the converted network differs from onnxruntime by {diff:.2g} on probe inputs "
            f"(more than {CONVERSION_TOLERANCE:g})"
        )
    if not bool(torch.isfinite(grad).all()):
        return None, "the converted network gives non-finite input gradients"
    if graph.returns_probabilities:
        module = _LogOf(module)
    return module, (
        f"converted with onnx2pytorch; its outputs equal onnxruntime's within {diff:.1g} "
        f"on {expected.shape[0]} probe inputs"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
