"""advml on a GPU, side by side with the raw gradient work and torchattacks.

One run (about 5 minutes on an H200) measures, with default attack settings (no
``batch_size`` given, so advml sizes its chunks from the device's free memory):

- ``pgd_resnet18``: PGD-20 (L∞, eps 8/255) on a ResNet-18 with 512 inputs of 3x32x32,
  against the raw work (20 forward + backward passes w.r.t. the input, batch 512);
  also advml with ``batch_size=512`` and the chunk the default chose;
- ``pgd_resnet50``: PGD-10 on a ResNet-50 at 224 px, 128 inputs, against 10 raw passes;
- ``apgd``: advml's APGD against torchattacks' APGD at the same steps (20) on the
  ResNet-18, both robust accuracies;
- ``cw``: Carlini–Wagner L2 per-image time against torchattacks' ``CW`` at an equal
  number of iterations, both success rates and median L2;
- ``bf16``: the raw pass on the ResNet-50 and PGD-20 on the ResNet-18 in bfloat16
  (autocast) against float32, with the robust accuracy each gives.

The ResNet-18 is trained for a few epochs on scikit-learn's digits, upsampled to
3x32x32 (bundled with scikit-learn: nothing is downloaded), so robust accuracies and
success rates mean something; the ResNet-50 keeps its random weights (timing only).
Every figure is the median (and minimum) of ``--runs`` timed runs after one warm-up,
each between ``torch.cuda.synchronize`` calls.

Imports: torch, numpy, scikit-learn, torchvision (optional: its ``resnet18``/``resnet50``,
else the same architectures defined here), torchattacks (optional) and advml's
``advml.evasion`` / ``advml.models``, which need tqdm besides (a pure-Python wheel).
If an advml import fails for a missing package that attacks do not use (yaml, skops,
matplotlib, jinja2, pydantic...), the script stands in an empty module for it and says so.

A benchmark that fails is reported (its traceback in the JSON) and the others still run;
results are written after every benchmark, so a run cut short keeps what it measured.

Run::

    PYTHONPATH=src python benchmarks/gpu.py            # on the GPU machine; JSON to $OUT
    PYTHONPATH=src python benchmarks/gpu.py --smoke    # tiny sizes, any device (a test)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# Packages some advml module may import at module level that no attack needs: stood in
# by an empty module when missing on the benchmark machine (reported in the JSON).
STUBBABLE = ("yaml", "skops", "matplotlib", "jinja2", "pydantic", "tqdm", "pandas", "pyarrow")

EPS = 8 / 255
TARGETS = {
    "pgd_resnet18": 1.05,  # advml default PGD / raw work
    "pgd_resnet50": 1.05,
    "apgd_vs_torchattacks": 1.15,  # advml APGD / torchattacks APGD
}


# -- advml, imported defensively --------------------------------------------------------
class _Missing:
    """Stands in for anything of a missing optional package; fails only when used."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("a package stood in by benchmarks/gpu.py was used")

    def __class_getitem__(cls, item: object) -> type[_Missing]:
        return cls


def _stub(name: str) -> None:
    module = types.ModuleType(name)
    module.__getattr__ = lambda attr: _Missing  # type: ignore[method-assign]
    module.__path__ = []  # a package, so that "from name.sub import x" works
    sys.modules[name] = module


def import_advml() -> tuple[dict[str, Any], list[str]]:
    """advml's attack classes and TorchClassifier, standing in for missing optional
    packages (returned by name)."""
    stubbed: list[str] = []
    for _ in range(len(STUBBABLE) * 3):
        try:
            evasion = importlib.import_module("advml.evasion")
            models = importlib.import_module("advml.models")
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if missing not in STUBBABLE:
                raise
            full = exc.name or missing
            for part in [".".join(full.split(".")[: i + 1]) for i in range(full.count(".") + 1)]:
                if sys.modules.get(part) is None:  # absent, or marked missing
                    _stub(part)
            stubbed.append(full)
            for mod in [m for m in sys.modules if m == "advml" or m.startswith("advml.")]:
                del sys.modules[mod]
            continue
        return {
            "PGD": evasion.PGD,
            "APGD": evasion.APGD,
            "CarliniWagnerL2": evasion.CarliniWagnerL2,
            "TorchClassifier": models.TorchClassifier,
        }, stubbed
    raise RuntimeError(f"advml would not import even with stand-ins for {stubbed}")


