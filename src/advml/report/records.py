"""Per-input records (``advml audit --save-examples``): each section's results per input,
and the adversarial inputs themselves, beside report.json.

A section puts one array per column under ``record.<column>`` (one row per evaluated
input) and arrays of inputs under ``inputs.<name>`` into its artifacts; this module
writes ``<section>.parquet`` (or ``<section>.records.npz`` where pyarrow is missing) and
``<section>.inputs.npz``. Loading the Parquet file in pandas reproduces the section's
figures: e.g. ``(df.pred_pgd_eps0.1 == df.label).mean()`` is PGD's robust accuracy at
ε = 0.1 (tests/audit/test_report_records.py).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from advml.runtime.files import atomic_write

__all__ = ["split_records", "write_records"]


def split_records(
    artifacts: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(pictures, records, inputs)``: the artifacts without the per-input arrays, the
    record columns and the input arrays (prefixes removed)."""
    pictures, records, inputs = {}, {}, {}
    for key, value in artifacts.items():
        if key.startswith("record."):
            records[key[len("record.") :]] = np.asarray(value)
        elif key.startswith("inputs."):
            inputs[key[len("inputs.") :]] = np.asarray(value)
        else:
            pictures[key] = value
    return pictures, records, inputs


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def write_records(
    folder: Path, section: str, records: dict[str, np.ndarray], inputs: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Write one section's records and inputs into ``folder``; return their file names."""
    files: dict[str, Any] = {}
    if records:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:  # pyarrow is optional: the same columns as .npz
            name = f"{section}.records.npz"
            atomic_write(folder / name, _npz_bytes(records))
        else:
            name = f"{section}.parquet"
            table = pa.table({k: np.asarray(v) for k, v in records.items()})
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            atomic_write(folder / name, sink.getvalue().to_pybytes())
        files["records"] = name
        files["columns"] = sorted(records)
        files["rows"] = len(next(iter(records.values())))
    if inputs:
        name = f"{section}.inputs.npz"
        atomic_write(folder / name, _npz_bytes(inputs))
        files["inputs"] = name
        files["input_arrays"] = sorted(inputs)
    return files
