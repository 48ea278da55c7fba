"""The step cache reads back what it stored, and a damaged entry is detected, logged and
reported as not finished (so the step runs again), never raised to the resuming job."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from advml.runtime.cache import ResultCache


@pytest.fixture
def stored(tmp_path: Path) -> tuple[ResultCache, Path, Path]:
    cache = ResultCache(tmp_path / "steps")
    cache.put("step-a", {"acc": 0.5, "n": 3, "nan": float("nan")}, {"y": np.arange(3)})
    return cache, tmp_path / "steps" / "step-a.json", tmp_path / "steps" / "step-a.npz"


def test_a_stored_step_is_read_back_exactly(stored: tuple[ResultCache, Path, Path]) -> None:
    cache, _, _ = stored
    hit = cache.get("step-a")
    assert hit is not None
    meta, arrays = hit
    assert meta["acc"] == 0.5 and meta["n"] == 3 and np.isnan(meta["nan"])
    assert set(meta) == {"acc", "n", "nan"}
    np.testing.assert_array_equal(arrays["y"], np.arange(3))
    assert cache.has("step-a") and not cache.has("step-b")


def test_a_step_without_arrays_and_an_entry_from_before_checksums(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.put("plain", {"x": 1})
    assert cache.get("plain") == ({"x": 1}, {})
    # An entry written by an earlier advml (no checksum) is still read.
    (tmp_path / "old.json").write_text(json.dumps({"x": 2, "_has_arrays": False}))
    assert cache.get("old") == ({"x": 2}, {})


DAMAGE = {
    "truncated-npz": lambda j, a: a.write_bytes(a.read_bytes()[:30]),
    "missing-npz": lambda j, a: a.unlink(),
    "npz-of-other-arrays": lambda j, a: np.savez(a, y=np.arange(4)),
    "empty-object-json": lambda j, a: j.write_text("{}"),
    "truncated-json": lambda j, a: j.write_text(j.read_text()[:20]),
    "json-list": lambda j, a: j.write_text("[1, 2]"),
    "edited-number": lambda j, a: j.write_text(j.read_text().replace("0.5", "0.9")),
    "not-utf8": lambda j, a: j.write_bytes(b"\xff\xfe{"),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_entry_is_logged_and_not_finished(
    damage: str, stored: tuple[ResultCache, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cache, meta_path, arr_path = stored
    DAMAGE[damage](meta_path, arr_path)
    with caplog.at_level(logging.WARNING, logger="advml.runtime.cache"):
        assert cache.get("step-a") is None
    assert "step step-a: stored result damaged" in caplog.text
    assert "computed again" in caplog.text
    # Storing the recomputed step repairs the entry.
    cache.put("step-a", {"acc": 0.5}, {"y": np.arange(3)})
    hit = cache.get("step-a")
    assert hit is not None and hit[0] == {"acc": 0.5}


def test_damage_goes_to_the_logger_given(
    stored: tuple[ResultCache, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    _, meta_path, _ = stored
    meta_path.write_text("{}")
    cache = ResultCache(meta_path.parent, log=logging.getLogger("advml.audit.steps"))
    with caplog.at_level(logging.WARNING, logger="advml.audit.steps"):
        assert cache.get("step-a") is None
    assert [r.name for r in caplog.records] == ["advml.audit.steps"]
