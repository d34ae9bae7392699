"""The head-accuracy protocol (models.sgan.HEAD_PROTOCOL): every classifier-head number is
scored after D's BatchNorm statistics are re-estimated on real training images, so a briefly
trained baseline is not judged on running averages that had no time to converge."""

import pytest
import torch
from torch import nn

from ganstudy.errors import GanstudyError
from ganstudy.metrics.head import head_accuracy
from ganstudy.models.sgan import HEAD_STATS_IMAGES, classifier_accuracy, recompute_batchnorm
from ganstudy.training.loop import train_gan
from tests.unit.test_sgan import BLOCKS, blocks, cfg, trained_d
from tests.unit.test_sgan_baseline import variant

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> object:
    """A briefly trained supervised baseline (the book's case: few updates, momentum 0.1)."""
    images, labels = blocks(64, seed=0)
    out = tmp_path_factory.mktemp("sup")
    train_gan(images, BLOCKS, "sup", variant(), cfg(10), 0, out, labels=labels)
    return out


def norms(D: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in D.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_recompute_batchnorm_is_the_exact_mean_and_variance_and_leaves_d_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(0.5), nn.Flatten(), nn.Linear(12, 2))
    x = torch.randn(40, 3, 2, 2) * 3 + 1
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    fresh = recompute_batchnorm(net, x, batch_size=40)  # one batch: exact moments
    assert torch.equal(torch.get_rng_state(), rng)  # Dropout stayed off: no draw
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # D unchanged
    bn = fresh[0]
    assert torch.allclose(bn.running_mean, x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, x.var((0, 2, 3), unbiased=True), atol=1e-4)
    assert bn.momentum == 0.1 and not fresh.training  # restored, in eval mode


def test_protocol_score_does_not_depend_on_how_far_running_statistics_converged(run):
    images, _ = blocks(64, seed=0)
    held_out = blocks(200, seed=1)
    converged, unconverged = trained_d(run), trained_d(run)
    for bn in norms(unconverged):  # as if almost no update had moved the averages
        bn.reset_running_stats()
        bn.running_mean += 5.0
    raw = [classifier_accuracy(D, *held_out) for D in (converged, unconverged)]
    fair = [
        classifier_accuracy(D, *held_out, stats_images=images) for D in (converged, unconverged)
    ]
    assert raw[0] != raw[1]  # scored as trained, the statistics decide the number
    assert fair[0] == fair[1]  # under the protocol they do not
    assert fair[0] >= 0.8  # and the head is scored on what it learnt (chance 0.25)


def test_head_accuracy_of_a_run_applies_the_protocol_on_the_first_training_images(run):
    images, _ = blocks(64, seed=0)
    held_out = blocks(200, seed=1)
    D = trained_d(run)
    expected = classifier_accuracy(recompute_batchnorm(D, images), *held_out)
    assert head_accuracy(run, *held_out, CPU, 64, images) == expected
    assert head_accuracy(run, *held_out, CPU, 64) == classifier_accuracy(D, *held_out)
    assert HEAD_STATS_IMAGES >= 1000  # enough real images for stable moments
    with pytest.raises(GanstudyError, match="stats_images is empty"):
        classifier_accuracy(D, *held_out, stats_images=images[:0])
