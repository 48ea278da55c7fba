"""The white-box optimisation attacks on the mnist-5k reference CNN: C&W L2 against ART
and torchattacks, DeepFool and JSMA against C&W, and the ``strongest`` ensemble against
its members.

The model is ``advml.models.reference.reference_model(load_dataset("mnist-5k"),
architecture="cnn", seed=0)`` (trained once, cached under ``$ADVML_HOME/models``).
Inputs are the first test images, in order. Every attack runs with advml's default
settings unless a line says otherwise. Timings are wall-clock on one thread
(``torch.set_num_threads(1)``); on a shared machine they are noisy, so the script also
prints model evaluations (forward passes) per image, which are not.

Run::

    .venv/bin/python benchmarks/evasion_cw.py            # about 20-30 minutes on 2 cores
    .venv/bin/python benchmarks/evasion_cw.py --quick    # a smoke run of a few minutes

ART (``pip install adversarial-robustness-toolbox``) and torchattacks (``pip install
--no-deps torchattacks``) rows are skipped with a note when the library is missing.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from advml import registry
from advml.data import load_dataset
from advml.evasion import AdversarialResult, EvasionAttack
from advml.models import TorchClassifier
from advml.models.reference import reference_model


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def _row(label: str, success: np.ndarray, l2: np.ndarray, seconds: float, **extra: Any) -> dict:
    row = {
        "attack": label,
        "n": int(success.size),
        "success_rate": float(success.mean()),
        "median_l2": _median(l2[success]),
        "seconds_per_image": seconds / max(1, success.size),
        **extra,
    }
    text = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in row.items()
        if k != "attack"
    )
    print(f"  {label:<34} {text}", flush=True)
    return row


def run_advml(
    model: TorchClassifier, name: str, x: np.ndarray, y: np.ndarray, **settings: Any
) -> AdversarialResult:
    attack = registry.create("evasion", name, **settings)
    assert isinstance(attack, EvasionAttack)
    return attack.generate(model, x, y)


def count_forwards(module: torch.nn.Module) -> list[int]:
    """Counts images through the module's first layer (ART calls the layers one by one)."""
    counter = [0]
    first = next(iter(module.children()))
    first.register_forward_hook(lambda _m, i, _o: counter.__setitem__(0, counter[0] + len(i[0])))
    return counter


def cw_section(model: TorchClassifier, x: np.ndarray, y: np.ndarray, art_n: int) -> list[dict]:
    rows = []
    print(f"C&W L2, untargeted, {len(x)} test images (ART on the first {art_n})", flush=True)
    queries_before = model.query_count
    res = run_advml(model, "cw_l2", x, y)
    rows.append(
        _row(
            "advml cw_l2 (defaults)",
            res.success,
            res.l2,
            res.seconds,
            forwards_per_image=(model.query_count - queries_before) / len(x),
        )
    )
    cw_l2 = np.where(res.success, res.l2, np.nan)
    try:
        from art.attacks.evasion import CarliniL2Method
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        print("  ART not installed: pip install adversarial-robustness-toolbox", flush=True)
    else:
        module = model.module.eval()
        art_model = PyTorchClassifier(
            model=module,
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=model.input_shape,
            nb_classes=model.n_classes,
            clip_values=model.bounds,
        )
        counter = count_forwards(module)
        xs, ys = x[:art_n], y[:art_n]
        start = time.perf_counter()
        x_art = CarliniL2Method(art_model, verbose=False).generate(xs)
        seconds = time.perf_counter() - start
        forwards = counter[0] / art_n
        ok = model.predict(x_art) != ys
        l2 = np.linalg.norm((x_art - xs).reshape(art_n, -1), axis=1)
        rows.append(
            _row(
                "ART CarliniL2Method (defaults)",
                ok,
                l2,
                seconds,
                forwards_per_image=forwards,
            )
        )
        same = run_advml(model, "cw_l2", xs, ys)
        rows.append(
            _row(
                f"advml cw_l2 on the same {art_n}",
                same.success,
                same.l2,
                same.seconds,
                speedup_vs_art=seconds / max(same.seconds, 1e-9),
            )
        )
    try:
        import torchattacks
    except ImportError:
        print("  torchattacks not installed: pip install --no-deps torchattacks", flush=True)
    else:
        module = model.module.eval()
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        start = time.perf_counter()
        x_ta = torchattacks.CW(module, c=1).forward(xt, yt).detach().numpy()
        seconds = time.perf_counter() - start
        ok = model.predict(x_ta) != y
        l2 = np.linalg.norm((x_ta - x).reshape(len(x), -1), axis=1)
        rows.append(_row("torchattacks CW(c=1)", ok, l2, seconds))
    return rows, cw_l2  # type: ignore[return-value]


