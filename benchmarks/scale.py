"""Scaling out: LiRA's shadow models on local / process / Ray, Ray's per-task overhead,
and RMIA with 2 reference models against LiRA.

Setting (as ``benchmarks/privacy_membership.py``): the digits MLP trained 60 epochs on
500 records (100% training accuracy); a pool of 1,000 of the 1,797 digits, 500 of them
members. The attacker knows the pool, not the split (Carlini et al. 2022).

1. **Scaling**: LiRA (online) with 16 shadow models, each trained like the target on a
   random half of the pool, through the ``local`` executor, a ``process`` pool of 2 and a
   local Ray with 2 CPUs. Wall time of ``fit`` and the speed-up over ``local``; the
   scores must be identical (target: >= 1.7x with 2 workers on a 2-core machine). The
   machine's load average is printed beside: other work on the cores slows the workers.
2. **Ray's per-task overhead**: 200 empty tasks through the Ray executor (submission,
   scheduling, result), per task.
3. **Power**: RMIA offline and online with the same 2 reference models, LiRA offline
   with 2 shadows (the same two models), LiRA offline and online with 16 (the same 16)
   and the loss threshold: AUC and TPR at 1% FPR with the exact counts of true and false
   positives at that operating point, on ``--power-targets`` targets (3 by default:
   seeds ``--seed``, ``--seed + 1``, ...; each its own pool, members and trained MLP),
   then the mean AUC and the counts summed over the targets. Targets: RMIA's TPR at 1%
   FPR >= LiRA offline's with 2; RMIA's AUC within 0.02 of LiRA online's with 16. One
   target's AUC moves more than the margin tested from seed to seed (LiRA online with
   16: 0.650, 0.635 and 0.612 on seeds 0, 1, 2), hence several targets.

4. **Evasion shards** (``--evasion``, alone): PGD-40 with a random start on 2,000 digits
   inputs, one local run against shards on a process pool of ``--workers``; the results
   must be identical input by input.

Run ``python benchmarks/scale.py`` (several minutes on 2 cores); ``--quick`` uses 8
shadows, ``--skip-timing`` only part 3, ``--json FILE`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch

from advml.data import load_dataset
from advml.models import TorchClassifier, train
from advml.models.architectures import build
from advml.privacy.membership import RMIA, LiRA, LossThreshold
from advml.runtime.cache import ResultCache
from advml.runtime.executors import Executor, TaskCache, make_executor

EPOCHS = 60


def make_target(x: np.ndarray, y: np.ndarray, seed: int, epochs: int = EPOCHS) -> TorchClassifier:
    torch.manual_seed(seed)
    module = build("mlp", input_shape=(1, 8, 8), n_classes=10)
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    train(
        model, x, y, epochs=epochs, val_fraction=0.0, patience=None, seed=seed, show_progress=False
    )
    return model


def setting(seed: int) -> dict[str, Any]:
    ds = load_dataset("digits")
    x_all = np.concatenate([ds.x_train, ds.x_test])
    y_all = np.concatenate([ds.y_train, ds.y_test])
    rng = np.random.default_rng(seed)
    pool = rng.permutation(len(x_all))[:1000]
    member = np.zeros(1000, dtype=bool)
    member[rng.choice(1000, 500, replace=False)] = True
    x, y = x_all[pool], y_all[pool]
    return {
        "seed": seed,
        "x": x,
        "y": y,
        "member": member,
        "target": make_target(x[member], y[member], seed),
        "x_population": x_all[np.setdiff1d(np.arange(len(x_all)), pool)],
        "y_population": y_all[np.setdiff1d(np.arange(len(x_all)), pool)],
    }


def operating_point(scores: np.ndarray, member: np.ndarray, fpr: float) -> dict[str, Any]:
    """Exact counts at the strictest threshold whose false positives are <= ``fpr`` of
    the non-members: ``score > t`` with ``t`` the ``k+1``-th highest non-member score."""
    out = np.sort(scores[~member])[::-1]
    allowed = int(np.floor(fpr * out.size))
    t = out[allowed] if allowed < out.size else -np.inf
    tp = int((scores[member] > t).sum())
    fp = int((scores[~member] > t).sum())
    return {"tp": tp, "fp": fp, "members": int(member.sum()), "non_members": int(out.size)}


def timed_fit(attack: Any, s: dict[str, Any], executor: Executor | None) -> tuple[float, Any]:
    start = time.perf_counter()
    fitted = attack.fit(s["target"], s["x"], s["y"], executor=executor)
    return time.perf_counter() - start, fitted


def scaling(
    s: dict[str, Any], n_shadow: int, workers: int, names: list[str], rounds: int
) -> dict[str, Any]:
    """Each executor in turn, ``rounds`` times (local first in each round); the speed-up
    of a round is paired with that round's local time, so a load that drifts during the
    measurement (other work on the machine) biases it less than one run of each."""
    rows: dict[str, Any] = {label: {"seconds": [], "load_average": []} for label in names}
    reference: np.ndarray | None = None
    for r in range(rounds):
        for label in names:
            # "process:4" times a pool of 4 workers; a bare name uses --workers.
            name, _, count = label.partition(":")
            n_workers = int(count) if count else workers
            executor = make_executor(name, workers=None if name == "local" else n_workers)
            load = os.getloadavg()[0]
            with executor:
                if name != "local":
                    # Start every worker and pay its first training call (torch's lazy
                    # initialisation, ~1.3 s of CPU here) outside the timing, as this
                    # process paid it when it trained the target.
                    list(executor.map(warm_up, range(2 * executor.workers)))
                attack = LiRA(n_shadow=n_shadow, shadow_epochs=EPOCHS)
                seconds, fitted = timed_fit(attack, s, executor)
            scores = fitted.infer(s["target"], s["x"], s["y"]).scores
            reference = scores if reference is None else reference
            row = rows[label]
            row["workers"] = executor.workers
            row["identical_scores"] = row.get("identical_scores", True) and bool(
                np.array_equal(scores, reference)
            )
            row["seconds"].append(seconds)
            row["load_average"].append(load)
            print(
                f"  round {r + 1}: {label:<10} {executor.workers:>2} worker(s): LiRA fit with "
                f"{n_shadow} shadows {seconds:6.1f} s (load average {load:.1f}); scores "
                f"identical to local: {row['identical_scores']}"
            )
    local = np.array(rows["local"]["seconds"])
    for label in [n for n in names if n != "local"]:
        paired = local / np.array(rows[label]["seconds"])
        rows[label]["speedup"] = float(np.median(paired))
        print(
            f"  speed-up {label} / local: median {np.median(paired):.2f}x "
            f"(rounds: {', '.join(f'{v:.2f}' for v in paired)})"
        )
    return rows


def warm_up(seed: int) -> None:
    """One epoch of a small model on 64 random records, then a pause so that the next
    warm-up task lands on another worker."""
    rng = np.random.default_rng(seed)
    x = rng.random((64, 1, 8, 8)).astype(np.float32)
    make_target(x, rng.integers(0, 10, 64), seed, epochs=1)
    time.sleep(0.5)


def noop(task: int) -> int:
    return task


def ray_overhead(n: int = 200) -> dict[str, float]:
    executor = make_executor("ray")
    list(executor.map(noop, range(4)))  # warm workers
    start = time.perf_counter()
    list(executor.map(noop, range(n)))
    seconds = time.perf_counter() - start
    local_start = time.perf_counter()
    list(make_executor("local").map(noop, range(n)))
    local = time.perf_counter() - local_start
    per_task = (seconds - local) / n
    print(f"  Ray per-task overhead: {per_task * 1e3:.2f} ms ({n} empty tasks in {seconds:.2f} s)")
    return {"per_task_seconds": per_task, "tasks": n, "seconds": seconds}


def power(s: dict[str, Any], n_large: int) -> dict[str, Any]:
    """Every attack on one target. Attacks with the same count and seed share their
    reference / shadow models (a cache of this run): RMIA and LiRA with 2 train the same
    two models on the same halves, LiRA offline and online with ``n_large`` the same
    ``n_large``; each attack differs only in how it reads them."""
    target, x, y, member = s["target"], s["x"], s["y"], s["member"]
    attacks: dict[str, Any] = {
        "rmia offline, 2 references": RMIA(n_reference=2, shadow_epochs=EPOCHS),
        "rmia online, 2 references": RMIA(n_reference=2, mode="online", shadow_epochs=EPOCHS),
        "lira offline, 2 shadows": LiRA(n_shadow=2, mode="offline", shadow_epochs=EPOCHS),
        f"lira offline, {n_large} shadows": LiRA(
            n_shadow=n_large, mode="offline", shadow_epochs=EPOCHS
        ),
        f"lira online, {n_large} shadows": LiRA(n_shadow=n_large, shadow_epochs=EPOCHS),
        "loss threshold": LossThreshold(calibration="population"),
    }
    rows: dict[str, Any] = {}
    print(f"  {'attack':<28} {'AUC':>6} {'TPR@1%':>7}  TP / members   FP / non-members")
    with tempfile.TemporaryDirectory() as folder:
        cache = TaskCache(ResultCache(folder), f"power-seed{s['seed']}")
        for name, attack in attacks.items():
            if isinstance(attack, LossThreshold):
                fitted = attack.fit(target, s["x_population"], s["y_population"])
            else:
                fitted = attack.fit(target, x, y, cache=cache)
            result = fitted.infer(target, x, y)
            metrics = result.metrics(member)
            point = operating_point(result.scores, member, 0.01)
            rows[name] = {"auc": metrics.auc, "tpr_at_1_fpr": metrics.tpr_at_1_fpr, **point}
            if isinstance(attack, RMIA) and attack.mode == "offline":
                rows[name]["offline_a"] = fitted.state.offline_a
            extra = f"  (a = {fitted.state.offline_a:.3f})" if "offline_a" in rows[name] else ""
            print(
                f"  {name:<28} {metrics.auc:6.3f} {metrics.tpr_at_1_fpr:7.3f}  "
                f"{point['tp']:>3} / {point['members']}      {point['fp']:>3} / "
                f"{point['non_members']}{extra}"
            )
    return rows


def power_summary(per_seed: list[dict[str, Any]], n_large: int) -> dict[str, Any]:
    """Mean AUC over the targets, and the counts at each target's 1% FPR summed over
    them (TP of all members, FP of all non-members), with the issue's two checks."""
    names = list(per_seed[0])
    summary: dict[str, Any] = {}
    print(f"  over {len(per_seed)} targets: mean AUC, TP and FP summed at each target's 1% FPR")
    print(f"  {'attack':<28} {'AUC':>6} {'TPR@1%':>7}  TP / members   FP / non-members")
    for name in names:
        rows = [seed_rows[name] for seed_rows in per_seed]
        tp, fp = sum(r["tp"] for r in rows), sum(r["fp"] for r in rows)
        members, non_members = sum(r["members"] for r in rows), sum(r["non_members"] for r in rows)
        auc = float(np.mean([r["auc"] for r in rows]))
        summary[name] = {
            "auc": auc,
            "auc_per_target": [r["auc"] for r in rows],
            "tpr_at_1_fpr": tp / members,
            "tp": tp,
            "fp": fp,
            "members": members,
            "non_members": non_members,
        }
        print(
            f"  {name:<28} {auc:6.3f} {tp / members:7.3f}  {tp:>3} / {members}     "
            f"{fp:>3} / {non_members}"
        )
    lira_off2 = summary["lira offline, 2 shadows"]
    lira_on = summary[f"lira online, {n_large} shadows"]
    for mode in ("offline", "online"):
        rmia = summary[f"rmia {mode}, 2 references"]
        gap = lira_on["auc"] - rmia["auc"]
        checks = {
            "tp_at_least_lira_offline_2": rmia["tp"] >= lira_off2["tp"],
            "auc_gap_to_lira_online": gap,
            "auc_within_0.02": gap <= 0.02,
        }
        rmia["checks"] = checks
        print(
            f"  RMIA {mode} (2): TP {rmia['tp']} vs LiRA offline (2) {lira_off2['tp']} "
            f"({'>=' if checks['tp_at_least_lira_offline_2'] else '<'}); LiRA online "
            f"({n_large}) AUC minus RMIA's: {gap:+.3f}, "
            f"{'within' if checks['auc_within_0.02'] else 'NOT within'} 0.02"
        )
    return summary


