"""Classic augmentation (step 1 of Frid-Adar et al. 2018): rotation, flips, translation, scaling."""

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganstudy._torchvision import ensure_torchvision_imports
from ganstudy.config import AugmentConfig
from ganstudy.data.arrays import Split, load_split, read_manifest, save_split, write_manifest
from ganstudy.io import atomic_dir

ensure_torchvision_imports()  # before torchvision: its C++ ops do not load on the CPU torch
from torchvision.transforms import v2  # noqa: E402


def classic_transform(cfg: AugmentConfig) -> v2.Transform:
    return v2.Compose(
        [
            v2.RandomAffine(
                degrees=cfg.rotation_deg, translate=(cfg.translate, cfg.translate), scale=cfg.scale
            ),
            v2.RandomHorizontalFlip(cfg.hflip),
            v2.RandomVerticalFlip(cfg.vflip),
        ]
    )


def augment_split(split: Split, cfg: AugmentConfig) -> Split:
    """Originals followed by ``cfg.copies`` independently augmented copies of each image."""
    x, y = split
    transform = classic_transform(cfg)
    torch.manual_seed(cfg.seed)  # v2 draws its parameters from torch's global generator
    images = torch.from_numpy(x).permute(0, 3, 1, 2)  # (N, C, H, W) uint8
    copies = [x]
    for copy in range(cfg.copies):
        out = torch.empty_like(images)
        for i in tqdm(
            range(len(images)),
            desc=f"augment copy {copy + 1}/{cfg.copies}",
            leave=False,
            mininterval=2,
        ):
            out[i] = transform(images[i])  # a fresh transform per image
        copies.append(out.permute(0, 2, 3, 1).numpy())
    return np.concatenate(copies), np.tile(y, cfg.copies + 1)


def augment(processed_dir: str | Path, out_dir: str | Path, cfg: AugmentConfig) -> Path:
    """Write the augmented training split and its manifest into ``out_dir``."""
    manifest = read_manifest(processed_dir)
    train = augment_split(load_split(processed_dir, "train"), cfg)
    with atomic_dir(out_dir) as tmp:
        save_split(tmp / "train.npz", train)
        write_manifest(
            tmp,
            manifest["dataset"],
            manifest["classes"],
            {"train": train},
            extra={"augment": cfg.model_dump(), "source": str(processed_dir)},
        )
    return Path(out_dir)
