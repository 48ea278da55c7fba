"""Model inversion on digits: does an independent judge recognise MI-Face's reconstructions?

Setting (issue 5): the target is the reference digits MLP (``train_reference``, trained on
the training split, seeded); MI-Face (Fredrikson et al. 2015) reconstructs one image per
class, white-box (gradients) and zeroth-order (scores only, counted queries), and behind
output defences (rounding to 1 decimal, top-1) from scores only. The judge is a
logistic regression trained on the test split, which the target never saw
(:func:`advml.privacy.inversion.independent_judge`). SSIM is to the class's mean
training image.

Target: the judge assigns >= 80% of the reconstructed class images to their class.

Run ``python benchmarks/privacy_inversion.py`` (3 seeds, about a minute on one core);
``--olivetti`` adds the face-recognition setting (40 people) where the Olivetti faces can
be loaded (downloaded once to $ADVML_HOME/olivetti).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import numpy as np
import torch

from advml import registry
from advml.data import Dataset, load_dataset
from advml.errors import DatasetUnavailableError
from advml.models.reference import train_reference
from advml.privacy.inversion import MIFace, evaluate_inversion, independent_judge

SETTINGS: dict[str, dict[str, Any]] = {
    "white-box": {"steps": 200, "gradient": "white-box"},
    "zeroth-order": {"steps": 200, "gradient": "zeroth-order", "n_directions": 20},
    "zeroth-order, rounded to 1 decimal": {
        "steps": 200,
        "gradient": "zeroth-order",
        "n_directions": 20,
        "defence": ("rounding", {"decimals": 1}),
    },
    "zeroth-order, top-1": {
        "steps": 200,
        "gradient": "zeroth-order",
        "n_directions": 20,
        "defence": ("top_k", {"k": 1}),
    },
}


def run(ds: Dataset, seed: int, architecture: str) -> dict[str, Any]:
    target = train_reference(
        ds, ds.x_train, ds.y_train, architecture=architecture, seed=seed, show_progress=False
    )
    accuracy = float((target.predict(ds.x_test) == ds.y_test).mean())
    judge = independent_judge(
        ds.x_test, ds.y_test, bounds=ds.bounds, input_shape=ds.input_shape, seed=seed
    )
    judge_acc = float((judge.predict(ds.x_train) == ds.y_train).mean())
    out: dict[str, Any] = {"seed": seed, "target_accuracy": accuracy, "judge_accuracy": judge_acc}
    classes = np.arange(ds.n_classes)
    for name, setting in SETTINGS.items():
        setting = dict(setting)
        defence = setting.pop("defence", None)
        model = target
        if defence is not None:
            model = registry.create("output_defence", defence[0], **defence[1]).wrap(target)  # type: ignore[attr-defined]
        result = MIFace(**setting, seed=seed).invert(model, classes)
        judged = evaluate_inversion(result, judge, ds.x_train, ds.y_train)
        out[name] = {
            "recognition_rate": judged.recognition_rate,
            "ssim_to_class_mean": float(np.nanmean(judged.ssim_to_mean)),
            "confidence": float(np.nanmean(result.confidence)),
            "queries": result.queries,
            "seconds": result.seconds,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--olivetti", action="store_true", help="also the Olivetti faces")
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = [("digits", "mlp")]
    if args.olivetti:
        settings.append(("olivetti", "cnn"))
    everything: dict[str, Any] = {}
    for name, arch in settings:
        try:
            ds = load_dataset(name)
        except DatasetUnavailableError as err:
            print(f"{name}: not available ({str(err).splitlines()[0]})")
            continue
        results = [run(ds, seed, arch) for seed in range(args.seeds)]
        everything[name] = results
        target_acc = statistics.mean(r["target_accuracy"] for r in results)
        judge_acc = statistics.mean(r["judge_accuracy"] for r in results)
        print(
            f"\n{name}: target test accuracy {target_acc:.3f}, judge accuracy on the "
            f"training split {judge_acc:.3f}"
        )
        print(
            f"{'attack':38s} {'recognised':>12s} {'SSIM':>7s} {'confidence':>11s} {'queries':>9s}"
        )
        for key in SETTINGS:
            rates = [r[key]["recognition_rate"] for r in results]
            print(
                f"{key:38s} {statistics.mean(rates):6.1%} (min {min(rates):.0%})"
                f" {statistics.mean(r[key]['ssim_to_class_mean'] for r in results):7.3f}"
                f" {statistics.mean(r[key]['confidence'] for r in results):11.3f}"
                f" {results[0][key]['queries']:9d}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