def _attack_task(task: int) -> int:
    """An empty task that starts a pool worker (and imports advml's attacks there)."""
    import advml.evasion  # noqa: F401 (the import is the warm-up)

    time.sleep(0.2)
    return task


def evasion_shards(seed: int, workers: int, rounds: int) -> dict[str, Any]:
    """PGD-40 (random start) on 2,000 digits inputs: one local run against shards on a
    process pool of ``workers`` (started and warmed outside the timing); the results must
    be identical input by input. Rounds pair each sharded time with that round's local."""
    from advml.evasion import PGD
    from advml.evasion.shards import generate_sharded

    ds = load_dataset("digits")
    x_all = np.concatenate([ds.x_train, ds.x_test])
    y_all = np.concatenate([ds.y_train, ds.y_test])
    reps = -(-2000 // len(x_all))
    x, y = np.tile(x_all, (reps, 1, 1, 1))[:2000], np.tile(y_all, reps)[:2000]
    torch.manual_seed(seed)
    model = TorchClassifier(
        build("mlp", input_shape=ds.input_shape, n_classes=10),
        input_shape=ds.input_shape,
        n_classes=10,
        bounds=(0.0, 1.0),
    )
    train(model, ds.x_train, ds.y_train, epochs=10, seed=seed, show_progress=False)
    attack = PGD(eps=0.1, steps=40, random_start=True, seed=seed)
    rows: dict[str, Any] = {"local": [], "process": [], "load_average": []}
    identical = True
    with make_executor("process", workers=workers) as pool:
        list(pool.map(_attack_task, range(2 * workers)))
        for r in range(rounds):
            load = os.getloadavg()[0]
            start = time.perf_counter()
            whole = attack.generate(model, x, y)
            local = time.perf_counter() - start
            start = time.perf_counter()
            sharded = generate_sharded(attack, model, x, y, executor=pool)
            spread = time.perf_counter() - start
            same = all(
                np.array_equal(np.asarray(getattr(whole, k)), np.asarray(getattr(sharded, k)))
                for k in ("x_adv", "y_adv", "success", "queries")
            )
            identical = identical and same
            rows["local"].append(local)
            rows["process"].append(spread)
            rows["load_average"].append(load)
            print(
                f"  round {r + 1}: local {local:5.2f} s, process ({workers}) {spread:5.2f} s, "
                f"{local / spread:.2f}x (load average {load:.1f}); success "
                f"{whole.success_rate:.3f}; identical: {same}"
            )
    paired = np.array(rows["local"]) / np.array(rows["process"])
    rows["speedup"] = float(np.median(paired))
    rows["identical"] = identical
    rows["workers"] = workers
    print(f"  speed-up process / local: median {rows['speedup']:.2f}x")
    return rows


def main() -> None:
    os.environ.setdefault("ADVML_QUIET", "1")  # no progress bars between the rows
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 shadows instead of 16")
    parser.add_argument("--skip-timing", action="store_true", help="only the power table")
    parser.add_argument("--skip-power", action="store_true", help="only the timing")
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (paired)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--power-targets",
        type=int,
        default=3,
        help="targets of the power table (seeds --seed, --seed + 1, ...; default 3)",
    )
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument(
        "--evasion",
        action="store_true",
        help="only part 4: PGD-40 over 2,000 digits inputs, local vs shards on a process pool",
    )
    parser.add_argument(
        "--executors", default="local,process,ray", help="executors timed (local first)"
    )
    args = parser.parse_args()
    if args.power_targets < 1:
        parser.error(f"--power-targets must be >= 1; got {args.power_targets}")
    torch.set_num_threads(1)
    n_shadow = 8 if args.quick else 16
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()}")
    if args.evasion:
        print(f"4. evasion shards (PGD-40, 2,000 digits inputs, {args.rounds} round(s))")
        numbers = {"evasion_shards": evasion_shards(args.seed, args.workers, args.rounds)}
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(numbers, f, indent=1)
        return
    s = setting(args.seed)
    out: dict[str, Any] = {"seed": args.seed, "shadows": n_shadow}
    if not args.skip_timing:
        print(f"1. scaling (LiRA, {n_shadow} shadows of the digits MLP, {EPOCHS} epochs each)")
        names = args.executors.split(",")
        out["scaling"] = scaling(s, n_shadow, args.workers, names, args.rounds)
        if "ray" in names:
            print("2. Ray per-task overhead")
            out["ray_overhead"] = ray_overhead()
    if not args.skip_power:
        seeds = [args.seed + i for i in range(args.power_targets)]
        per_seed = []
        for seed in seeds:
            print(
                f"3. power on the overfit digits MLP, target seed {seed} (1,000 pool "
                "records, 500 members)"
            )
            per_seed.append(power(s if seed == args.seed else setting(seed), n_shadow))
        out["power"] = {
            "targets": seeds,
            "per_target": per_seed,
            "summary": power_summary(per_seed, n_shadow),
        }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