def deepfool_jsma_section(
    model: TorchClassifier, x: np.ndarray, y: np.ndarray, cw_l2: np.ndarray, jsma_targeted_n: int
) -> list[dict]:
    rows = []
    print(f"DeepFool and JSMA, {len(x)} test images", flush=True)
    df = run_advml(model, "deepfool", x, y)
    both = df.success & np.isfinite(cw_l2)
    ratio = _median(df.l2[both]) / _median(cw_l2[both])
    rows.append(
        _row(
            "advml deepfool L2 (defaults)",
            df.success,
            df.l2,
            df.seconds,
            median_l2_over_cw=ratio,
        )
    )
    d = x[0].size
    js = run_advml(model, "jsma", x, y, gamma=0.05)
    rows.append(
        _row(
            "advml jsma untargeted, gamma=0.05",
            js.success,
            js.l2,
            js.seconds,
            mean_fraction_changed=float(js.l0[js.success].mean() / d),
        )
    )
    if jsma_targeted_n:
        xs, ys = x[:jsma_targeted_n], y[:jsma_targeted_n]
        xt = np.repeat(xs, model.n_classes - 1, axis=0)
        shift = np.tile(np.arange(1, model.n_classes), len(xs))
        targets = (np.repeat(ys, model.n_classes - 1) + shift) % model.n_classes
        jt = run_advml(model, "jsma", xt, targets, targeted=True)
        rows.append(
            _row(
                f"advml jsma targeted x9, gamma=0.145 ({jsma_targeted_n} images)",
                jt.success,
                jt.l2,
                jt.seconds,
                mean_fraction_changed=float(jt.l0[jt.success].mean() / d),
            )
        )
    return rows


def strongest_section(model: TorchClassifier, x: np.ndarray, y: np.ndarray, eps: float) -> list:
    rows = []
    print(f"strongest vs its members, L-inf eps={eps}, {len(x)} test images", flush=True)
    clean = model.predict(x) == y
    print(f"  clean accuracy {clean.mean():.3f}", flush=True)
    members = [("apgd", {"loss": "ce"}), ("apgd", {"loss": "dlr"}), ("square", {})]
    for name, settings in [*members, ("strongest", {})]:
        res = run_advml(model, name, x, y, eps=eps, **settings)
        robust = float((res.y_adv == y).mean())
        label = f"{name} {settings.get('loss', '')}".strip()
        row = {
            "attack": label,
            "robust_accuracy": robust,
            "seconds": res.seconds,
            "mean_queries": float(res.queries.mean()),
        }
        print(
            f"  {label:<12} robust accuracy {robust:.3f}  ({res.seconds:.0f} s, "
            f"{row['mean_queries']:.0f} queries per image)",
            flush=True,
        )
        rows.append(row)
    worst_member = min(r["robust_accuracy"] for r in rows[:-1])
    print(f"  strongest <= every member: {rows[-1]['robust_accuracy'] <= worst_member}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few images: a smoke run")
    p.add_argument("--n", type=int, default=100, help="images for C&W, DeepFool, JSMA")
    p.add_argument("--art-n", type=int, default=10, help="images for ART's C&W (slow)")
    p.add_argument("--jsma-targeted-n", type=int, default=20, help="images x 9 targets")
    p.add_argument("--strongest-n", type=int, default=300, help="images for strongest")
    p.add_argument("--eps", type=float, default=0.1, help="L-inf eps for strongest")
    p.add_argument("--sections", default="cw,jsma,strongest", help="which parts to run")
    p.add_argument("--json", help="write every number to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.art_n, args.jsma_targeted_n, args.strongest_n = 20, 2, 3, 40
    torch.set_num_threads(1)
    ds = load_dataset("mnist-5k")
    model, _ = reference_model(ds, architecture="cnn", seed=0, show_progress=False)
    x, y = ds.x_test[: args.n], ds.y_test[: args.n]
    out: dict[str, Any] = {"n": args.n, "eps": args.eps}
    sections = set(args.sections.split(","))
    cw_l2 = np.full(len(x), np.nan)
    if "cw" in sections:
        out["cw"], cw_l2 = cw_section(model, x, y, args.art_n)
    if "jsma" in sections:
        if not np.isfinite(cw_l2).any():
            cw = run_advml(model, "cw_l2", x, y)
            cw_l2 = np.where(cw.success, cw.l2, np.nan)
        out["deepfool_jsma"] = deepfool_jsma_section(model, x, y, cw_l2, args.jsma_targeted_n)
    if "strongest" in sections:
        xs, ys = ds.x_test[: args.strongest_n], ds.y_test[: args.strongest_n]
        out["strongest"] = strongest_section(model, xs, ys, args.eps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
