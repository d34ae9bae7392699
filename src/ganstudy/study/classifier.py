"""The downstream classifier of the augmentation study and its test-set metrics.

Frid-Adar et al. 2018 (arXiv 1801.02385, 1803.01229; GANs in Action ch. 11.1) train one small CNN
on real, classically augmented, or classic + GAN-made lesions and compare sensitivity and
specificity. Every arm here trains this same network with the same settings and the same number
of optimizer steps; only the training set changes, and the step kept is chosen on the validation
split alone.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import nn
from tqdm import tqdm

from ganstudy.device import make_deterministic, resolve_device
from ganstudy.errors import GanstudyError
from ganstudy.metrics.domain import extract

MIN_SIZE = 8  # three 2x2 max-pools need at least 8 pixels per side
EVAL_BATCH = 500  # images per forward pass when scoring (memory only; results do not depend on it)


class StudyCNN(nn.Module):
    """Three conv blocks and two fully connected layers, the shape of Frid-Adar et al.'s
    classifier (its widths and 3x3 kernels are our choice; the paper's exact sizes are not used).

    Layers (input (B, C, H, W) in [-1, 1], H and W >= 8; w = ``base``):
      conv 3x3 C->w, BatchNorm, ReLU, max-pool 2     # (B, w, H/2, W/2)
      conv 3x3 w->2w, BatchNorm, ReLU, max-pool 2    # (B, 2w, H/4, W/4)
      conv 3x3 2w->4w, BatchNorm, ReLU, max-pool 2   # (B, 4w, H/8, W/8), sizes rounded down
      flatten, FC -> hidden                          # (B, hidden): ``features``
      ReLU, dropout, FC hidden -> K                  # (B, K) logits: ``head``
    Flattening (not adaptive pooling, whose CUDA backward is non-deterministic) ties the network
    to one image size. The ``features``/``head`` split is the domain classifier's, so
    ``metrics.domain.extract`` works on it.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],  # (C, H, W)
        num_classes: int,
        base: int = 32,  # filters of the first conv; doubled by each later one
        hidden: int = 128,  # units of the first fully connected layer
        dropout: float = 0.5,  # before the last layer, training only
    ) -> None:
        super().__init__()
        channels, height, width = image_shape
        if min(height, width) < MIN_SIZE:
            raise GanstudyError(f"images are {height}x{width}; need >= {MIN_SIZE} px a side")
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        blocks: list[nn.Module] = []
        c_in = channels
        for c_out in (base, 2 * base, 4 * base):
            blocks += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        flat = 4 * base * (height // 8) * (width // 8)
        self.body = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(flat, hidden))  # (B, hidden)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, K) logits


@dataclass(frozen=True)
class EvalRecord:
    step: int  # optimizer steps taken when the validation split was scored
    train_loss: float  # mean cross-entropy over the steps since the last record (training mode)
    val_loss: float  # mean cross-entropy on the validation split (eval mode)
    val_accuracy: float


@dataclass
class ClassifierFit:
    model: StudyCNN  # the best record's weights, in eval mode
    best_step: int  # the step whose weights ``model`` holds
    history: list[EvalRecord]
    steps: int  # optimizer steps taken (counted, not planned): the same for every arm


def train_classifier(
    train_x: torch.Tensor,
    train_y: torch.Tensor | np.ndarray,
    val_x: torch.Tensor,
    val_y: torch.Tensor | np.ndarray,
    num_classes: int,
    *,
    steps: int,
    eval_every: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str | torch.device = "cpu",
) -> ClassifierFit:
    """Train ``StudyCNN`` with Adam for exactly ``steps`` optimizer steps and keep the weights
    with the best validation accuracy, scored every ``eval_every`` steps and after the last.

    A fixed step budget, not a number of epochs: with epochs, a larger training set gets more
    updates, and an arm of the augmentation study could win on steps alone. Every step takes
    ``batch_size`` images from a stream of seeded reshuffles of the training set, so every arm
    also sees the same number of images.

    Args:
        train_x, val_x: (N, C, H, W) float images in [-1, 1] (``data.arrays.to_model_range``).
        train_y, val_y: (N,) integer labels in [0, num_classes).
        num_classes: K, given explicitly because a tiny training set may miss a class.
        steps, eval_every: optimizer steps, and steps between validation scores.
        batch_size, lr: images per step, Adam step size.
        seed: weights, dropout and batch order; same seed and device give the same weights.
        device: "cpu", "cuda", "cuda:N" or "auto".

    Returns:
        The best record's model (ties in accuracy go to the lower validation loss, then the
        earlier step) with the history of validation scores. The test split is never seen here.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    train_y, val_y = _labels(train_y, num_classes, "train"), _labels(val_y, num_classes, "val")
    _check_images(train_x, train_y, "train")
    _check_images(val_x, val_y, "val")
    if val_x.shape[1:] != train_x.shape[1:]:
        raise GanstudyError(
            f"val images are {tuple(val_x.shape[1:])}, train images {tuple(train_x.shape[1:])}"
        )
    if len(train_x) < 2:
        raise GanstudyError("the study classifier needs at least 2 training images")
    if min(steps, eval_every, batch_size) < 1 or not lr > 0:
        raise GanstudyError(
            f"steps, eval_every, batch_size and lr must be positive: "
            f"{steps}, {eval_every}, {batch_size}, {lr}"
        )
    make_deterministic(device)
    torch.manual_seed(seed)  # initial weights and dropout masks
    x, y = _standard(train_x.float().to(device)), train_y.to(device)
    vx, vy = _standard(val_x.float().to(device)), val_y.to(device)
    model = StudyCNN(tuple(x.shape[1:]), num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = _batches(len(x), batch_size, torch.Generator(device=device).manual_seed(seed))
    history: list[EvalRecord] = []
    best_key, best_step, best_state = (-math.inf, -math.inf), 0, {}
    total, since = torch.zeros((), device=device), 0  # summed on the device: no sync per step
    taken = 0
    model.train()
    with tqdm(range(1, steps + 1), desc="study classifier", unit="step", mininterval=2) as bar:
        for step in bar:
            idx = next(batches)  # (batch_size,)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            taken += 1
            total, since = total + loss.detach(), since + 1
            if step % eval_every and step != steps:
                continue
            val_loss, val_acc = _evaluate(model, vx, vy)
            model.train()
            history.append(EvalRecord(step, total.item() / since, val_loss, val_acc))
            total, since = torch.zeros((), device=device), 0
            if (val_acc, -val_loss) > best_key:  # strict: exact ties keep the earlier step
                best_key, best_step = (val_acc, -val_loss), step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.set_postfix(val_acc=f"{val_acc:.3f}", best=best_step)
    model.load_state_dict(best_state)
    return ClassifierFit(model.eval(), best_step, history, taken)


def _standard(x: torch.Tensor) -> torch.Tensor:
    """``x`` with NCHW strides. With one channel, images from NHWC arrays and images
    concatenated with generated ones hold the same values under different strides, which
    convolutions take for different memory formats and round differently: equal training sets
    must give equal fits."""
    return torch.empty_like(x, memory_format=torch.contiguous_format).copy_(x)


def _batches(n: int, batch_size: int, order: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless (batch_size,) index batches: consecutive slices of a stream of seeded
    permutations of range(n), a batch running on into the next permutation when one ends."""
    stream = torch.empty(0, dtype=torch.long, device=order.device)
    while True:
        while len(stream) < batch_size:
            stream = torch.cat([stream, torch.randperm(n, generator=order, device=order.device)])
        yield stream[:batch_size]
        stream = stream[batch_size:]


