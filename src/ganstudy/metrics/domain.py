"""The domain-classifier backbone: a small CNN trained on the real training split.

Its penultimate layer is the FID feature space and its softmax gives the Inception Score for
MNIST-like and medical images, where ImageNet Inception features mean little.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ganstudy.config import ReferenceConfig
from ganstudy.data.arrays import Split, to_model_range
from ganstudy.errors import GanstudyError
from ganstudy.io import REBUILD, save_torch


class DomainClassifier(nn.Module):
    def __init__(self, channels: int, num_classes: int, feature_dim: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
            nn.AdaptiveAvgPool2d(4),  # (B, 64, 4, 4) whatever the input size
            nn.Flatten(),
            nn.Linear(64 * 16, feature_dim),  # (B, feature_dim): the FID features
        )
        # The ReLU sits after the features: pre-activations have no dead (constant) units, so
        # their covariance stays full rank.
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, K) logits


def train_classifier(
    train: Split, cfg: ReferenceConfig, num_classes: int, device: torch.device
) -> DomainClassifier:
    torch.manual_seed(cfg.seed)
    x, y = to_model_range(train[0]).to(device), torch.from_numpy(train[1]).to(device)
    model = DomainClassifier(x.shape[1], num_classes, cfg.feature_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    order = torch.Generator(device=device).manual_seed(cfg.seed)
    model.train()
    steps = cfg.epochs * ((len(x) + cfg.batch_size - 1) // cfg.batch_size)
    with tqdm(total=steps, desc="domain classifier", unit="batch", mininterval=2) as bar:
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(x), generator=order, device=device).split(cfg.batch_size):
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
    return model.eval()


@torch.no_grad()
def extract(
    model: DomainClassifier, images: torch.Tensor, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) and class probabilities (N, K) of (N, C, H, W) images in [-1, 1]."""
    device = next(model.parameters()).device
    feats, probs = [], []
    for chunk in images.split(batch_size):
        f = model.features(chunk.to(device))
        feats.append(f.double().cpu())
        probs.append(F.softmax(model.head(f), dim=1).double().cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


def save_classifier(
    path: Path, model: DomainClassifier, image_shape: list[int], classes: list[str]
) -> None:
    save_torch(
        path,
        {
            "state": model.state_dict(),
            "channels": model.body[0].in_channels,
            "num_classes": model.head[1].out_features,
            "feature_dim": model.head[1].in_features,
            "image_shape": image_shape,
            "classes": classes,
        },
    )


def load_classifier(path: str | Path, device: torch.device) -> DomainClassifier:
    path = Path(path)
    if not path.is_file():
        raise GanstudyError(f"{path}: domain classifier missing; run the reference stage")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model = DomainClassifier(state["channels"], state["num_classes"], state["feature_dim"])
        model.load_state_dict(state["state"])
    except Exception as err:  # noqa: BLE001 (corrupt file: many exception types)
        raise GanstudyError(
            f"{path}: corrupt or unreadable domain classifier ({type(err).__name__}); {REBUILD}"
        ) from None
    return model.to(device).eval()
