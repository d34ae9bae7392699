"""The augmentation study's arms (Frid-Adar et al. 2018; GANs in Action ch. 11.1).

Step 1 augments a small labelled set classically (the augment stage), step 2 trains GANs on it
(the train stage), step 3 trains one classifier per arm and count and scores it on the test
split (here). Arms:

- ``classic``: the real training split plus ``c`` classic images, for each ``c`` in
  ``downstream.counts`` and in ``max(counts) + counts``; ``c = 0`` is the real-only arm.
- a GAN variant: the real split plus ``max(counts)`` classic images plus ``c`` synthetic
  images of that variant's generator (conditional or per-class, so each image has a class).

The fair design (issue 13): every classifier takes the same number of optimizer steps
(``downstream.steps``), so no arm wins on updates alone; "classic + c synthetic" has an
equal-size twin, "classic + c more classic" (the classic arm at ``max(counts) + c``), so a gain
is a gain of synthetic over classic images, not of a larger set; a GAN arm records its
generator's per-class FID and whether it passes ``downstream.max_class_fid``.

Added images are nested: count ``c`` takes the first ``c`` of one seeded order, so a larger
count holds every image of a smaller one and the curve moves by what is added, not by a new
draw; a GAN arm's classic images are the classic arm's first ``max(counts)``. Selection (the
step kept) uses the validation split only.
"""

import math
import os
import re
import time
from pathlib import Path
from typing import Any

import torch

from ganstudy.config import DownstreamConfig, StudyConfig, TrackingConfig
from ganstudy.data.arrays import load_split, read_manifest, to_model_range
from ganstudy.device import resolve_device
from ganstudy.errors import GanstudyError
from ganstudy.io import read_json, write_json
from ganstudy.names import (
    DOWNSTREAM_ORDER_SEED_OFFSET,
    PARAMS_FILE,
    downstream_run_name,
    sources_path,
)
from ganstudy.plots import save_grid
from ganstudy.study.classifier import classification_metrics, predict_proba, train_classifier

CLASSIC = "classic"  # the arm name of classic augmentation alone
GRID_PER_SOURCE = 16  # images of each source (real, classic, synthetic) in the arm's picture
CLASS_FID = re.compile(r"^(fid_.+)_class(\d+)$")  # evaluate's per-class FID of a conditional run

Images = tuple[torch.Tensor, torch.Tensor]  # (N, C, H, W) in [-1, 1], (N,) int64 classes


def classic_pool(processed_dir: str | Path, augmented_dir: str | Path) -> tuple[Images, Images]:
    """The real training split and the classic copies the augment stage added to it.

    The augment stage writes the originals first, then its copies (``augment_split``)."""
    real = _split(processed_dir, "train")
    augmented = _split(augmented_dir, "train")
    n = len(real[0])
    if len(augmented[0]) < n or not torch.equal(augmented[0][:n], real[0]):
        raise GanstudyError(
            f"{augmented_dir}: does not start with the training split of {processed_dir}; "
            "re-run the augment stage (dvc repro)"
        )
    return real, (augmented[0][n:], augmented[1][n:])


def classic_counts(cfg: DownstreamConfig) -> list[int]:
    """The classic arm's counts: ``counts`` and, for each, ``max(counts) + c``, the size of the
    GAN arms' training set at synthetic count ``c`` (their equal-size control)."""
    top = cfg.counts[-1]
    return sorted(set(cfg.counts) | {top + c for c in cfg.counts})


def quality_gate(metrics: dict[str, Any], max_class_fid: float | None) -> dict[str, Any]:
    """A generator's per-class FID (evaluate's ``fid_*_class<k>``) against the gate.

    Returns:
        ``{"metric", "fid_class": {k: FID}, "worst", "threshold", "passed"}``; ``passed`` is
        None without a threshold, False when the worst class is above it or not finite.
    """
    found: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if (m := CLASS_FID.match(key)) and value is not None:
            found.setdefault(m[1], {})[m[2]] = float(value)
    if len(found) != 1:
        raise GanstudyError(
            f"the quality gate needs one family of per-class FIDs (fid_*_class<k>), found "
            f"{sorted(found) or 'none'}; evaluate a conditional or per-class run"
        )
    ((metric, per_class),) = found.items()
    worst = max(per_class.values(), key=lambda v: math.inf if math.isnan(v) else v)
    passed = None
    if max_class_fid is not None:
        passed = bool(math.isfinite(worst) and worst <= max_class_fid)
    return {
        "metric": f"{metric}_class<k>",
        "fid_class": dict(sorted(per_class.items(), key=lambda kv: int(kv[0]))),
        "worst": worst,
        "threshold": max_class_fid,
        "passed": passed,
    }


