"""``advml audit --target-url`` on the user's own table: the cost check reads the data as
the audit does (a CSV with --label-column), prints its line and the audit runs."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from _servers import Server
from sklearn.datasets import load_breast_cancer
from torch import nn

from advml.cli import main
from advml.data import load_data
from advml.models import TorchClassifier
from advml.models.architectures import build


@pytest.fixture(scope="module")
def cancer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """breast-cancer as a CSV of 30 raw features with the label column 'y' first."""
    data = load_breast_cancer()
    path = tmp_path_factory.mktemp("cancer") / "cancer.csv"
    header = ",".join(["y"] + [f"f{i}" for i in range(30)])
    rows = [
        ",".join([str(c), *(f"{v:.6g}" for v in row)])
        for row, c in zip(data.data, data.target, strict=True)
    ]
    path.write_text(header + "\n" + "\n".join(rows))
    return path


def _table_model(csv: Path) -> TorchClassifier:
    """A small MLP on the table's standardised features (the served model)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_data(csv, label_column="y")
    mean, std = ds.x_train.mean(0), ds.x_train.std(0)
    torch.manual_seed(0)
    net = build("mlp", input_shape=(30,), n_classes=2, hidden=(16,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.tensor((ds.x_train - mean) / std), torch.tensor(ds.y_train)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    return TorchClassifier(
        net, input_shape=(30,), n_classes=2, bounds=ds.bounds, preprocessing=(mean, std)
    )


def test_remote_audit_of_a_csv_prints_the_cost_and_runs(
    serve: Callable[..., Server],
    cancer_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = serve(_table_model(cancer_csv))
    config = tmp_path / "audit.yaml"
    config.write_text(
        "adversary: {queries_per_input: 20}\n"
        "evasion: {eps: [0.0, 0.1], examples: 2}\n"
        "sections: {run: [evasion]}\n"
    )
    out = tmp_path / "audit"
    argv = ["audit", "--config", str(config), "--target-url", s.url, "--dataset"]
    argv += [str(cancer_csv), "--label-column", "y", "--n-samples", "6", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table's bounds-from-data warning
        code = main([*argv, "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "this audit will send at most about" in err
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["source"] == "remote"
    assert report["dataset"]["n_evaluated"] == 6
    ran = {a["name"] for a in report["sections"]["evasion"]["attacks"]}
    assert "square" in ran
    # Every answer the audit paid for came from the served model.
    assert s.model.query_count > 0
    assert np.isfinite(report["model"]["clean_accuracy"])
