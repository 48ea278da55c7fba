"""Datasets: embedded and downloadable built-ins, and the user's own files.

Every loader returns a :class:`Dataset`: a fixed train/test split, ``float32`` inputs
(images channels-first) within known ``bounds``, ``int64`` labels.

- :func:`load_dataset` / :func:`list_datasets`: built-in datasets by name. ``digits``,
  ``mnist-5k`` and ``breast-cancer`` ship inside installed packages (offline);
  ``mnist``, ``fashion-mnist`` and ``cifar10`` are downloaded once into
  :func:`advml_home` and verified by SHA-256.
- :func:`load_data`: what ``--dataset`` takes: a name, an image folder
  (:func:`load_image_folder`), a CSV (:func:`load_csv`) or Parquet
  (:func:`load_parquet`) table, an ``.npz`` archive (:func:`load_npz`); bounds per
  feature from a file (:func:`read_bounds`) or the data; ``limit`` samples.
- :func:`check_data`: the checks every dataset passes, for arrays from elsewhere.

Examples
--------
>>> from advml.data import load_dataset
>>> ds = load_dataset("digits")
>>> ds.x_train.shape, ds.x_test.shape, ds.bounds
((1437, 1, 8, 8), (360, 1, 8, 8), (0.0, 1.0))
"""

from advml.data.catalog import list_datasets, load_dataset
from advml.data.dataset import Dataset, DatasetInfo, check_data
from advml.data.download import advml_home
from advml.data.files import apply_bounds, load_data
from advml.data.images import load_image_folder
from advml.data.tables import load_parquet, read_bounds
from advml.data.user import load_csv, load_npz

__all__ = [
    "Dataset",
    "DatasetInfo",
    "advml_home",
    "apply_bounds",
    "check_data",
    "list_datasets",
    "load_csv",
    "load_data",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_parquet",
    "read_bounds",
]
