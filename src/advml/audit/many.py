"""Audits of many models: ``advml audit --models models.yaml``.

A models file lists the models a team ships, each with its data::

    models:
      - name: digits-mlp          # folder name of its report (letters, digits, - _ .)
        dataset: digits
        architecture: mlp         # a reference model trained here ...
      - name: my-model
        dataset: digits
        file: models/my-model.pt  # ... or a model file
        trust: false              # pickle/joblib files only with trust: true

Every model is one task on the executor (``local``, ``process`` or ``ray``): its audit
runs with the shared settings (``--config``, ``--quick``, the command's options), writes
``OUT/<name>/report.json`` and ``report.html`` and caches its steps in
``OUT/<name>/steps``, so a rerun resumes each model where it stopped. The driver then
writes ``OUT/summary.html``, ranking the models on the headline figures
(:mod:`advml.audit.summary_page`). On a Ray cluster, OUT must be a folder every node
can write (a shared file system); the reports also come back to the driver.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from advml.audit.config import AuditConfig
from advml.runtime.executors import Executor, LocalExecutor

__all__ = ["ModelEntry", "audit_models", "load_models_file"]

_KEYS = {"name", "dataset", "architecture", "file", "trust", "n_samples"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelEntry:
    """One model of a models file: its name and the config fields it sets."""

    name: str
    overrides: dict[str, Any]


def load_models_file(path: str | os.PathLike[str]) -> list[ModelEntry]:
    """Read and check a models file; every problem is a ``ValueError`` naming the file,
    the entry and the key."""
    where = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"--models {where}: cannot read it ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"--models {where}: not valid YAML ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list) or not doc["models"]:
        raise ValueError(
            f"--models {where}: expected 'models:' with a list of entries, each with a name "
            "and a dataset and a model file or a reference architecture"
        )
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["models"]):
        at = f"--models {where}: models[{i}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{at} must be a mapping (name, dataset, file or architecture)")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise ValueError(f"{at} has unknown keys {unknown}; known: {sorted(_KEYS)}")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"{at}.name must be a folder name of letters, digits, '-', '_' and '.', "
                f"got {name!r}"
            )
        if name in seen:
            raise ValueError(f"{at}.name {name!r} is used twice; names must be unique")
        seen.add(name)
        overrides: dict[str, Any] = {}
        for key, field_name in (
            ("dataset", "dataset"),
            ("architecture", "architecture"),
            ("file", "model"),
            ("trust", "trust_model_file"),
            ("n_samples", "n_samples"),
        ):
            if key in raw:
                overrides[field_name] = raw[key]
        if "model" in overrides:
            file = Path(str(overrides["model"]))
            if not file.is_absolute():  # relative to the models file, not the cwd
                file = Path(path).resolve().parent / file
            if not file.exists():
                raise ValueError(f"{at}.file: {file} does not exist")
            overrides["model"] = str(file)
        entries.append(ModelEntry(name, overrides))
    return entries


def _audit_one(base: AuditConfig, out: Path, entry: ModelEntry) -> dict[str, Any]:
    """One model's audit (a task: runs in a worker); returns its report."""
    from advml.audit.run import run_audit

    # Each model is one task already: its own sections run in that worker, not on a
    # second executor inside it.
    config = base.with_(**entry.overrides, executor="local", ray_address=None, workers=None)
    result = run_audit(config, out=out / entry.name, show_progress=False)
    return result.report


def audit_models(
    entries: list[ModelEntry],
    base: AuditConfig,
    out: str | os.PathLike[str],
    *,
    executor: Executor | None = None,
) -> dict[str, dict[str, Any]]:
    """Audit every model of ``entries`` with the settings of ``base``, one task each,
    and write ``OUT/summary.html``.

    Returns
    -------
    dict
        Each model's report, by name, in the file's order.
    """
    from advml.audit.summary_page import render_summary_page
    from advml.runtime.files import atomic_write

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    # Every entry's config is checked before the first audit starts.
    for entry in entries:
        try:
            base.with_(**entry.overrides)
        except (TypeError, ValueError) as err:
            raise ValueError(f"--models: model {entry.name!r}: {err}") from None
    runner = executor if executor is not None else LocalExecutor()
    reports = list(
        runner.map(lambda e: _audit_one(base, folder, e), entries)  # in the file's order
    )
    by_name = {e.name: r for e, r in zip(entries, reports, strict=True)}
    ran = runner.describe()
    atomic_write(folder / "summary.html", render_summary_page(by_name, run=ran))
    return by_name
