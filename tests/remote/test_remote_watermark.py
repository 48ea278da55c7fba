"""The watermark section against a remote target: the owner's key file checks whether a
deployed model (served over HTTP) is the owner's watermarked model; without a key the
section is skipped with a reason that says how to give one."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from _servers import Server

from advml import registry
from advml.audit import AuditConfig, run_audit
from advml.audit.cost import estimate_queries
from advml.cli import main
from advml.data import load_dataset
from advml.models.torch import TorchClassifier
from advml.report import report_schema
from advml.watermark import save_key


@pytest.fixture(scope="module")
def marked(digits_mlp: TorchClassifier, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The digits MLP with Adi's trigger set (30 abstract images) and its key file."""
    ds = load_dataset("digits")
    scheme = registry.create("watermark", "adi", n_triggers=30, epochs=6, trigger_batch=32)
    result = scheme.embed(copy.deepcopy(digits_mlp), ds.x_train, ds.y_train, key="owner-1")
    key_file = save_key(result.key, tmp_path_factory.mktemp("key") / "owner.key.npz")
    return {"model": result.model, "key": result.key, "key_file": key_file}


def _config(url: str, key: Path | None) -> AuditConfig:
    settings = {"watermark": {"key": str(key)}} if key is not None else {}
    return AuditConfig(
        dataset="digits",
        target_url=url,
        sections=("watermark",),
        n_samples=20,
        section_settings=settings,
    )


def test_remote_watermarked_model_is_the_owners(
    serve: Callable[..., Server], marked: dict, tmp_path: Path
) -> None:
    s = serve(marked["model"])
    config = _config(s.url, marked["key_file"])
    assert estimate_queries(config, load_dataset("digits"))["watermark"] == 30
    report = run_audit(config, out=tmp_path / "a", show_progress=False).report
    jsonschema.validate(json.loads(json.dumps(report)), report_schema())
    section = report["sections"]["watermark"]
    suspect = section["suspect"]
    assert suspect["scheme"] == "adi" and suspect["kind"] == "trigger-set"
    assert suspect["key_file"] == "owner.key.npz" and suspect["n"] == 30
    assert suspect["verified"] and suspect["matches"] >= suspect["threshold"]
    assert suspect["chance_probability"] < section["alpha"]
    assert suspect["queries"] == 30
    assert section["verdict"]["level"] == "pass"
    assert "owner's watermark found" == section["verdict"]["label"]
    # The key's secret is nowhere in what the audit writes.
    for path in (tmp_path / "a").rglob("*"):
        if path.is_file():
            assert b"owner-1" not in path.read_bytes(), path


def test_remote_model_without_the_watermark_is_not_claimed(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, marked: dict, tmp_path: Path
) -> None:
    s = serve(digits_mlp)
    report = run_audit(_config(s.url, marked["key_file"]), show_progress=False).report
    section = report["sections"]["watermark"]
    suspect = section["suspect"]
    assert not suspect["verified"] and suspect["matches"] < suspect["threshold"]
    assert section["verdict"]["level"] == "fail"
    assert "does not carry" in section["verdict"]["text"]


def test_without_a_key_the_remote_target_is_skipped_with_how_to_give_one(
    serve: Callable[..., Server], digits_mlp: TorchClassifier
) -> None:
    s = serve(digits_mlp)
    report = run_audit(_config(s.url, None), show_progress=False).report
    (skip,) = [x for x in report["skipped_sections"] if x["section"] == "watermark"]
    assert "key" in skip["reason"] and "advml watermark embed --out-key" in skip["reason"]


def test_bad_key_file_names_the_setting(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, tmp_path: Path, capsys
) -> None:
    s = serve(digits_mlp)
    config = tmp_path / "audit.yaml"
    config.write_text(
        f"sections: {{run: [watermark], settings: {{watermark: {{key: {tmp_path / 'no.npz'}}}}}}}\n"
    )
    argv = ["audit", "--config", str(config), "--dataset", "digits", "--target-url", s.url]
    assert main([*argv, "--n-samples", "5", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "watermark setting 'key'" in err and "no.npz" in err
