"""The main job on a user's own network, folder and GPU, end to end through the CLI.

Writes an image folder of 3x32x32 PNGs (ten classes of coloured, noisy patterns), trains a
network the user's way (``torchvision.models:resnet18`` by default, briefly, in plain
PyTorch), saves its ``state_dict``, then runs

    advml audit --model weights.pt --model-factory torchvision.models:resnet18 \
        --model-kwargs '{"num_classes": 10}' --dataset images/ --input-shape 3,32,32 \
        --bounds 0,1 --device cuda --quick --out OUT

and prints each section's time, its verdict and the device report.json records.

    python benchmarks/gpu_audit.py --out /tmp/gpu-audit               # on a GPU machine
    python benchmarks/gpu_audit.py --device cpu --factory _user_models:bn_cnn \
        --channels 1 --size 8 --per-class 20 --epochs 2 --out /tmp/cpu-audit  # a CPU check
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_folder(root: Path, *, per_class: int, channels: int, size: int, seed: int) -> None:
    """Ten classes, each a colour and stripe pattern of its own under pixel noise."""
    rng = np.random.default_rng(seed)
    for c in range(10):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = rng.uniform(0.2, 0.9, size=channels)
        period = 2 + c % 5
        stripes = (np.arange(size) // period % 2).astype(np.float32)
        pattern = stripes[None, :] if c < 5 else stripes[:, None]
        for i in range(per_class):
            img = colour[:, None, None] * (0.5 + 0.5 * pattern[None]) + rng.normal(
                0, 0.12, size=(channels, size, size)
            )
            pixels = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
            mode = "L" if channels == 1 else "RGB"
            array = pixels[0] if channels == 1 else pixels.transpose(1, 2, 0)
            Image.fromarray(array, mode=mode).save(folder / f"{i:04d}.png")


def build(factory: str, kwargs: dict) -> torch.nn.Module:
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def train_briefly(net: torch.nn.Module, root: Path, *, channels: int, size: int,
                  epochs: int, device: str) -> float:  # fmt: skip
    """The user's own training loop (plain PyTorch, Adam, a few epochs)."""
    xs, ys = [], []
    for c, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for f in sorted(folder.iterdir()):
            a = np.asarray(Image.open(f), dtype=np.float32) / 255.0
            xs.append(a[None] if channels == 1 else a.transpose(2, 0, 1))
            ys.append(c)
    x = torch.tensor(np.stack(xs), device=device)
    y = torch.tensor(ys, device=device)
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator(device="cpu").manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g).to(device)
        for i in range(0, len(x), 128):
            idx = order[i : i + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--factory", default="torchvision.models:resnet18")
    p.add_argument("--kwargs", default='{"num_classes": 10}')
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--full", action="store_true", help="the default audit, not --quick")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # _user_models
    args.out.mkdir(parents=True, exist_ok=True)
    images = args.out / "images"
    write_folder(images, per_class=args.per_class, channels=args.channels, size=args.size, seed=0)
    torch.manual_seed(0)
    kwargs = json.loads(args.kwargs)
    net = build(args.factory, kwargs)
    started = time.perf_counter()
    fit = train_briefly(net, images, channels=args.channels, size=args.size,
                        epochs=args.epochs, device=args.device)  # fmt: skip
    print(f"trained {args.factory} for {args.epochs} epochs in "
          f"{time.perf_counter() - started:.1f} s; training accuracy {fit:.1%}")  # fmt: skip
    weights = args.out / "weights.pt"
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, weights)

    from advml.cli import main as advml

    shape = f"{args.channels},{args.size},{args.size}"
    command = [
        *("audit", "--model", str(weights), "--model-factory", args.factory),
        *("--model-kwargs", args.kwargs, "--dataset", str(images), "--input-shape", shape),
        *("--bounds", "0,1", "--device", args.device, "--out", str(args.out / "audit")),
    ]
    if not args.full:
        command.append("--quick")
    print("advml " + " ".join(command), flush=True)
    started = time.perf_counter()
    code = advml(command)
    wall = time.perf_counter() - started
    report_path = args.out / "audit" / "report.json"
    if not report_path.is_file():
        print(f"no report (exit {code})")
        return 1
    report = json.loads(report_path.read_text())
    env = report.get("environment", {})
    print(f"\nexit {code}; wall {wall:.1f} s; report.json seconds {report.get('seconds')}; "
          f"device {env.get('device')} {env.get('device_name', '')}")  # fmt: skip
    seconds = report.get("reproducibility", {}).get("section_seconds", {})
    for name, section in report.get("sections", {}).items():
        v = section.get("verdict", {})
        print(f"  {name:<12} {seconds.get(name, '?')!s:>8} s  {v.get('level')}: "
              f"{v.get('label')}")  # fmt: skip
    for s in report.get("skipped", []):
        print(f"  skipped {s.get('section')}: {s.get('reason')}")
    return 0 if code in (0, 3) else 1


if __name__ == "__main__":
    raise SystemExit(main())
