import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ganstudy.errors import GanstudyError
from ganstudy.study import (
    StudyCNN,
    classification_metrics,
    confusion_matrix,
    predict_proba,
    train_classifier,
)

SETTINGS = {"steps": 20, "eval_every": 4, "batch_size": 16, "lr": 1e-3, "seed": 0, "device": "cpu"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions gain nothing from threads, and spinning ones crawl on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blocks(n: int, seed: int, size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, size, size) images in [-1, 1]: class c (of 3) is a bright block in the top-left,
    centre or bottom-right third of the image, under N(0, 0.5^2) pixel noise; classes in turn."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.full((n, 1, size, size), -1.0)
    side = size // 3
    for i, c in enumerate(labels.tolist()):
        images[i, 0, c * side : (c + 1) * side, c * side : (c + 1) * side] = 1.0
    noise = 0.5 * torch.randn(images.shape, generator=gen)
    return (images + noise).clamp(-1, 1), labels


def one_hot(labels: np.ndarray, k: int = 3) -> np.ndarray:
    return np.eye(k)[labels]


# Metrics.


def test_metrics_match_a_hand_computed_three_class_confusion():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 2])
    # Rows = truth: class 0 -> [3, 1, 0], class 1 -> [0, 2, 1], class 2 -> [1, 0, 2].
    assert confusion_matrix(predicted, labels, 3).tolist() == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    probs = 0.1 + 0.7 * one_hot(predicted)  # 0.8 on the prediction, 0.1 elsewhere
    m = classification_metrics(probs, labels)
    assert m["accuracy"] == pytest.approx(7 / 10)
    sens, spec = [3 / 4, 2 / 3, 2 / 3], [5 / 6, 6 / 7, 6 / 7]  # TN / (TN + FP), one class vs rest
    for c in range(3):
        assert m[f"sensitivity_class{c}"] == pytest.approx(sens[c])
        assert m[f"specificity_class{c}"] == pytest.approx(spec[c])
    assert m["sensitivity_macro"] == pytest.approx(np.mean(sens))
    assert m["specificity_macro"] == pytest.approx(np.mean(spec))
    # Class 0: 4 positives (scores 0.8 x3, 0.1), 6 negatives (0.8, 0.1 x5); 24 pairs:
    # 3 x 5 wins, 3 x 1 ties, 1 x 5 ties -> (15 + 1.5 + 2.5) / 24.
    assert m["auc_class0"] == pytest.approx(19 / 24)
    for c in range(3):
        assert m[f"auc_class{c}"] == pytest.approx(roc_auc_score(labels == c, probs[:, c]))


def test_auc_of_perfect_reversed_and_constant_scores():
    labels = np.array([0, 1, 2, 2, 1, 0, 0])
    assert classification_metrics(one_hot(labels), labels)["auc_macro"] == 1.0
    assert classification_metrics(1.0 - one_hot(labels), labels)["auc_macro"] == 0.0
    assert classification_metrics(np.full((7, 3), 1 / 3), labels)["auc_macro"] == 0.5


def test_macro_auc_agrees_with_sklearn_on_random_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert classification_metrics(probs, labels)["auc_macro"] == pytest.approx(expected)


def test_a_class_absent_from_the_labels_is_nan_and_left_out_of_macro_means():
    labels = np.array([0, 0, 1, 1])
    m = classification_metrics(one_hot(np.array([0, 1, 1, 1])), labels)
    assert math.isnan(m["sensitivity_class2"]) and math.isnan(m["auc_class2"])
    assert m["specificity_class2"] == 1.0  # nothing predicted as class 2
    assert m["sensitivity_macro"] == pytest.approx((1 / 2 + 1) / 2)


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        (np.ones(4), np.zeros(4, int), "must be \\(N, K\\)"),
        (np.ones((4, 3)), np.zeros(3, int), "labels must be"),
        (np.ones((4, 3)), np.array([0, 1, 2, 3]), "lie in"),
        (np.ones((4, 3)), np.zeros(4), "integers"),
        (np.full((4, 3), np.nan), np.zeros(4, int), "NaN"),
    ],
)
def test_bad_metric_inputs_are_clear_errors(probs, labels, match):
    with pytest.raises(GanstudyError, match=match):
        classification_metrics(probs, labels)


# Classifier.


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 28, 28), (1, 64, 64), (3, 32, 20)])
def test_network_shapes_from_8_pixels(shape):
    net = StudyCNN(shape, 5).eval()
    assert net(torch.zeros(2, *shape)).shape == (2, 5)
    assert net.features(torch.zeros(2, *shape)).shape == (2, 128)
    with pytest.raises(GanstudyError, match="classifier takes"):
        predict_proba(net, torch.zeros(2, shape[0], shape[1] + 8, shape[2]))
    with pytest.raises(GanstudyError, match="need >= 8 px"):
        StudyCNN((1, 7, 28), 5)


