"""The reference stage: train the domain classifier once; cache real-split features and their
statistics (FID needs the statistics, KID and precision/recall the features themselves).

The domain classifier's files sit at the top of the output folder (``stats_<split>.npz``,
``feats_<split>.npy``), beside the real splits' class labels (``labels_<split>.npy``: the rows
of every backbone's features, for the per-class FID of conditional generators). The
``backbone/`` folder names the backbone evaluate uses (``backbone.json``) and, for an Inception
backbone, holds its features of the same splits (``feats_<backbone>_<split>.npy``,
``stats_<backbone>_<split>.npz``), so changing ``evaluate.backbone`` reruns this stage and
evaluate never scores against the wrong space.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganstudy.config import EvaluateConfig, ReferenceConfig
from ganstudy.data.arrays import load_split, read_manifest, to_model_range
from ganstudy.device import resolve_device
from ganstudy.errors import GanstudyError
from ganstudy.io import atomic_dir, read_json, read_npy, write_json, write_npy
from ganstudy.metrics import metric_name
from ganstudy.metrics.backbones import load_backbone
from ganstudy.metrics.domain import accuracy, extract, save_classifier, train_classifier
from ganstudy.metrics.fid import frechet_distance, gaussian_stats, load_stats, save_stats
from ganstudy.metrics.inception_score import inception_score
from ganstudy.names import CLASSIFIER_NAME

BACKBONE = "domain"
BACKBONE_DIR, BACKBONE_FILE = "backbone", "backbone.json"


def stats_name(split: str, backbone: str = BACKBONE) -> str:
    """The statistics file of a split, relative to the reference folder."""
    return (
        f"stats_{split}.npz"
        if backbone == BACKBONE
        else f"{BACKBONE_DIR}/stats_{backbone}_{split}.npz"
    )


def feats_name(split: str, backbone: str = BACKBONE) -> str:
    """The features file of a split, relative to the reference folder."""
    return (
        f"feats_{split}.npy"
        if backbone == BACKBONE
        else f"{BACKBONE_DIR}/feats_{backbone}_{split}.npy"
    )


def labels_name(split: str) -> str:
    """The class labels file of a split (rows of every backbone's features), relative to the
    reference folder."""
    return f"labels_{split}.npy"


@dataclass(frozen=True)
class ReferenceSet:
    """A real split as the metrics see it."""

    split: str  # "val" or "test"
    mu: np.ndarray  # (D,) float64 feature mean
    sigma: np.ndarray  # (D, D) float64 feature covariance
    feats: np.ndarray  # (N, D) float32 features
    train_feats: np.ndarray | None = None  # (M, D) float32 training-split features (domain)
    labels: np.ndarray | None = None  # (N,) int64 classes of the feats rows; None: not cached


def load_reference(reference_dir: str | Path, split: str, backbone: str = BACKBONE) -> ReferenceSet:
    """The cached statistics and features of one real split of the reference stage's output.

    Args:
        reference_dir: the reference stage's output folder.
        split: "val" or "test".
        backbone: the feature space (``evaluate.backbone``).

    Returns:
        The split's statistics and features.

    Raises:
        GanstudyError: a file is missing or unreadable, or the two do not match.
    """
    if backbone != BACKBONE:
        marker = Path(reference_dir) / BACKBONE_DIR / BACKBONE_FILE
        made_for = read_json(marker).get("backbone") if marker.is_file() else None
        if made_for != backbone:
            raise GanstudyError(
                f"{reference_dir}: reference features are for backbone {made_for or BACKBONE!r}, "
                f"not {backbone!r}; run the reference stage with evaluate.backbone: {backbone}"
            )
    mu, sigma, n = load_stats(Path(reference_dir) / stats_name(split, backbone))
    path = Path(reference_dir) / feats_name(split, backbone)
    if not path.is_file():
        raise GanstudyError(f"{path}: reference features missing; run the reference stage")
    feats = read_npy(path)  # (N, D)
    if feats.shape != (n, len(mu)):
        raise GanstudyError(
            f"{path}: features {feats.shape} do not match the statistics ({n} x {len(mu)}); "
            "run the reference stage"
        )
    train = None
    train_path = Path(reference_dir) / feats_name("train")
    if backbone == BACKBONE and train_path.is_file():  # memorisation's training-set features
        train = read_npy(train_path)  # (N_train, D)
        if train.ndim != 2 or train.shape[1] != feats.shape[1]:
            raise GanstudyError(f"{train_path}: features {train.shape} do not match; rerun")
    return ReferenceSet(split, mu, sigma, feats, train, _labels(reference_dir, split, n))


def _labels(reference_dir: str | Path, split: str, n: int) -> np.ndarray | None:
    """The split's (n,) class labels, or None from a reference folder written before they were
    cached (only per-class FID needs them, and it says so)."""
    path = Path(reference_dir) / labels_name(split)
    if not path.is_file():
        return None
    labels = read_npy(path)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise GanstudyError(
            f"{path}: labels {labels.shape} {labels.dtype} do not match the {n} features; "
            "run the reference stage"
        )
    return labels.astype(np.int64)


def build_reference(
    processed_dir: str | Path,
    out_dir: str | Path,
    metrics_path: str | Path,
    cfg: ReferenceConfig,
    evaluate: EvaluateConfig | None = None,
) -> dict:
    """Write the classifier, ``stats_{val,test}.npz``, ``feats_{val,test,train}.npy`` (float32),
    ``labels_{val,test}.npy`` (int64) and ``backbone/`` (evaluate's backbone; its features when
    it is an Inception one) into ``out_dir``, and the real-data metrics to ``metrics_path``;
    return those metrics."""
    backbone = evaluate.backbone if evaluate is not None else BACKBONE
    manifest = read_manifest(processed_dir)
    device = resolve_device(cfg.device)
    train, val, test = (load_split(processed_dir, s) for s in ("train", "val", "test"))
    model = train_classifier(train, cfg, len(manifest["classes"]), device)
    feats_val, probs_val = extract(model, to_model_range(val[0]))
    feats_test, probs_test = extract(model, to_model_range(test[0]))
    feats_train, _ = extract(model, to_model_range(train[0]))  # memorisation's nearest neighbours
    is_mean, is_std = inception_score(probs_test)
    mu_v, s_v = gaussian_stats(feats_val)
    mu_t, s_t = gaussian_stats(feats_test)
    metrics = {
        "classifier_val_accuracy": accuracy(probs_val, val[1]),
        "classifier_test_accuracy": accuracy(probs_test, test[1]),
        # Real-vs-real floor: what FID gives two real samples at these sizes.
        f"{metric_name('fid', BACKBONE, len(val[1]), 'test')}_real_val": frechet_distance(
            mu_v, s_v, mu_t, s_t
        ),
        f"{metric_name('is', BACKBONE, len(test[1]))}_real_test_mean": is_mean,
        f"{metric_name('is', BACKBONE, len(test[1]))}_real_test_std": is_std,
        "feature_dim": cfg.feature_dim,
    }
    extra: dict[str, np.ndarray] = {}
    if backbone != BACKBONE:  # features of the same splits in evaluate's Inception space
        # Always fp32: evaluate.feature_precision concerns generated images only.
        net = load_backbone(backbone, evaluate, resolve_device(evaluate.device))
        for split, images in (("val", val[0]), ("test", test[0])):
            extra[split] = net.features(to_model_range(images), evaluate.batch_size)
        floor = frechet_distance(*gaussian_stats(extra["val"]), *gaussian_stats(extra["test"]))
        metrics[f"{metric_name('fid', backbone, len(val[1]), 'test')}_real_val"] = floor
    with atomic_dir(out_dir) as tmp:
        save_classifier(
            tmp / CLASSIFIER_NAME, model.cpu(), manifest["image_shape"], manifest["classes"]
        )
        save_stats(tmp / stats_name("val"), feats_val)
        save_stats(tmp / stats_name("test"), feats_test)
        write_npy(tmp / feats_name("val"), feats_val.astype(np.float32))
        write_npy(tmp / feats_name("test"), feats_test.astype(np.float32))
        write_npy(tmp / feats_name("train"), feats_train.astype(np.float32))
        write_npy(tmp / labels_name("val"), val[1].astype(np.int64))
        write_npy(tmp / labels_name("test"), test[1].astype(np.int64))
        (tmp / BACKBONE_DIR).mkdir()
        write_json(tmp / BACKBONE_DIR / BACKBONE_FILE, {"backbone": backbone})
        for split, feats in extra.items():
            save_stats(tmp / stats_name(split, backbone), feats)
            write_npy(tmp / feats_name(split, backbone), feats.astype(np.float32))
    write_json(metrics_path, metrics)
    return metrics
