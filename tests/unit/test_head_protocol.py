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


# The validation curve a study's length is chosen from, and the labelled images' origin.


def test_validation_curve_is_logged_and_leaves_training_exactly_as_without_it(tmp_path):
    from ganstudy.config import TrainConfig
    from ganstudy.io import write_npz
    from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from ganstudy.training.run import HEAD_VAL_METRIC, head_validation
    from tests.unit.test_sgan import variant as sgan_variant

    images, labels = blocks(64, seed=0)
    val = blocks(40, seed=2)
    pixels = ((val[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    write_npz(tmp_path / "val.npz", images=pixels.numpy(), labels=val[1].numpy())
    validate = head_validation(tmp_path, images)
    six = TrainConfig(**(cfg(6).model_dump() | {"log_every": 3, "validate_every": 2}))
    plain = train_gan(images, BLOCKS, "s", sgan_variant(), six, 0, tmp_path / "a", labels=labels)
    seen = train_gan(
        images,
        BLOCKS,
        "s",
        sgan_variant(),
        six,
        0,
        tmp_path / "b",
        labels=labels,
        validate=validate,
    )
    curve = seen.history.dropna(subset=[HEAD_VAL_METRIC])
    assert curve["step"].tolist() == [2, 4, 6]  # every validate_every, off the log_every grid
    assert curve[HEAD_VAL_METRIC].between(0, 1).all()
    assert HEAD_VAL_METRIC not in plain.history
    a, b = (load_checkpoint(tmp_path / r / CHECKPOINT_NAME) for r in "ab")
    assert all(torch.equal(a["D"][k], b["D"][k]) for k in a["D"])  # D and its statistics
    assert torch.equal(a["rng_cpu"], b["rng_cpu"])  # validation drew nothing
    last = classifier_accuracy(trained_d(tmp_path / "b"), *val, stats_images=images)
    assert curve[HEAD_VAL_METRIC].iloc[-1] == pytest.approx(last)


def test_labelled_images_are_distinct_originals_random_pick_differs_by_seed():
    from ganstudy.training.loop import labelled_subset

    labels = torch.arange(40) % 4  # 10 originals a class, then 30 augmented copies
    for pick in ("balanced", "random", "first"):
        chosen = labelled_subset(labels, 8, seed=1, pick=pick, originals=10)
        assert len(set(chosen.tolist())) == 8 and chosen.max() < 10
    a, b = (labelled_subset(labels, 8, s, "random", originals=40) for s in (0, 1))
    assert not torch.equal(a, b) and torch.equal(a, labelled_subset(labels, 8, 0, "random", 40))
    with pytest.raises(GanstudyError, match="12 labels asked, the training split has 10"):
        labelled_subset(labels, 12, 0, "random", originals=10)
