"""Datasets: embedded and downloadable built-ins, and the user's own files.

Every loader returns a :class:`Dataset`: a fixed train/test split, ``float32`` inputs
(images channels-first) within known ``bounds``, ``int64`` labels.

- :func:`load_dataset` / :func:`list_datasets`: built-in datasets by name. ``digits``,
  ``mnist-5k`` and ``breast-cancer`` ship inside installed packages (offline);
  ``mnist``, ``fashion-mnist`` and ``cifar10`` are downloaded once into
  :func:`advml_home` and verified by SHA-256.
- :func:`load_npz`, :func:`load_csv`: the user's own data.
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
from advml.data.user import load_csv, load_npz

__all__ = [
    "Dataset",
    "DatasetInfo",
    "advml_home",
    "check_data",
    "list_datasets",
    "load_csv",
    "load_dataset",
    "load_npz",
]
