"""Exact resume of a model with Dropout: its masks come from the CPU generator on the CPU and
from the device's own generator on CUDA; the checkpoint keeps whichever the run used."""

import pytest
import torch

from ganstudy.config import TrainConfig, VariantConfig
from ganstudy.models import ImageSpec
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import train_gan

IMAGE = ImageSpec(1, 28, 10)
SGAN = VariantConfig(  # D: conv stack, Dropout(0.5), two heads
    arch="sgan",
    arch_args={"z_dim": 16},
    game="sgan",
    optimizer={"lr_g": 1e-3, "lr_d": 1e-3},
    labelled=20,
)


def _interrupt_at(step: int):
    def on_samples(at: int, _: torch.Tensor) -> None:
        if at == step:
            raise KeyboardInterrupt

    return on_samples


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
            ],
        ),
    ],
)
def test_dropout_model_resumes_exactly(tmp_path, device):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 28, 28, generator=gen) * 2 - 1  # (64, 1, 28, 28)
    labels = torch.arange(64) % 10  # (64,)
    train = TrainConfig(
        iterations=4,
        batch_size=8,
        log_every=1,
        sample_every=2,
        checkpoint_every=2,
        grid_size=4,
        device=device,
    )

    def run(folder: str, **kw):
        out = tmp_path / folder
        return train_gan(images, IMAGE, "sgan", SGAN, train, 5, out, labels=labels, **kw)

    straight = run("straight")
    with pytest.raises(KeyboardInterrupt):
        run("resumed", on_samples=_interrupt_at(2))
    state = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)
    assert state["step"] == 2
    assert ("rng_cuda" in state) == (device == "cuda")
    resumed = run("resumed")
    assert resumed.resumed_from == 2
    a, b = (load_checkpoint(tmp_path / f / CHECKPOINT_NAME) for f in ("straight", "resumed"))
    for net in ("G", "D"):  # D's Dropout masks decided every D update after the resume
        assert a[net].keys() == b[net].keys()
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert straight.history.equals(resumed.history)
