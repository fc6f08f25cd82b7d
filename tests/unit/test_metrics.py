from __future__ import annotations

import numpy as np
import pytest

from serving_contract.palette import NUM_COLOURS, PALETTE
from training.data import fashion_mnist
from training.data.products import product_images
from training.evaluate.inception_fid import kernel_inception_distance
from training.evaluate.metrics import colour_errors, colour_reference, frechet_distance, ssim_psnr


def test_frechet_distance_is_zero_for_same_set_and_mean_shift_squared_otherwise() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 2.0) == pytest.approx(8 * 4.0, rel=1e-3)


def test_kid_separates_shifted_sets() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    same, _ = kernel_inception_distance(a, b, subsets=5, subset_size=300)
    shifted, _ = kernel_inception_distance(a, b + 1.0, subsets=5, subset_size=300)
    assert abs(same) < 0.05 < shifted


def test_colour_error_finds_the_colour_of_real_images_and_flags_a_wrong_one() -> None:
    test = fashion_mnist.load("test")
    images, labels = test.images[:600], test.labels[:600]
    colours = np.arange(600) % NUM_COLOURS
    real = product_images(fashion_mnist.FashionMNIST(images, labels), colours)
    reference = colour_reference(real, labels, colours)
    delta_e, nearest = colour_errors(real, labels, colours, reference, NUM_COLOURS)
    assert (nearest == colours).mean() > 0.95
    shifted = (colours + 3) % NUM_COLOURS
    repainted = product_images(fashion_mnist.FashionMNIST(images, labels), shifted)
    wrong_delta, wrong_nearest = colour_errors(repainted, labels, colours, reference, NUM_COLOURS)
    assert np.median(wrong_delta) > 5 * np.median(delta_e)
    assert (wrong_nearest == colours).mean() < 0.05
    assert len(PALETTE) == NUM_COLOURS


def test_ssim_and_psnr_rank_a_noisy_copy_below_the_original() -> None:
    rng = np.random.default_rng(2)
    ramp = np.linspace(40, 220, 64)
    image = np.broadcast_to(ramp[None, :, None, None], (2, 64, 64, 3)).astype(np.uint8).copy()
    noisy = np.clip(image.astype(int) + rng.integers(-40, 40, size=image.shape), 0, 255).astype(np.uint8)
    ssim_same, psnr_same = ssim_psnr(image, image)
    ssim_noisy, psnr_noisy = ssim_psnr(noisy, image)
    assert np.allclose(ssim_same, 1.0)
    assert (ssim_noisy < 0.9).all() and (psnr_noisy < 25).all() and np.isinf(psnr_same).all()
