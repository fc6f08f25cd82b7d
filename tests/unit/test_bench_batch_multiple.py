"""The committed models, padded to the exported ``batch_multiple`` as the backends pad them, give an
item the same bytes in whatever batch it is served: alone, among a few, or in a full batch. The
benchmarks rely on it (the in-process alternative pads the same way), and it is what let the
multiple drop from 8 to 4 (half the work of a 4-variant listing job and of each try-on call)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from bench.perf.torch_inference import config_parameters, noise, padded  # noqa: E402
from embedded.triton import DEFAULT_REPOSITORY  # noqa: E402
from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR  # noqa: E402

#: a full batch, and the items' placements checked against it
FULL = 24
SMALL_BATCHES = (1, 2, 3, 5, 7)


def _run(name: str, items: list[int]) -> torch.Tensor:
    model_dir = DEFAULT_REPOSITORY / name
    parameters = config_parameters(model_dir)
    latent, multiple = int(parameters["latent_dim"]), int(parameters["batch_multiple"])
    module = torch.jit.load(str(model_dir / "1" / "model.pt"), map_location="cpu").eval()
    index = torch.tensor(items)
    z = padded(noise([1000 + i for i in items], latent), multiple)
    if name == PRODUCT_GENERATOR.name:
        conditions = [index % 10, index % 12]
    else:
        body = torch.tensor([[172.0, 70.0, 96.0, 82.0, 98.0]]).repeat(len(items), 1)
        garments = (index.view(-1, 1, 1, 1) * 37 % 251).to(torch.uint8).expand(-1, 32, 32, 3).contiguous()
        conditions = [body, index % 4, torch.full((len(items),), 3), garments]
    with torch.inference_mode():
        return module(z, *[padded(c, multiple) for c in conditions])[: len(items)]


@pytest.mark.parametrize("name", [PRODUCT_GENERATOR.name, TRYON_GENERATOR.name])
def test_an_item_gets_the_same_bytes_alone_among_a_few_and_in_a_full_batch(name: str) -> None:
    torch.set_num_threads(1)
    full = _run(name, list(range(FULL)))
    for n in SMALL_BATCHES:
        for start in range(0, FULL - n + 1, 4):
            items = list(range(start, start + n))
            assert torch.equal(_run(name, items), full[start : start + n]), (name, items)
