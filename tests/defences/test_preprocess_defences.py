"""Each preprocessor's own claim, on hand-made inputs with known answers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from advml.defences.preprocess import (
    Autoencoder,
    FeatureSqueezing,
    GaussianBlur,
    GaussianNoise,
    JPEGCompression,
    MedianSmoothing,
)
from advml.errors import UntrustedFileError


def test_bit_depth_levels_are_exact() -> None:
    x = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, 101)
    one_bit = FeatureSqueezing(bit_depth=1)(x)
    np.testing.assert_array_equal(np.unique(one_bit), [0.0, 1.0])
    np.testing.assert_array_equal(one_bit, (x > 0.5).astype(np.float32))  # 0.5 rounds to 0
    two_bits = FeatureSqueezing(bit_depth=2)(x)
    # float32 levels k/3: one rounding of a value <= 1 (float32's eps is 1.2e-7).
    np.testing.assert_allclose(np.unique(two_bits), [0, 1 / 3, 2 / 3, 1], rtol=1e-6, atol=1e-7)
    # Levels spread over the bounds, not over [0, 1].
    shifted = FeatureSqueezing(bit_depth=1)(x * 4 - 2, bounds=(-2.0, 2.0))
    np.testing.assert_array_equal(np.unique(shifted), [-2.0, 2.0])


def test_median_removes_isolated_pixels_and_keeps_edges() -> None:
    x = np.zeros((1, 1, 7, 7), dtype=np.float32)
    x[0, 0, 3, 3] = 1.0  # salt
    x[0, 0, :, 5:] = 1.0  # a straight edge
    out = MedianSmoothing(size=3)(x)
    assert out[0, 0, 3, 3] == 0.0
    np.testing.assert_array_equal(out[0, 0, :, 5:], 1.0)
    np.testing.assert_array_equal(out[0, 0, :, :4], 0.0)


def test_median_of_an_even_window_is_the_mean_of_the_middle_pair() -> None:
    x = torch.tensor([[[[0.0, 1.0], [0.2, 0.6]]]])
    out = MedianSmoothing(size=2)(x)
    assert out[0, 0, 0, 0] == pytest.approx(0.4)  # middle of 0, 0.2, 0.6, 1


def test_blur_keeps_constants_and_mass() -> None:
    flat = np.full((2, 3, 9, 9), 0.37, dtype=np.float32)
    # A float32 weighted sum of 0.37 over the kernel: a few roundings of a value < 1.
    np.testing.assert_allclose(GaussianBlur(sigma=1.5)(flat), flat, rtol=1e-5)
    dot = np.zeros((1, 1, 15, 15), dtype=np.float32)
    dot[0, 0, 7, 7] = 1.0
    out = GaussianBlur(sigma=1.0)(dot)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    assert out[0, 0, 7, 7] < 0.2 and out[0, 0, 7, 8] == pytest.approx(out[0, 0, 8, 7])
    np.testing.assert_array_equal(GaussianBlur(sigma=0.0)(dot), dot)


def test_noise_has_the_requested_spread() -> None:
    x = np.full((50, 1, 20, 20), 0.5, dtype=np.float32)
    out = GaussianNoise(sigma=0.1)(x)
    assert np.std(out - x) == pytest.approx(0.1, rel=0.05)
    assert abs(float(np.mean(out - x))) < 0.005


def test_jpeg_is_the_real_codec() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 16, 16)).astype(np.float32)
    out = JPEGCompression(quality=40)(x)
    # The same as Pillow's own round trip of the 8-bit image.
    pixels = (x[0, 0] * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="JPEG", quality=40)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue()))).astype(np.float32) / 255
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6, atol=1e-6)
    # Colour images go through the RGB codec; lower quality loses more.
    rgb = rng.random((1, 3, 16, 16)).astype(np.float32)
    err = [float(np.abs(JPEGCompression(quality=q)(rgb) - rgb).mean()) for q in (90, 50, 10)]
    assert err[0] < err[1] < err[2]


# -- the autoencoder --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(digits_data: Any) -> Autoencoder:
    return Autoencoder(strength="high", epochs=6, batch_size=32, seed=0).fit(
        digits_data.x_train, show_progress=False
    )


def test_autoencoder_reconstructs_clean_data_and_denoises(
    fitted: Autoencoder, digits_data: Any
) -> None:
    x = digits_data.x_test[:100]
    recon = fitted(x)
    clean_err = np.abs(recon - x).mean()
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 0.2, x.shape), 0, 1).astype(np.float32)
    # It pulls a noisy input back towards the clean one.
    assert np.abs(fitted(noisy) - x).mean() < np.abs(noisy - x).mean()
    assert clean_err < 0.1
    assert fitted.history_ is not None and fitted.history_.epochs_run >= 1
    # Its error is larger off the clean data: the detector's premise.
    assert fitted.reconstruction_error(noisy).mean() > fitted.reconstruction_error(x).mean()


def test_autoencoder_fit_uses_the_shared_loop_seeded(digits_data: Any) -> None:
    x = digits_data.x_train[:200]
    a = Autoencoder(epochs=1, seed=3).fit(x, show_progress=False)
    b = Autoencoder(epochs=1, seed=3).fit(x, show_progress=False)
    np.testing.assert_array_equal(a(x[:5]), b(x[:5]))


def test_autoencoder_save_and_load(fitted: Autoencoder, digits_data: Any, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "ae.pt")
    loaded = Autoencoder.load(path)
    x = digits_data.x_test[:10]
    np.testing.assert_array_equal(loaded(x), fitted(x))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.bounds_ == fitted.bounds_ and loaded.input_shape_ == fitted.input_shape_


def test_autoencoder_refuses_files_that_would_run_code(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "advml-autoencoder", "payload": Boom()}, path)
    with pytest.raises(UntrustedFileError):
        Autoencoder.load(path)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk"):
        Autoencoder.load(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        Autoencoder.load(tmp_path / "missing.pt")


def test_autoencoder_must_be_fitted_and_shapes_must_match(
    fitted: Autoencoder, digits_data: Any
) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        Autoencoder()(digits_data.x_test[:2])
    with pytest.raises(ValueError, match="shape"):
        fitted(np.zeros((2, 1, 10, 10), dtype=np.float32))
    with pytest.raises(ValueError, match="x_train"):
        Autoencoder().fit(np.zeros((5, 64), dtype=np.float32))