def test_learns_a_separable_three_class_problem():
    train, val, test = blocks(60, 1), blocks(30, 2), blocks(150, 3)
    fit = train_classifier(*train, *val, 3, **SETTINGS)
    m = classification_metrics(predict_proba(fit.model, test[0]), test[1].numpy())
    assert m["accuracy"] > 0.9
    assert [r.step for r in fit.history] == [4, 8, 12, 16, 20] and not fit.model.training
    assert fit.steps == 20


def test_same_seed_same_weights_other_seed_other_weights():
    train, val = blocks(30, 1), blocks(15, 2)
    settings = {**SETTINGS, "steps": 4, "eval_every": 2}
    runs = [train_classifier(*train, *val, 3, **{**settings, "seed": s}) for s in (7, 7, 8)]
    states = [r.model.state_dict() for r in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert runs[0].history == runs[1].history
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_keeps_the_best_validation_step_not_the_last():
    # A far too large step size makes validation accuracy jump up and down between scores.
    train, val = blocks(30, 1), blocks(30, 2)
    fit = train_classifier(*train, *val, 3, **{**SETTINGS, "steps": 12, "eval_every": 2, "lr": 0.3})
    accs = [r.val_accuracy for r in fit.history]
    assert accs[-1] < max(accs), "this run must end below its best step to test selection"
    # Best accuracy; among equal accuracies the lower validation loss, then the earlier step.
    assert fit.best_step == max(fit.history, key=lambda r: (r.val_accuracy, -r.val_loss)).step
    # The returned weights are the best step's: rescoring them gives its validation accuracy.
    val_acc = classification_metrics(predict_proba(fit.model, val[0]), val[1].numpy())["accuracy"]
    assert val_acc == pytest.approx(max(accs))


def test_tiny_training_sets_train_without_errors():
    x, y = blocks(30, 1)
    fit = train_classifier(
        x, y, *blocks(9, 2), 3, **{**SETTINGS, "batch_size": 64, "steps": 2, "eval_every": 1}
    )
    assert len(fit.history) == 2
    # The smallest images, and a batch size the training set does not divide.
    x, y = blocks(31, 1, size=8)
    train_classifier(x, y, *blocks(6, 2, size=8), 3, **{**SETTINGS, "batch_size": 10, "steps": 4})


def test_every_training_set_size_gets_the_same_optimizer_steps_and_images(monkeypatch):
    """The step budget (issue 13): 30 or 300 training images, the optimizer steps the same
    number of times (counted at Adam.step, not read off the loop) on batches of one size."""
    counted, sizes = [], []
    step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        counted[-1] += 1
        return step(self, *args, **kwargs)

    original_forward = StudyCNN.forward

    def recording_forward(self, x):
        if self.training:
            sizes.append(len(x))
        return original_forward(self, x)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    monkeypatch.setattr(StudyCNN, "forward", recording_forward)
    val = blocks(9, 2)
    for n in (30, 300):
        counted.append(0)
        fit = train_classifier(*blocks(n, 1), *val, 3, **{**SETTINGS, "steps": 7, "eval_every": 3})
        assert fit.steps == 7 and [r.step for r in fit.history] == [3, 6, 7]
    assert counted == [7, 7]
    assert sizes == [16] * 14  # every step a full batch, in both runs


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"train_y": torch.tensor([0, 1, 3] * 10)}, "lie in \\[0, 3\\)"),
        ({"train_y": torch.zeros(29, dtype=torch.long)}, "30 images but 29 labels"),
        ({"train_x": torch.zeros(30, 1, 7, 7), "val_x": torch.zeros(9, 1, 7, 7)}, "need >= 8 px"),
        ({"val_y": torch.zeros(9)}, "integer"),
        ({"train_x": torch.zeros(30, 28, 28, 1, dtype=torch.uint8)}, "float \\(N, C, H, W\\)"),
        ({"val_x": torch.zeros(9, 1, 28, 27)}, "val images are \\(1, 28, 27\\)"),
        ({"steps": 0}, "must be positive"),
        ({"eval_every": 0}, "must be positive"),
    ],
)
def test_bad_classifier_inputs_are_clear_errors(change, match):
    (train_x, train_y), (val_x, val_y) = blocks(30, 1), blocks(9, 2)
    args = {"train_x": train_x, "train_y": train_y, "val_x": val_x, "val_y": val_y, **SETTINGS}
    args.update(change)
    with pytest.raises(GanstudyError, match=match):
        train_classifier(num_classes=3, **args)