def _labels(y: torch.Tensor | np.ndarray, num_classes: int, name: str) -> torch.Tensor:
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise GanstudyError(f"{name} labels must be a 1-D integer array, got {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise GanstudyError(f"{name} labels must lie in [0, {num_classes})")
    return y.long()


def _check_images(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise GanstudyError(
            f"{name} images must be a float (N, C, H, W) tensor in [-1, 1] (to_model_range)"
        )
    if len(x) != len(y) or len(x) == 0:
        raise GanstudyError(f"{name}: {len(x)} images but {len(y)} labels (need >= 1 of each)")


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode."""
    model.eval()
    logits = torch.cat([model(chunk) for chunk in x.split(EVAL_BATCH)])  # (N, K)
    loss = F.cross_entropy(logits.double(), y, reduction="mean").item()
    return loss, (logits.argmax(1) == y).double().mean().item()


def predict_proba(model: StudyCNN, images: torch.Tensor) -> np.ndarray:
    """Softmax probabilities (N, K), float64, of (N, C, H, W) images in [-1, 1]."""
    if images.ndim != 4 or tuple(images.shape[1:]) != model.image_shape:
        raise GanstudyError(
            f"images are {tuple(images.shape[1:])}; the classifier takes {model.image_shape}"
        )
    model.eval()
    return extract(model, images, EVAL_BATCH)[1]


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    return np.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, one-vs-rest sensitivity, specificity and ROC AUC per class, and their macro means.

    Args:
        probs: (N, K) class scores (softmax probabilities or any monotone score per class).
        labels: (N,) true classes in [0, K).

    Returns:
        ``accuracy``; for each class k ``sensitivity_class{k}`` (recall, TP / (TP + FN)),
        ``specificity_class{k}`` (TN / (TN + FP), class k against the rest) and ``auc_class{k}``
        (one-vs-rest ROC AUC, ties counted half); ``sensitivity_macro``, ``specificity_macro``
        and ``auc_macro`` are their unweighted means over classes. A quantity with no positives
        (or no negatives) for a class is NaN and left out of the macro mean, which is NaN when
        every class lacks it. Sensitivity and specificity use the arg-max prediction: Frid-Adar
        et al. report sensitivity and specificity of the predicted class.
    """
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise GanstudyError(f"probs must be (N, K) with K >= 2, got {probs.shape}")
    if labels.shape != (len(probs),) or not np.issubdtype(labels.dtype, np.integer):
        raise GanstudyError(f"labels must be ({len(probs)},) integers, got {labels.shape}")
    k = probs.shape[1]
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= k:
        raise GanstudyError(f"labels must be non-empty and lie in [0, {k})")
    if not np.isfinite(probs).all():
        raise GanstudyError("probs contain NaN or infinite values")
    cm = confusion_matrix(probs.argmax(axis=1), labels, k)
    tp = np.diag(cm).astype(np.float64)
    positives, predicted = cm.sum(axis=1), cm.sum(axis=0)
    negatives = len(labels) - positives
    tn = negatives - (predicted - tp)
    out = {"accuracy": float(tp.sum() / len(labels))}
    per_class = {
        "sensitivity": _ratio(tp, positives),
        "specificity": _ratio(tn, negatives),
        "auc": [_auc(probs[:, c], labels == c) for c in range(k)],
    }
    for name, values in per_class.items():
        out.update({f"{name}_class{c}": float(v) for c, v in enumerate(values)})
        finite = [v for v in values if not math.isnan(v)]
        out[f"{name}_macro"] = float(np.mean(finite)) if finite else math.nan
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float]:
    return [float(n / d) if d > 0 else math.nan for n, d in zip(num, den, strict=True)]


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic: P(score of a positive > score of a negative)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)  # average ranks: a tie counts 1/2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