# -- networks ---------------------------------------------------------------------------
class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.down(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.down(x))


class ResNet(nn.Module):
    """torchvision's ResNet layout (7x7 stem, max-pool, four stages), for machines
    without torchvision; ``width`` 64 is the standard network, smaller ones are for
    smoke runs."""

    def __init__(self, depth: int, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        block: type[_Basic] | type[_Bottleneck]
        block, layers = {18: (_Basic, (2, 2, 2, 2)), 50: (_Bottleneck, (3, 4, 6, 3))}[depth]
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(layers):
            w = width * 2**i
            for j in range(n):
                stages.append(block(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w * block.expansion
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.stages(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def resnet(depth: int, width: int, num_classes: int = 10) -> tuple[nn.Module, str]:
    """torchvision's ResNet-``depth`` when it imports (and ``width`` is 64), else ours."""
    if width == 64:
        try:
            tv = importlib.import_module("torchvision.models")
            return getattr(tv, f"resnet{depth}")(num_classes=num_classes), "torchvision"
        except Exception:  # any import problem: use the built-in copy
            pass
    return ResNet(depth, num_classes, width), f"benchmarks/gpu.py (width {width})"


def digits_images(size: int) -> tuple[Tensor, Tensor]:
    """scikit-learn's 1797 digits in [0, 1], upsampled to 3 x size x size."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).repeat(1, 3, 1, 1), torch.as_tensor(d.target, dtype=torch.long)


def train_briefly(
    net: nn.Module, x: Tensor, y: Tensor, *, epochs: int, device: torch.device
) -> None:
    """A few epochs of Adam (seeded): enough for a digits ResNet to be accurate."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], device=device)
        for i in range(0, x.shape[0], 128):
            idx = order[i : i + 128]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()


# -- timing -----------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], *, runs: int, device: torch.device) -> dict[str, Any]:
    """Median and minimum seconds of ``runs`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs_s": times}


def race(
    fns: dict[str, Callable[[], object]], *, runs: int, device: torch.device
) -> dict[str, dict[str, Any]]:
    """:func:`timed` for several contenders taking turns: one warm-up each, then
    ``runs`` rounds in which each runs once (the order rotating), so that clock changes
    and other work on the machine fall on all of them alike."""
    names = list(fns)
    for name in names:
        fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            sync(device)
            start = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "runs_s": t}
        for name, t in times.items()
    }


def warm_up_gpu(device: torch.device, seconds: float = 2.0) -> None:
    """Matrix products for a few seconds, so that the clocks are up before the first
    timing (an idle H200 starts at a few hundred MHz)."""
    if device.type != "cuda":
        return
    a = torch.randn(4096, 4096, device=device)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10):
            a @ a
        sync(device)


def random_start(x: Tensor, eps: float) -> Tensor:
    g = torch.Generator(device=x.device).manual_seed(0)
    noise = torch.rand(x.shape, generator=g, device=x.device)
    return (x + (2 * noise - 1) * eps).clamp(0, 1)


def raw_work(
    net: nn.Module, x: Tensor, y: Tensor, steps: int, *, bf16: bool = False
) -> Callable[[], None]:
    """``steps`` forward + backward passes w.r.t. the input on the whole batch."""
    start = random_start(x, EPS)

    def run() -> None:
        xc = start.detach().requires_grad_(True)
        for _ in range(steps):
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = net(xc)
            loss = F.cross_entropy(logits.float(), y, reduction="sum")
            torch.autograd.grad(loss, xc)

    return run


def accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def check_ball(x_adv: Tensor, x: Tensor, eps: float) -> float:
    """The largest L∞ distance (must be <= eps) and a failure if outside [0, 1]."""
    x_adv = torch.as_tensor(x_adv).detach()
    if float(x_adv.min()) < 0 or float(x_adv.max()) > 1:
        raise AssertionError("adversarial examples outside the bounds [0, 1]")
    dist = float((x_adv - x).abs().amax())
    if dist > eps + 1e-5:
        raise AssertionError(f"adversarial examples {dist} from the inputs, eps {eps}")
    return dist


# -- the benchmarks ---------------------------------------------------------------------
class Setup:
    """Sizes, device, advml and the shared trained ResNet-18."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.smoke = args.smoke
        self.device = torch.device(args.device)
        self.runs = args.runs
        self.n18 = 8 if self.smoke else 512
        self.n50 = 2 if self.smoke else 128
        self.size50 = 64 if self.smoke else 224
        self.width = 8 if self.smoke else 64
        self.steps = 2 if self.smoke else 20
        self.steps50 = 2 if self.smoke else 10
        self.cw_iters = 4 if self.smoke else 100
        self.advml, self.stubbed = import_advml()
        warm_up_gpu(self.device)
        self._r18: tuple[nn.Module, Tensor, Tensor, dict[str, Any]] | None = None
        self.torchattacks: Any = None
        try:
            self.torchattacks = importlib.import_module("torchattacks")
        except Exception as exc:  # optional
            self.torchattacks_error = repr(exc)

    def classifier(self, net: nn.Module, shape: tuple[int, ...], **kw: Any) -> Any:
        return self.advml["TorchClassifier"](
            net, input_shape=shape, n_classes=10, bounds=(0.0, 1.0), device=self.device, **kw
        )

    def resnet18(self) -> tuple[nn.Module, Tensor, Tensor, dict[str, Any]]:
        """The digits ResNet-18 (trained once) and its ``n18`` test inputs."""
        if self._r18 is None:
            torch.manual_seed(0)
            net, source = resnet(18, self.width)
            net = net.to(self.device)
            x, y = digits_images(32)
            n_test = self.n18
            n_train = 64 if self.smoke else x.shape[0] - n_test
            x, y = x.to(self.device), y.to(self.device)
            start = time.perf_counter()
            train_briefly(
                net, x[:n_train], y[:n_train], epochs=1 if self.smoke else 8, device=self.device
            )
            sync(self.device)
            xt, yt = x[-n_test:].contiguous(), y[-n_test:].contiguous()
            info = {
                "source": source,
                "train_seconds": time.perf_counter() - start,
                "clean_accuracy": accuracy(net, xt, yt),
                "n_inputs": n_test,
            }
            for p in net.parameters():
                p.requires_grad_(False)  # attacks need input gradients only
            self._r18 = (net, xt, yt, info)
        return self._r18


def bench_pgd_resnet18(s: Setup) -> dict[str, Any]:
    net, x, y, info = s.resnet18()
    model = s.classifier(net, (3, 32, 32))
    attack = s.advml["PGD"](eps=EPS, steps=s.steps)
    fixed = s.advml["PGD"](eps=EPS, steps=s.steps, batch_size=x.shape[0])
    out: dict[str, Any] = {"model": info, "steps": s.steps}
    out["raw"] = timed(raw_work(net, x, y, s.steps), runs=s.runs, device=s.device)
    out["advml_default"] = timed(lambda: attack.generate(model, x, y), runs=s.runs, device=s.device)
    out["advml_batch_all"] = timed(
        lambda: fixed.generate(model, x, y), runs=s.runs, device=s.device
    )
    out["default_chunk"] = attack._auto_batch_size(model)
    result = attack.generate(model, x, y)
    out["max_linf"] = check_ball(result.x_adv, x, EPS)
    out["robust_accuracy"] = float((torch.as_tensor(result.y_adv) == y.cpu()).float().mean())
    out["default_over_raw"] = out["advml_default"]["median_s"] / out["raw"]["median_s"]
    out["batch_all_over_raw"] = out["advml_batch_all"]["median_s"] / out["raw"]["median_s"]
    out["target_default_over_raw"] = TARGETS["pgd_resnet18"]
    return out


def bench_pgd_resnet50(s: Setup) -> dict[str, Any]:
    torch.manual_seed(0)
    net, source = resnet(50, s.width)
    net = net.to(s.device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x, _ = digits_images(s.size50)
    x = x[: s.n50].to(s.device)
    with torch.no_grad():
        y = net(x).argmax(1)
    model = s.classifier(net, (3, s.size50, s.size50))
    attack = s.advml["PGD"](eps=EPS, steps=s.steps50)
    out: dict[str, Any] = {"model": source, "n_inputs": s.n50, "steps": s.steps50}
    # bf16 against float32 on the same network (the issue measured 0.74x on an H200).
    out |= race(
        {
            "raw": raw_work(net, x, y, s.steps50),
            "advml_default": lambda: attack.generate(model, x, y),
            "raw_bf16": raw_work(net, x, y, s.steps50, bf16=True),
        },
        runs=s.runs,
        device=s.device,
    )
    out["default_chunk"] = attack._auto_batch_size(model)
    out["default_over_raw"] = out["advml_default"]["median_s"] / out["raw"]["median_s"]
    out["target_default_over_raw"] = TARGETS["pgd_resnet50"]
    out["bf16_raw_over_float32_raw"] = out["raw_bf16"]["median_s"] / out["raw"]["median_s"]
    return out


def bench_apgd(s: Setup) -> dict[str, Any]:
    net, x, y, info = s.resnet18()
    model = s.classifier(net, (3, 32, 32))
    attack = s.advml["APGD"](eps=EPS, steps=s.steps, loss="ce")
    out: dict[str, Any] = {"model": info["source"], "n_inputs": x.shape[0], "steps": s.steps}
    fns: dict[str, Callable[[], object]] = {
        "raw": raw_work(net, x, y, s.steps),
        "advml": lambda: attack.generate(model, x, y),
    }
    if s.torchattacks is None:
        out["torchattacks"] = f"not installed: {s.torchattacks_error}"
    else:
        ta = s.torchattacks.APGD(net, norm="Linf", eps=EPS, steps=s.steps, n_restarts=1, loss="ce")
        fns["torchattacks"] = lambda: ta(x, y)
    out |= race(fns, runs=s.runs, device=s.device)
    result = attack.generate(model, x, y)
    out["advml_robust_accuracy"] = float((torch.as_tensor(result.y_adv) == y.cpu()).float().mean())
    out["advml_max_linf"] = check_ball(result.x_adv, x, EPS)
    out["advml_over_raw"] = out["advml"]["median_s"] / out["raw"]["median_s"]
    if s.torchattacks is None:
        return out
    x_ta = ta(x, y).detach()
    out["torchattacks_robust_accuracy"] = accuracy(net, x_ta, y)
    out["torchattacks_max_linf"] = check_ball(x_ta, x, EPS)
    out["advml_over_torchattacks"] = out["advml"]["median_s"] / out["torchattacks"]["median_s"]
    out["target_advml_over_torchattacks"] = TARGETS["apgd_vs_torchattacks"]
    return out


def bench_cw(s: Setup) -> dict[str, Any]:
    """C&W L2 at an equal number of iterations: advml with one binary-search step of
    ``cw_iters`` Adam steps (and its default 6 x 30), torchattacks' CW with ``cw_iters``."""
    net, x, y, info = s.resnet18()
    model = s.classifier(net, (3, 32, 32))
    n = x.shape[0]
    out: dict[str, Any] = {"model": info["source"], "n_inputs": n, "iterations": s.cw_iters}

    def summarise(name: str, x_adv: Tensor, t: dict[str, Any]) -> None:
        x_adv = torch.as_tensor(x_adv, device=s.device)
        with torch.no_grad():
            pred = net(x_adv).argmax(1)
        success = pred != y
        l2 = (x_adv - x).flatten(1).norm(dim=1)
        out[name] = {
            **t,
            "seconds_per_image": t["median_s"] / n,
            "success_rate": float(success.float().mean()),
            "median_l2_of_successes": float(l2[success].median()) if bool(success.any()) else None,
        }

    same = s.advml["CarliniWagnerL2"](steps=s.cw_iters, binary_search_steps=1, abort_early=False)
    t = timed(lambda: same.generate(model, x, y), runs=s.runs, device=s.device)
    summarise("advml_equal_iterations", same.generate(model, x, y).x_adv, t)
    default = s.advml["CarliniWagnerL2"]()
    t = timed(lambda: default.generate(model, x, y), runs=s.runs, device=s.device)
    summarise("advml_default_6x30", default.generate(model, x, y).x_adv, t)
    if s.torchattacks is None:
        out["torchattacks"] = f"not installed: {s.torchattacks_error}"
        return out
    ta = s.torchattacks.CW(net, c=1, kappa=0, steps=s.cw_iters, lr=0.01)
    t = timed(lambda: ta(x, y), runs=s.runs, device=s.device)
    summarise("torchattacks_equal_iterations", ta(x, y), t)
    return out


def bench_bf16(s: Setup) -> dict[str, Any]:
    """PGD-20 on the digits ResNet-18 in float32 and under bf16 autocast."""
    net, x, y, info = s.resnet18()
    out: dict[str, Any] = {"model": info["source"], "n_inputs": x.shape[0], "steps": s.steps}
    attack = s.advml["PGD"](eps=EPS, steps=s.steps)
    models = {p: s.classifier(net, (3, 32, 32), precision=p) for p in ("float32", "bf16")}
    times = race(
        {
            "raw_float32": raw_work(net, x, y, s.steps),
            "raw_bf16": raw_work(net, x, y, s.steps, bf16=True),
            "advml_float32": lambda: attack.generate(models["float32"], x, y),
            "advml_bf16": lambda: attack.generate(models["bf16"], x, y),
        },
        runs=s.runs,
        device=s.device,
    )
    out["raw_float32"], out["raw_bf16"] = times["raw_float32"], times["raw_bf16"]
    for precision, model in models.items():
        result = attack.generate(model, x, y)
        x_adv = torch.as_tensor(result.x_adv)
        out[f"advml_{precision}"] = {
            **times[f"advml_{precision}"],
            "x_adv_dtype": str(x_adv.dtype),
            "max_linf": check_ball(x_adv.to(s.device), x, EPS),
            # Judged by the float32 network, whichever precision crafted them.
            "robust_accuracy_float32_judge": accuracy(net, x_adv.to(s.device), y),
        }
    out["bf16_over_float32_pgd"] = out["advml_bf16"]["median_s"] / out["advml_float32"]["median_s"]
    out["bf16_over_float32_raw"] = out["raw_bf16"]["median_s"] / out["raw_float32"]["median_s"]
    return out


def bench_profile(s: Setup) -> dict[str, Any]:
    """Where advml's PGD and APGD spend the time beyond the raw passes: torch.profiler
    over one call each (and over the raw work beside them) on the digits ResNet-18 and on
    the ResNet-50 at ``size50`` px; per call the total self CPU and device time, the
    kernel launches, the host waits, and the top operators. Tables go beside the JSON."""
    from torch.profiler import ProfilerActivity, profile

    net, x, y, _ = s.resnet18()
    model = s.classifier(net, (3, 32, 32))
    torch.manual_seed(0)
    net50, _ = resnet(50, s.width)
    net50 = net50.to(s.device).eval()
    for p in net50.parameters():
        p.requires_grad_(False)
    x50 = digits_images(s.size50)[0][: s.n50].to(s.device)
    with torch.no_grad():
        y50 = net50(x50).argmax(1)
    model50 = s.classifier(net50, (3, s.size50, s.size50))
    pgd, apgd = s.advml["PGD"](eps=EPS, steps=s.steps), s.advml["APGD"](eps=EPS, steps=s.steps)
    pgd50 = s.advml["PGD"](eps=EPS, steps=s.steps50)
    cases: dict[str, Callable[[], object]] = {
        "r18_raw": raw_work(net, x, y, s.steps),
        "r18_pgd": lambda: pgd.generate(model, x, y),
        "r18_apgd": lambda: apgd.generate(model, x, y),
        "r50_raw": raw_work(net50, x50, y50, s.steps50),
        "r50_pgd": lambda: pgd50.generate(model50, x50, y50),
    }
    out: dict[str, Any] = {}
    activities = [ProfilerActivity.CPU]
    if s.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    for name, fn in cases.items():
        fn()  # warm-up (and the chunk's memory measurement)
        sync(s.device)
        with profile(activities=activities) as prof:
            fn()
            sync(s.device)
        events = prof.key_averages()
        rows = [
            {
                "op": e.key,
                "calls": e.count,
                "self_cpu_ms": e.self_cpu_time_total / 1000,
                "self_device_ms": getattr(e, "self_device_time_total", 0) / 1000,
            }
            for e in events
        ]
        out[name] = {
            "self_cpu_ms": sum(r["self_cpu_ms"] for r in rows),
            "self_device_ms": sum(r["self_device_ms"] for r in rows),
            "launches": sum(r["calls"] for r in rows if r["op"].startswith("cudaLaunch")),
            "host_waits": sum(r["calls"] for r in rows if "Synchronize" in r["op"]),
            "top_self_device": sorted(rows, key=lambda r: -r["self_device_ms"])[:15],
            "top_self_cpu": sorted(rows, key=lambda r: -r["self_cpu_ms"])[:15],
        }
        print(
            f"  profile {name}: self CPU {out[name]['self_cpu_ms']:.1f} ms, device "
            f"{out[name]['self_device_ms']:.1f} ms, {out[name]['launches']} launches, "
            f"{out[name]['host_waits']} host waits",
            flush=True,
        )
    path = s.args.out.parent / "profile_tables.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return {k: {kk: vv for kk, vv in v.items() if not kk.startswith("top")} for k, v in out.items()}


BENCHMARKS: dict[str, Callable[[Setup], dict[str, Any]]] = {
    "pgd_resnet18": bench_pgd_resnet18,
    "pgd_resnet50": bench_pgd_resnet50,
    "apgd": bench_apgd,
    "cw": bench_cw,
    "bf16": bench_bf16,
    "profile": bench_profile,
}


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu"] = props.name
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    for name in ("torchvision", "torchattacks", "sklearn"):
        try:
            env[name] = importlib.import_module(name).__version__
        except Exception as exc:  # report, never fail
            env[name] = f"unavailable ({type(exc).__name__})"
    return env


def headline(name: str, r: dict[str, Any]) -> str:
    """One line per benchmark for the console."""
    keys = [k for k in r if k.endswith(("_over_raw", "_over_torchattacks", "_over_float32_raw"))]
    parts = [f"{k}={r[k]:.3f}" for k in keys if isinstance(r[k], float)]
    for k, v in r.items():
        if isinstance(v, dict) and "median_s" in v:
            parts.append(f"{k}={v['median_s'] * 1000:.1f}ms")
            if "success_rate" in v:
                parts.append(f"{k}.success={v['success_rate']:.3f}")
    for k in ("robust_accuracy", "advml_robust_accuracy", "torchattacks_robust_accuracy"):
        if k in r:
            parts.append(f"{k}={r[k]:.3f}")
    return f"{name}: " + ", ".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (a test on any device)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--runs", type=int, default=None, help="timed runs each (default 5; smoke 1)")
    p.add_argument("--only", default=",".join(BENCHMARKS), help=f"subset of {','.join(BENCHMARKS)}")
    p.add_argument("--budget", type=float, default=330.0, help="seconds; later ones skipped")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default $OUT/gpu.json)")
    args = p.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.runs is None:
        args.runs = 1 if args.smoke else 5
    if args.out is None:
        args.out = Path(os.environ.get("OUT", ".")) / "gpu.json"
    unknown = set(args.only.split(",")) - set(BENCHMARKS)
    if unknown:
        p.error(f"--only: unknown {sorted(unknown)}; choose from {','.join(BENCHMARKS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    device = torch.device(args.device)
    report: dict[str, Any] = {
        "script": "benchmarks/gpu.py",
        "smoke": args.smoke,
        "runs": args.runs,
        "environment": environment(device),
        "benchmarks": {},
    }

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str))

    print(json.dumps(report["environment"]), flush=True)
    try:
        setup = Setup(args)
    except Exception:  # nothing can run; say why
        report["setup_error"] = traceback.format_exc()
        print(report["setup_error"], file=sys.stderr, flush=True)
        write()
        return 1
    report["stubbed_imports"] = setup.stubbed
    if setup.stubbed:
        print(f"stood in for missing packages: {setup.stubbed}", flush=True)
    failures = 0
    for name in args.only.split(","):
        if time.perf_counter() - began > args.budget:
            report["benchmarks"][name] = {"skipped": f"over the {args.budget:.0f} s budget"}
            print(f"{name}: skipped (time budget)", flush=True)
            continue
        start = time.perf_counter()
        try:
            result = BENCHMARKS[name](setup)
        except Exception:  # report it and run the others
            failures += 1
            result = {"error": traceback.format_exc()}
            print(f"{name}: FAILED\n{result['error']}", file=sys.stderr, flush=True)
        else:
            print(headline(name, result), flush=True)
        result["wall_seconds"] = time.perf_counter() - start
        report["benchmarks"][name] = result
        if device.type == "cuda":
            torch.cuda.empty_cache()
        write()
    report["total_seconds"] = time.perf_counter() - began
    write()
    print(f"wrote {args.out} ({report['total_seconds']:.0f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
