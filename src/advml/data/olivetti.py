"""The Olivetti faces (AT&T Laboratories Cambridge), from ``olivettifaces.mat``.

40 people, 10 grey-scale photographs of each, 64x64 pixels (Samaria & Harter, "Parameter
Estimation of a Stochastic Model for Human Face Identification", 1994); the face
recognition setting of Fredrikson et al.'s model-inversion attack (CCS 2015, §5). The file
is the MATLAB (v5) matrix Sam Roweis published and scikit-learn's
``fetch_olivetti_faces`` downloads: one variable ``faces`` of shape ``(4096, 400)``, each
column one image stored column-major (MATLAB order), the images person by person, 10
each. It is read with :func:`scipy.io.loadmat`, which parses the matrix and runs no code.

Pixels are scaled with the file's global minimum and maximum to [0, 1] (as scikit-learn
does). The split is fixed: of each person's 10 images the first 7 are training images and
the last 3 test images (280 / 120).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from advml.data.dataset import Dataset

__all__ = ["N_PEOPLE", "load_olivetti"]

N_PEOPLE = 40
PER_PERSON = 10
N_TRAIN_PER_PERSON = 7
SIDE = 64


def _read_faces(path: Path) -> np.ndarray:
    """The ``faces`` matrix of ``path`` as ``(400, 64, 64)`` float64, rows = images."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        contents = loadmat(str(path))
    except (MatReadError, ValueError, OSError, TypeError, IndexError) as err:
        raise ValueError(
            f"{path} is not a readable MATLAB .mat file ({err}); expected the Olivetti faces "
            "file olivettifaces.mat"
        ) from None
    if "faces" not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise ValueError(
            f"{path} has no variable 'faces' (it has {found}); expected olivettifaces.mat"
        )
    faces = np.asarray(contents["faces"])
    expected = (SIDE * SIDE, N_PEOPLE * PER_PERSON)
    if faces.shape != expected or not np.issubdtype(faces.dtype, np.number):
        raise ValueError(
            f"{path}: 'faces' is a {faces.dtype} array of shape {faces.shape}, expected a "
            f"numeric {expected} matrix (one 64x64 image per column)"
        )
    # Column j holds image j column-major: reshape row-major, then transpose each image.
    images = faces.T.astype(np.float64).reshape(-1, SIDE, SIDE).transpose(0, 2, 1)
    if not np.isfinite(images).all():
        raise ValueError(f"{path}: 'faces' contains NaN or infinite values")
    return images


def load_olivetti(path: Path) -> Dataset:
    """A :class:`Dataset` from ``olivettifaces.mat``: 40 classes, images ``(1, 64, 64)``."""
    images = _read_faces(Path(path))
    low, high = images.min(), images.max()
    if high <= low:
        raise ValueError(f"{path}: every pixel has the same value; the file is not the faces")
    pixels = ((images - low) / (high - low)).astype(np.float32)[:, None]
    labels = np.repeat(np.arange(N_PEOPLE), PER_PERSON)
    in_train = np.tile(np.arange(PER_PERSON) < N_TRAIN_PER_PERSON, N_PEOPLE)
    return Dataset(
        name="olivetti",
        x_train=pixels[in_train],
        y_train=labels[in_train],
        x_test=pixels[~in_train],
        y_test=labels[~in_train],
        input_shape=(1, SIDE, SIDE),
        n_classes=N_PEOPLE,
        bounds=(0.0, 1.0),
        class_names=tuple(f"person {i + 1}" for i in range(N_PEOPLE)),
        description=(
            "Olivetti faces (AT&T Laboratories Cambridge), olivettifaces.mat; 40 people x 10 "
            "images, first 7 of each train / last 3 test (280 / 120); min-max -> [0, 1]"
        ),
    )
