"""Metrics on generated images: Frechet distance, colour error, SSIM/PSNR.

Plain functions over numpy arrays so they can be tested on known inputs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from serving_contract.palette import BACKGROUND_RGB, srgb_to_lab

#: RGB distance from the background beyond which a pixel belongs to the product
GARMENT_THRESHOLD = 40.0

_MISSING = np.full(3, np.nan)  # no reference for a (category, colour): never the nearest


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``[N, D]``.

    ``eps * I`` is added before the matrix square root: ReLU features make covariances
    singular and sqrtm otherwise returns garbage.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.cov(a, rowvar=False) + eps * np.eye(a.shape[1])
    cov_b = np.cov(b, rowvar=False) + eps * np.eye(b.shape[1])
    root = linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(root):
        root = root.real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * root))


def garment_colour_lab(images: np.ndarray) -> np.ndarray:
    """Mean CIELAB colour of the product pixels of each image ``[N, H, W, 3]`` -> ``[N, 3]``.

    Product pixels are those far enough from the white background; an image with none
    (blank) gets NaN so it counts as a miss, never as a match.
    """
    pixels = images.astype(np.float64)
    distance = np.linalg.norm(pixels - np.asarray(BACKGROUND_RGB, np.float64), axis=-1)
    mask = distance > GARMENT_THRESHOLD
    lab = srgb_to_lab(pixels)
    counts = mask.sum(axis=(1, 2))
    sums = (lab * mask[..., None]).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def colour_reference(
    images: np.ndarray, categories: np.ndarray, colours: np.ndarray
) -> dict[tuple[int, int], np.ndarray]:
    """Mean garment Lab colour of real images per (category, colour): what 'red' looks like."""
    lab = garment_colour_lab(images)
    reference = {}
    for key in {(int(c), int(k)) for c, k in zip(categories, colours, strict=True)}:
        chosen = (categories == key[0]) & (colours == key[1])
        reference[key] = np.nanmean(lab[chosen], axis=0)
    return reference


def colour_errors(
    images: np.ndarray,
    categories: np.ndarray,
    colours: np.ndarray,
    reference: dict[tuple[int, int], np.ndarray],
    num_colours: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per image: Delta E (CIE76) to the requested colour's reference, and the nearest colour."""
    lab = garment_colour_lab(images)
    delta_e = np.empty(len(images))
    nearest = np.empty(len(images), np.int64)
    for i, (category, colour) in enumerate(zip(categories, colours, strict=True)):
        options = np.stack([reference.get((int(category), k), _MISSING) for k in range(num_colours)])
        distances = np.linalg.norm(options - lab[i], axis=1)
        delta_e[i] = distances[int(colour)]
        nearest[i] = -1 if np.isnan(distances).all() else int(np.nanargmin(distances))
    return delta_e, nearest


def ssim_psnr(generated: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image SSIM (Gaussian window 11, data range 255) and PSNR in dB, uint8 HWC inputs."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    a = torch.from_numpy(generated).permute(0, 3, 1, 2).double()
    b = torch.from_numpy(truth).permute(0, 3, 1, 2).double()
    ssim = structural_similarity_index_measure(a, b, data_range=255.0, reduction="none")
    psnr = peak_signal_noise_ratio(a, b, data_range=255.0, reduction="none", dim=(1, 2, 3))
    return np.asarray(ssim), np.asarray(psnr)
