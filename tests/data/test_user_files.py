"""``--dataset`` on the user's files: image folders, CSV and Parquet tables, bounds files,
``limit``; and the errors a user meets with bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advml.data import apply_bounds, load_data, load_dataset, load_image_folder, read_bounds
from advml.data import images as images_module


def write_images(root: Path, classes: dict[str, int], *, size=(10, 12), mode="L", fmt="png"):
    """``n`` images per class folder; image ``i`` of class ``k`` is filled with 20*k+i."""
    for k, (cls, n) in enumerate(classes.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = 20 * k + i if mode == "L" else (20 * k + i, 0, 255)
            Image.new(mode, size, colour).save(root / cls / f"{i}.{fmt}")


def test_image_folder_sorted_classes_resized_and_scaled(tmp_path: Path) -> None:
    write_images(tmp_path / "pics", {"dog": 5, "cat": 5})
    ds = load_data(tmp_path / "pics", input_shape=(1, 4, 4))
    assert ds.class_names == ("cat", "dog")  # sorted folder names
    assert ds.input_shape == (1, 4, 4) and ds.n_train + ds.n_test == 10
    assert ds.bounds == (0.0, 1.0) and ds.feature_bounds is None
    # A constant image stays constant through the resize; its value is colour / 255.
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    values = sorted(float(v) for v in x.reshape(10, -1).mean(1))
    expected = sorted([i / 255 for i in range(5)] + [(20 + i) / 255 for i in range(5)])
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    # dog was written first (values 0..4), but labels follow the sorted names: dog is 1.
    assert set(y[x.reshape(10, -1)[:, 0] < 10 / 255].tolist()) == {1}


def test_image_folder_classes_order_rgb_jpeg_and_train_test_folders(tmp_path: Path) -> None:
    root = tmp_path / "split"
    write_images(root / "train", {"a": 3, "b": 4}, mode="RGB", fmt="jpg", size=(64, 48))
    write_images(root / "test", {"a": 2, "b": 2}, mode="RGB", fmt="jpeg", size=(32, 32))
    ds = load_image_folder(root, input_shape=(3, 8, 8), classes=["b", "a"])
    assert ds.class_names == ("b", "a")
    assert (ds.n_train, ds.n_test) == (7, 4)
    assert ds.x_train.shape == (7, 3, 8, 8)
    assert np.bincount(ds.y_train).tolist() == [4, 3]
    # Blue channel is 255 everywhere (JPEG keeps a flat colour to within a few levels).
    np.testing.assert_allclose(ds.x_train[:, 2], 1.0, atol=3 / 255)


def test_image_folder_input_shape_from_the_first_image(tmp_path: Path) -> None:
    write_images(tmp_path, {"x": 3, "y": 3}, size=(7, 5))
    ds = load_image_folder(tmp_path)
    assert ds.input_shape == (1, 5, 7)


def test_image_folder_limit_decodes_a_stratified_sample(tmp_path: Path, monkeypatch) -> None:
    write_images(tmp_path, {"a": 20, "b": 10})
    opened: list[str] = []
    real_open = images_module._open

    def counting(path: Path):  # type: ignore[no-untyped-def]
        opened.append(path.name)
        return real_open(path)

    monkeypatch.setattr(images_module, "_open", counting)
    ds = load_image_folder(tmp_path, input_shape=(1, 4, 4), limit=9, seed=3)
    assert ds.n_train + ds.n_test == 9
    assert len(opened) == 9 + 0  # only the sampled files are decoded (shape given)
    y = np.concatenate([ds.y_train, ds.y_test])
    assert np.bincount(y).tolist() == [6, 3]  # 2:1 kept


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda r: (r / "a").mkdir() or write_images(r, {"b": 2}), "'.*a' holds no image"),
        (lambda r: write_images(r, {"only": 3}), "at least two"),
        (
            lambda r: write_images(r, {"a": 2, "b": 2}) or (r / "b" / "bad.png").write_bytes(b"x"),
            "bad.png.*cannot be read",
        ),
    ],
)
def test_image_folder_bad_inputs_name_the_folder_or_file(tmp_path: Path, make, match) -> None:
    make(tmp_path)
    with pytest.raises(ValueError, match=match):
        load_image_folder(tmp_path, input_shape=(1, 4, 4))


def test_image_folder_refuses_a_huge_declared_size_before_decoding(tmp_path, monkeypatch) -> None:
    write_images(tmp_path, {"a": 2, "b": 2}, size=(100, 100))
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 5_000)

    def no_decoding(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(ValueError, match=r"declares 100 x 100 pixels.*refused before decoding"):
        load_image_folder(tmp_path, input_shape=(1, 4, 4))


def test_image_folder_checks_the_total_size_before_allocating(tmp_path: Path) -> None:
    write_images(tmp_path, {"a": 3, "b": 3})
    with pytest.raises(ValueError, match=r"6 images of shape \(3, 256, 256\).*--limit"):
        load_image_folder(tmp_path, input_shape=(3, 256, 256), max_bytes=1_000_000)


def test_image_folder_classes_must_match_the_folders(tmp_path: Path) -> None:
    write_images(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(ValueError, match=r"no folder for \['c'\].*folders \['b'\] are not listed"):
        load_image_folder(tmp_path, classes=["a", "c"])


def table(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(0, 1, n), rng.uniform(-50, 200, n), rng.integers(0, 5, n)])
    return x, np.where(x[:, 0] > 0.5, "yes", "no")


def test_csv_gets_per_feature_bounds_from_the_data_with_a_warning(tmp_path: Path) -> None:
    x, y = table()
    f = tmp_path / "t.csv"
    f.write_text(
        "a,b,c,label\n" + "\n".join(f"{a},{b},{c},{v}" for (a, b, c), v in zip(x, y, strict=True))
    )
    with pytest.warns(UserWarning, match="min and max per feature"):
        ds = load_data(f, label_column="label")
    assert ds.class_names == ("no", "yes")
    low, high = ds.feature_bounds
    np.testing.assert_allclose(low, x.min(0), rtol=1e-6)
    np.testing.assert_allclose(high, x.max(0), rtol=1e-6)
    assert ds.bounds == (float(low.min()), float(high.max()))


def test_csv_non_numeric_column_is_named(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("a,colour,label\n1,red,0\n2,blue,1\n3,red,0\n")
    with pytest.raises(ValueError, match="feature column 'colour' holds 'red', not a number"):
        load_data(f, label_column="label")


def write_parquet(path: Path, x: np.ndarray, y, **extra) -> Path:
    import pandas as pd

    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2].astype(int), **extra})
    frame["target"] = y
    frame.to_parquet(path)
    return path


def test_parquet_reads_in_batches_with_per_feature_bounds(tmp_path: Path) -> None:
    x, y = table(n=80)
    f = write_parquet(tmp_path / "t.parquet", x, y)
    bounds = tmp_path / "b.json"
    bounds.write_text(json.dumps({"low": [0, -100, 0], "high": [1, 250, 10]}))
    ds = load_data(f, label_column="target", bounds=str(bounds), limit=30)
    assert ds.input_shape == (3,) and ds.n_train <= 30 and ds.n_test <= 30
    np.testing.assert_array_equal(ds.feature_bounds[0], [0, -100, 0])
    np.testing.assert_array_equal(ds.feature_bounds[1], [1, 250, 10])
    whole = load_data(f, label_column="target", bounds=str(bounds))
    small_batches = load_parquet_batches(f, bounds)
    np.testing.assert_array_equal(whole.x_train, small_batches.x_train)


def load_parquet_batches(f: Path, bounds: Path):  # type: ignore[no-untyped-def]
    from advml.data import load_parquet

    return load_parquet(f, label_column="target", bounds=str(bounds), batch_rows=7)


def test_parquet_bad_inputs(tmp_path: Path) -> None:
    x, y = table()
    f = write_parquet(tmp_path / "t.parquet", x, y, city=["x"] * len(y), kind=["k"] * len(y))
    with pytest.raises(
        ValueError, match=r"'city' \(\w*string\), 'kind' \(\w*string\) are not numeric"
    ):
        load_data(f, label_column="target")
    with pytest.raises(ValueError, match=r"label_column='label' is not a column.*'target'"):
        load_data(f, label_column="label")
    with pytest.raises(ValueError, match="--label-column"):
        load_data(f)


def test_bounds_files_npy_json_csv_and_per_channel(tmp_path: Path) -> None:
    np.save(tmp_path / "b.npy", np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]))
    (tmp_path / "b.csv").write_text("low,high\n0,1\n0,2\n0,3\n")
    (tmp_path / "c.json").write_text("[[0, 0, 0], [1, 2, 3]]")
    for name in ("b.npy", "b.csv", "c.json"):
        _, high = read_bounds(tmp_path / name, (3, 4, 4))  # per channel
        np.testing.assert_array_equal(high, [1, 2, 3])
    ds = apply_bounds(load_dataset("digits"), (np.zeros(64), np.full(64, 2.0)))
    assert ds.bounds == (0.0, 2.0) and ds.feature_bounds is None  # all equal: one pair
    with pytest.raises(ValueError, match=r"bounds file b.npy low has shape \(3,\)"):
        read_bounds(tmp_path / "b.npy", (5, 2))
    high = np.ones(64)
    high[27] = 0.01  # a centre pixel, often bright
    with pytest.raises(ValueError, match=r"feature 27 \(flattened\).*outside its bounds"):
        apply_bounds(load_dataset("digits"), (np.zeros(64), high))


def test_limit_is_stratified_and_seeded() -> None:
    ds = load_dataset("digits")
    a, b = ds.limited(50, seed=1), ds.limited(50, seed=1)
    assert a.n_train == 50 and a.n_test == 50
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert np.bincount(a.y_test, minlength=10).min() >= 4  # every class present
    assert load_data("digits", limit=10**6).n_train == ds.n_train
