"""The metrics the evaluate stage computes: name -> protocol line and function.

Every entry turns the generated features (N, D), their class probabilities (N, K), their
classes (N,) (conditional generators only) and the real reference split into named values; the
names carry the protocol (``<kind>_<backbone>_<n>[_<split>]``, see ``metric_name``; per-class
values add ``_class<k>`` and ``_classmean``). ``ganstudy metrics`` lists them. Each entry is
registered as ``METRICS.add(Metric("name", protocol, compute))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ganstudy.config import EvaluateConfig
from ganstudy.errors import GanstudyError
from ganstudy.metrics import metric_name
from ganstudy.metrics.fid import frechet_distance, gaussian_stats, per_class_frechet_distance
from ganstudy.metrics.inception_score import inception_score
from ganstudy.metrics.kid import kernel_inception_distance
from ganstudy.metrics.memorisation import CLOSE_PERCENTILE, memorisation
from ganstudy.metrics.precision_recall import precision_recall
from ganstudy.registry import Registry

if TYPE_CHECKING:  # the reference module pulls in torch; listing metrics does not need it
    from ganstudy.metrics.reference import ReferenceSet

KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 0  # Binkowski et al. 2018's choices
PR_K = 3  # Kynkäänniemi et al. 2019's neighbourhood size


class MetricFn(Protocol):
    def __call__(
        self,
        feats: np.ndarray,  # (N, D) generated features
        probs: np.ndarray | None,  # (N, K) their class probabilities; None: backbone has none
        ref: ReferenceSet,
        cfg: EvaluateConfig,
        labels: np.ndarray | None = None,  # (N,) classes they were generated for; None: no G(z, y)
    ) -> dict[str, float]: ...


@dataclass(frozen=True)
class Metric:
    name: str  # the entry's name (``ganstudy metrics <name>``); values carry their own names
    protocol: str  # one line: what is computed, how, and from which paper
    compute: MetricFn  # (feats (N, D), probs (N, K) or None, reference, cfg, labels (N,) or None)


METRICS: Registry[Metric] = Registry("metric")


def _name(kind: str, feats: np.ndarray, cfg: EvaluateConfig, split: str | None) -> str:
    return metric_name(kind, cfg.backbone, len(feats), split)


def _fid(
    feats: np.ndarray,
    probs: np.ndarray | None,
    ref: ReferenceSet,
    cfg: EvaluateConfig,
    labels: np.ndarray | None = None,
) -> dict:
    value = frechet_distance(*gaussian_stats(feats), ref.mu, ref.sigma)
    return {_name("fid", feats, cfg, ref.split): value}


def _is(
    feats: np.ndarray,
    probs: np.ndarray | None,
    ref: ReferenceSet,
    cfg: EvaluateConfig,
    labels: np.ndarray | None = None,
) -> dict:
    if probs is None:  # a backbone without a classifier (inception-ts, inception without fc)
        return {}
    mean, std = inception_score(probs, cfg.is_splits)
    name = _name("is", feats, cfg, None)  # no reference split: IS sees generated images only
    return {f"{name}_mean": mean, f"{name}_std": std}


def _kid(
    feats: np.ndarray,
    probs: np.ndarray | None,
    ref: ReferenceSet,
    cfg: EvaluateConfig,
    labels: np.ndarray | None = None,
) -> dict:
    mean, std = kernel_inception_distance(feats, ref.feats, KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED)
    name = _name("kid", feats, cfg, ref.split)
    return {f"{name}_mean": mean, f"{name}_std": std}


def _pr(
    feats: np.ndarray,
    probs: np.ndarray | None,
    ref: ReferenceSet,
    cfg: EvaluateConfig,
    labels: np.ndarray | None = None,
) -> dict:
    precision, recall = precision_recall(ref.feats, feats, PR_K)
    return {
        _name("precision", feats, cfg, ref.split): precision,
        _name("recall", feats, cfg, ref.split): recall,
    }


METRICS.add(
    Metric(
        "fid",
        "Frechet distance of Gaussians fitted to generated and real-split features, float64, "
        "exact eigh trace (= pytorch-fid's value) (Heusel et al. 2017); Inception backbones: "
        "grey->3 channels, bilinear resize to 299x299 (torch interpolate, align_corners=False), "
        "[-1,1] input, 2048-d pool3",
        _fid,
    ),
)


def _fid_per_class(
    feats: np.ndarray,
    probs: np.ndarray | None,
    ref: ReferenceSet,
    cfg: EvaluateConfig,
    labels: np.ndarray | None = None,
) -> dict:
    if labels is None:  # unconditional generator: its images have no intended class
        return {}
    if ref.labels is None:
        raise GanstudyError(
            f"per-class FID: the reference folder has no labels of the {ref.split} split "
            "(written by an older version); run the reference stage again"
        )
    try:
        per_class = per_class_frechet_distance(feats, labels, ref.feats, ref.labels)
    except GanstudyError as err:  # name the two sets: the pure function cannot
        raise GanstudyError(f"{err} (generated images, real {ref.split} split)") from None
    name = _name("fid", feats, cfg, ref.split)
    values = {f"{name}_class{k}": value for k, value in per_class.items()}
    values[f"{name}_classmean"] = float(np.mean(list(per_class.values())))
    return values


METRICS.add(
    Metric(
        "fid_per_class",
        "conditional generators only: for each class k, FID as in fid between the generated "
        "images of class k (n/K of the n, balanced) and the real-split images of class k "
        "(<fid name>_class<k>), and their unweighted mean (<fid name>_classmean: the intra-FID "
        "of Miyato & Koyama 2018); "
        "classes smaller than the feature dimension (Inception: 2048) give rank-deficient "
        "covariances and upward-biased values (one warning): compare at equal n only",
        _fid_per_class,
    ),
)
METRICS.add(
    Metric(
        "is",
        "Inception Score exp E[KL(p(y|x) || p(y))] of the backbone's class probabilities, "
        "mean/std over evaluate.is_splits contiguous splits (Salimans et al. 2016); domain: its "
        "classifier's softmax; inception: softmax over all 1008 TF classes of pool3 @ fc.weight^T "
        "without the bias (as Salimans' code, torch-fidelity and StyleGAN2-ADA), on the fid "
        "input, only when the weights file holds fc (pytorch-fid's does); inception-ts: skipped "
        "(the TorchScript port stops at pool3)",
        _is,
    ),
)
METRICS.add(
    Metric(
        "kid",
        "unbiased MMD^2, kernel (x.y/d + 1)^3, mean/std over "
        f"{KID_SUBSETS} subsets of min({KID_SUBSET_SIZE}, n) samples, seed {KID_SEED} "
        "(Binkowski et al. 2018)",
        _kid,
    ),
)


def _memorisation(
    feats: np.ndarray,
    probs: np.ndarray | None,
    ref: ReferenceSet,
    cfg: EvaluateConfig,
    labels: np.ndarray | None = None,
) -> dict:
    if ref.train_feats is None:  # Inception backbones: no training-set features are cached
        return {}
    ratio, close = memorisation(feats, ref.train_feats, ref.feats)
    name = _name("memorisation", feats, cfg, ref.split)
    return {f"{name}_ratio": ratio, f"{name}_close_fraction": close}


METRICS.add(
    Metric(
        "memorisation",
        "median Euclidean distance of generated samples to their nearest training sample over "
        "the same for the real held-out split (ratio; ~1 = no copying, ~0 = copies), and the "
        f"share of generated samples nearer than the held-out distances' {CLOSE_PERCENTILE:g}st "
        "percentile (close_fraction), in the domain classifier's feature space (not pixels); "
        "domain backbone only (GANs in Action fig. 5.3)",
        _memorisation,
    ),
)
METRICS.add(
    Metric(
        "precision_recall",
        "share of generated samples inside the real k-NN manifold (precision) and of real "
        f"samples inside the generated one (recall), k={PR_K} (Kynkaanniemi et al. 2019)",
        _pr,
    ),
)


def compute_all(
    feats: np.ndarray,
    probs: np.ndarray | None,
    ref: ReferenceSet,
    cfg: EvaluateConfig,
    labels: np.ndarray | None = None,
) -> dict[str, float]:
    """Every registered metric of generated samples against a real reference split.

    Args:
        feats: (N, D) backbone features of the generated images.
        probs: (N, K) backbone class probabilities of the generated images; None when the
            backbone has no classifier (inception-ts, inception weights without fc): metrics
            that need them are skipped.
        ref: the real split: its feature statistics, features and (when cached) labels.
        cfg: the evaluate section (backbone, IS splits).
        labels: (N,) the classes a conditional generator was asked for; None for an
            unconditional one: per-class metrics are skipped.

    Returns:
        Metric name (carrying the protocol) -> value, for all entries of ``METRICS``.
    """
    values: dict[str, float] = {}
    for name in METRICS:
        for key, value in METRICS.get(name).compute(feats, probs, ref, cfg, labels).items():
            if key in values:  # two entries must never overwrite each other silently
                raise ValueError(f"metric {name!r} repeats the value name {key!r}")
            values[key] = float(value)
    return values
