"""``advml defend --data FILE`` with a damaged poisoned-data file: one row per case.

Each row writes a file that differs from a valid ``advml poison`` output in one field and
asserts exit code 2 and a message that names the file and the field (never a numpy,
json or KeyError traceback).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advml.cli import main
from advml.poisoning import BadNets, PatternTrigger, load_poisoned, save_poisoned


def _valid(path: Path) -> dict[str, Any]:
    """The arrays of a valid poisoned-data file (40 random 8x8 images), as a dict."""
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    data = BadNets(trigger=PatternTrigger(size=2), fraction=0.1, target=0).poison(
        x, y, n_classes=10
    )
    save_poisoned(data, path, dataset="digits")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _meta(arrays: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(str(arrays["meta"]))
    return meta


def _with_meta(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(arrays: dict[str, Any]) -> None:
        meta = _meta(arrays)
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))

    return edit


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(arrays: dict[str, Any]) -> None:
        arrays[key] = value

    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(arrays: dict[str, Any]) -> None:
        del arrays[key]

    return edit


# (case id, edit of the valid arrays, words the message must contain)
CASES: list[tuple[str, Callable[[dict[str, Any]], None], tuple[str, ...]]] = [
    ("indices out of range", _set("indices", np.array([0, 5, 400])), ("'indices'", "400")),
    ("negative index", _set("indices", np.array([-1])), ("'indices'",)),
    ("indices not integers", _set("indices", np.array([0.5])), ("'indices'",)),
    ("trigger without name", _with_meta(lambda m: m["trigger"].pop("name")), ("trigger", "name")),
    (
        "trigger with a bad setting",
        _with_meta(lambda m: m["trigger"].update(size=-1)),
        ("trigger", "size"),
    ),
    ("trigger not an object", _with_meta(lambda m: m.update(trigger=3)), ("trigger",)),
    ("meta not JSON", _set("meta", np.array("{not json")), ("'meta'", "JSON")),
    ("meta a JSON list", _set("meta", np.array("[1, 2]")), ("'meta'", "object")),
    ("meta without n_classes", _with_meta(lambda m: m.pop("n_classes")), ("'n_classes'",)),
    ("n_classes not an integer", _with_meta(lambda m: m.update(n_classes="ten")), ("n_classes",)),
    ("bounds not a pair", _with_meta(lambda m: m.update(bounds=[0])), ("bounds",)),
    ("labels beyond the classes", _set("y", np.full(40, 12)), ("'y'", "labels")),
    ("labels of the wrong length", _set("y_original", np.zeros(3, dtype=int)), ("'y_original'",)),
    ("no indices", _drop("indices"), ("indices", "advml poison")),
]


@pytest.mark.parametrize(("edit", "words"), [pytest.param(e, w, id=i) for i, e, w in CASES])
def test_a_damaged_poisoned_data_file_is_refused_naming_the_field(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Callable[[dict[str, Any]], None],
    words: tuple[str, ...],
) -> None:
    arrays = _valid(tmp_path / "valid.npz")
    edit(arrays)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    capsys.readouterr()
    argv = ["defend", "--dataset", "digits", "--data", str(bad), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(b"not a zip file", ("cannot be read",), id="not an npz"),
        pytest.param(None, ("cannot be read",), id="missing file"),
    ],
)
def test_a_file_that_is_no_npz_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, words: tuple[str]
) -> None:
    path = tmp_path / "data.npz"
    if content is not None:
        path.write_bytes(content)
    capsys.readouterr()
    assert main(["defend", "--dataset", "digits", "--data", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and all(w in err for w in words)


def test_a_valid_file_reads_back(tmp_path: Path) -> None:
    arrays = _valid(tmp_path / "valid.npz")
    data = load_poisoned(tmp_path / "valid.npz")
    np.testing.assert_array_equal(data.indices, arrays["indices"])
    assert data.trigger is not None and data.trigger.get_params()["size"] == 2
