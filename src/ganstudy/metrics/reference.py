"""The reference stage: train the domain classifier once; cache real-split feature statistics."""

from pathlib import Path

from ganstudy.config import ReferenceConfig
from ganstudy.data.arrays import load_split, read_manifest, to_model_range
from ganstudy.io import atomic_dir, write_json
from ganstudy.metrics import metric_name
from ganstudy.metrics.domain import accuracy, extract, save_classifier, train_classifier
from ganstudy.metrics.fid import frechet_distance, gaussian_stats, save_stats
from ganstudy.metrics.inception_score import inception_score
from ganstudy.training.loop import resolve_device

BACKBONE = "domain"
CLASSIFIER_NAME = "classifier.pt"
METRICS_NAME = "reference.json"


def stats_name(split: str) -> str:
    return f"stats_{split}.npz"


def build_reference(processed_dir: str | Path, out_dir: str | Path, cfg: ReferenceConfig) -> dict:
    """Write the classifier, ``stats_{val,test}.npz`` and ``reference.json``; return its metrics."""
    manifest = read_manifest(processed_dir)
    device = resolve_device(cfg.device)
    train, val, test = (load_split(processed_dir, s) for s in ("train", "val", "test"))
    model = train_classifier(train, cfg, len(manifest["classes"]), device)
    feats_val, probs_val = extract(model, to_model_range(val[0]))
    feats_test, probs_test = extract(model, to_model_range(test[0]))
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
    with atomic_dir(out_dir) as tmp:
        save_classifier(
            tmp / CLASSIFIER_NAME, model.cpu(), manifest["image_shape"], manifest["classes"]
        )
        save_stats(tmp / stats_name("val"), feats_val)
        save_stats(tmp / stats_name("test"), feats_test)
        write_json(tmp / METRICS_NAME, metrics)
    return metrics
