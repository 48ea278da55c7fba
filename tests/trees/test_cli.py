"""``advml attack --attack tree_exact`` on tree models saved to files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from advml.cli import main
from advml.data import load_dataset
from advml.models import SklearnClassifier
from advml.models.io import save_model


def _run(model: Path, out: Path, attack: str, *extra: str) -> int:
    return main(
        [
            "attack",
            "--dataset",
            "breast-cancer",
            "--model",
            str(model),
            "--attack",
            attack,
            "--n-samples",
            "8",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


@pytest.mark.parametrize("attack", ["tree_exact", "tree_fast"])
def test_attack_command_on_a_skops_forest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], attack: str
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    ds = load_dataset("breast-cancer")
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(
        ds.x_train, ds.y_train
    )
    path = save_model(SklearnClassifier(forest, bounds=ds.bounds), tmp_path / "rf.skops")
    out = tmp_path / "adv.npz"
    assert _run(path, out, attack) == 0
    with np.load(out) as data:
        assert data["success"].all()
        linf = np.abs(data["x_adv"] - data["x"]).reshape(8, -1).max(axis=1)
        np.testing.assert_allclose(linf, data["radius"], rtol=1e-6, atol=1e-7)
        assert data["optimal"].all() == (attack == "tree_exact")
    assert "median radius" in capsys.readouterr().out


def test_attack_command_on_an_xgboost_model(tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    ds = load_dataset("breast-cancer")
    est = xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, random_state=0).fit(
        ds.x_train, ds.y_train
    )
    path = tmp_path / "xgb.pkl"
    path.write_bytes(pickle.dumps(SklearnClassifier(est, bounds=ds.bounds)))
    out = tmp_path / "adv.npz"
    assert _run(path, out, "tree_exact", "--trust-model-file", "--set", "time_limit=5") == 0
    with np.load(out) as data:
        assert data["success"].all() and data["optimal"].all()