def nested_order(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation of range(n); count c takes its first c entries."""
    gen = torch.Generator().manual_seed(seed + DOWNSTREAM_ORDER_SEED_OFFSET)
    return torch.randperm(n, generator=gen)


def synthetic_images(run_dir: str | Path, n: int, batch_size: int, device: torch.device) -> Images:
    """``n`` class-labelled images (N, C, H, W) of a trained run (conditional or per-class
    generators), quantised to 8 bits as a saved image would be."""
    from ganstudy.metrics.evaluate import generate

    images, state = generate(run_dir, n, batch_size, device)
    labels = state["sample_labels"]
    if labels is None:
        raise GanstudyError(
            f"{run_dir}: its generator makes unlabelled images; the augmentation study needs a "
            "conditional variant (cgan, acgan) or one with per_class: true"
        )
    # As images on disk (uint8), like the real and classic ones: 256 levels in [-1, 1].
    images = images.cpu().clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1)
    return images, labels.cpu().long()


def run_arm(
    arm: str,
    seed: int,
    processed_dir: str | Path,
    augmented_dir: str | Path,
    cfg: DownstreamConfig,
    run_dir: str | Path | None = None,
    grid_path: str | Path | None = None,
    metrics_path: str | Path | None = None,
) -> dict[str, Any]:
    """Train and score the classifier of ``arm`` at every count (``classic_counts`` for the
    classic arm, ``cfg.counts`` for a GAN arm), each with ``cfg.steps`` optimizer steps.

    Args:
        arm: ``classic`` or the name of a GAN variant (then ``run_dir`` is its trained run).
        seed: classifier seed (weights, batch order) and the order of the added images.
        processed_dir: the preprocess stage's folder (train, val and test splits).
        augmented_dir: the augment stage's folder (train split + classic copies).
        cfg: the downstream section.
        run_dir: the GAN run folder (models/<variant>/<seed>) of a GAN arm; None for classic.
        grid_path: where to save real | classic | synthetic example images side by side.
        metrics_path: a GAN arm's evaluate metrics (``metrics/<variant>/<seed>.json``), for
            the quality gate; needed when ``cfg.max_class_fid`` is set.

    Returns:
        ``{"arm", "seed", "counts", "n_real", "n_val", "n_test", "n_classic_base", "steps",
        "results": {str(c): metrics}}`` with ``classification_metrics`` of the test split, the
        training-set size, the optimizer steps taken and the step kept for each count; a GAN
        arm's record also has ``quality`` (``quality_gate``) when ``metrics_path`` is given.
    """
    if (arm == CLASSIC) != (run_dir is None):
        raise GanstudyError(f"arm {arm!r}: a GAN arm needs its run folder, classic none")
    quality = None
    if run_dir is not None and metrics_path is not None:
        quality = quality_gate(read_json(metrics_path), cfg.max_class_fid)
    elif run_dir is not None and cfg.max_class_fid is not None:
        raise GanstudyError(
            f"arm {arm!r}: downstream.max_class_fid is set but no evaluate metrics were given"
        )
    device = resolve_device(cfg.device)
    num_classes = len(read_manifest(processed_dir)["classes"])
    real, classic = classic_pool(processed_dir, augmented_dir)
    val, test = _split(processed_dir, "val"), _split(processed_dir, "test")
    top = cfg.counts[-1]
    counts = cfg.counts if run_dir is not None else classic_counts(cfg)
    order = nested_order(len(classic[0]), seed)
    classic = _take(classic, order, 2 * top, "classic images (max(counts) x 2: the controls)")
    base, extra = real, classic  # classic arm: real + first c classic images
    if run_dir is not None:  # GAN arm: real + the first max(counts) classic + c synthetic
        classic = (classic[0][:top], classic[1][:top])
        base = _cat(real, classic)
        extra = synthetic_images(run_dir, top, 500, device)
    results = {}
    for count in counts:
        train = _cat(base, (extra[0][:count], extra[1][:count]))
        fit = train_classifier(
            train[0],
            train[1],
            val[0],
            val[1],
            num_classes,
            steps=cfg.steps,
            eval_every=cfg.eval_every,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=seed,
            device=device,
        )
        scores = classification_metrics(predict_proba(fit.model, test[0]), test[1].numpy())
        results[str(count)] = {
            **scores,
            "n_train": len(train[0]),
            "steps": fit.steps,
            "best_step": fit.best_step,
            "val_accuracy": next(r for r in fit.history if r.step == fit.best_step).val_accuracy,
        }
    if grid_path is not None:
        _save_sources(real, classic, None if run_dir is None else extra, grid_path)
    return {
        "arm": arm,
        "seed": seed,
        "counts": list(counts),
        "n_real": len(real[0]),
        "n_val": len(val[0]),
        "n_test": len(test[0]),
        "n_classic_base": 0 if run_dir is None else top,
        "steps": cfg.steps,
        "results": results,
        **({} if quality is None else {"quality": quality}),
    }


def run_downstream(
    arm: str,
    seed: int,
    processed_dir: str | Path,
    augmented_dir: str | Path,
    out_path: str | Path,
    cfg: DownstreamConfig,
    study: StudyConfig,
    tracking: TrackingConfig,
    run_dir: str | Path | None = None,
    params_path: str | Path = PARAMS_FILE,
    metrics_path: str | Path | None = None,
    sources: str | Path | None = None,
) -> dict[str, Any]:
    """The downstream stage: ``run_arm``, its JSON, its picture at ``sources`` (default
    ``names.sources_path(out_path)``: ``<seed>_sources.png`` beside the JSON) and an MLflow run
    ``downstream-<arm>-seed<s>`` (a child of the execution's parent run, found with
    ``params_path``) whose metrics are logged with the count as the step."""
    from ganstudy.tracking import start_run

    started = time.perf_counter()
    sources = sources or sources_path(out_path)
    record = run_arm(arm, seed, processed_dir, augmented_dir, cfg, run_dir, sources, metrics_path)
    # What the page's wall time is made of (run_arm's own result stays free of it: equal inputs
    # give equal records).
    device = resolve_device(cfg.device)
    record["seconds"] = round(time.perf_counter() - started, 1)
    record["machine"] = f"{device.type}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    tags = {
        "arm": arm,
        "variant": arm,  # "classic" or a GAN variant: one tag to group by in the UI
        "seed": str(seed),
        "dataset": read_manifest(processed_dir)["dataset"],
        "study": study.name,
        "stage": "downstream",
    }
    name = downstream_run_name(arm, seed)
    with start_run(tracking, study.name, name, tags, params_path=params_path) as run:
        run.log_params({"downstream": cfg.model_dump(), "n_real": record["n_real"]})
        for count, scores in record["results"].items():
            run.log_metrics({f"downstream/{k}": v for k, v in scores.items()}, step=int(count))
        if "quality" in record:  # the generator's worst per-class FID and the gate's verdict
            gate = record["quality"]
            run.log_metrics({"downstream/worst_class_fid": gate["worst"]})
            if gate["passed"] is not None:
                run.log_metrics({"downstream/quality_gate_passed": float(gate["passed"])})
        run.log_artifact(sources)
    write_json(out_path, record)
    return record


def _split(folder: str | Path, name: str) -> Images:
    x, y = load_split(folder, name)
    return to_model_range(x), torch.as_tensor(y, dtype=torch.long)


def _take(pool: Images, order: torch.Tensor, n: int, what: str) -> Images:
    if n > len(order):
        raise GanstudyError(
            f"downstream.counts asks for {n} {what}, but the augment stage made {len(order)} "
            "(raise augment.copies or lower the counts)"
        )
    pick = order[:n]
    return pool[0][pick], pool[1][pick]


def _cat(a: Images, b: Images) -> Images:
    return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])


def _save_sources(
    real: Images, classic: Images, synthetic: Images | None, path: str | Path
) -> Path:
    """Rows of real, classic and (for a GAN arm) synthetic images, class-sorted in each row."""
    rows = [real, classic] + ([] if synthetic is None else [synthetic])
    picked = []
    for images, labels in rows:
        idx = torch.argsort(labels[:GRID_PER_SOURCE], stable=True)
        picked.append(images[:GRID_PER_SOURCE][idx])
    return save_grid(torch.cat(picked), path, nrow=GRID_PER_SOURCE)


def arm_records(folder: str | Path) -> list[dict[str, Any]]:
    """Every ``<arm>/<seed>.json`` the downstream stages wrote under ``folder``."""
    return [read_json(p) for p in sorted(Path(folder).glob("*/*.json"))]


def as_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per arm x seed x count; ``added`` counts every image beyond the real split
    (a GAN arm's synthetic images come after its classic ones), so a GAN row and the classic
    row with the same ``added`` have training sets of one size. ``gate_passed`` and
    ``worst_class_fid``: a GAN arm's quality gate (None for classic or without a gate)."""
    return [
        {
            "arm": rec["arm"],
            "seed": rec["seed"],
            "count": int(count),
            "added": int(count) + rec["n_classic_base"],
            "gate_passed": rec.get("quality", {}).get("passed"),
            "worst_class_fid": rec.get("quality", {}).get("worst"),
            **scores,
        }
        for rec in records
        for count, scores in sorted(rec["results"].items(), key=lambda kv: int(kv[0]))
    ]
