"""The train stage: one variant x seed, from a data folder to a self-describing run folder.

One path for every variant: ``train_variant`` makes a plan (``Plan``) of the models the run
trains, then ``_train_run`` starts (or resumes) the item's one MLflow run, trains each model with
``_train_model`` and writes the run folder's pictures, config and generators with ``_export``.
A plan holds one model (``_one_model``: the whole split, in the run folder itself) or, for a
``per_class`` variant (Frid-Adar et al. 2018: one DCGAN per liver-lesion class), one independent
unconditional model per class trained on that class's images alone (``_one_per_class``): class
k's folder is ``class_<k>/`` inside the run folder, its seed ``class_seed(seed, k)``, its MLflow
scalars ``class<k>/...``, and ``per_class.json`` marks the folder as per-class. Each model
resumes from its own checkpoint.
"""

import hashlib
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganstudy import execution
from ganstudy.config import PARAMS_FILE, TrainConfig, VariantConfig, load_section, load_variant
from ganstudy.data.arrays import load_split, read_manifest, to_model_range
from ganstudy.errors import GanstudyError
from ganstudy.io import copy_into, read_json, write_json
from ganstudy.models import (
    ARCHITECTURES,
    ImageSpec,
    has_classifier,
    is_conditional,
    make_fakes,
    translates,
)
from ganstudy.models.sgan import HEAD_STATS_IMAGES, classifier_accuracy
from ganstudy.names import (
    CHECKPOINT_NAME,
    CONFIG_FILE,
    HEAD_VAL_METRIC,
    LOSS_PLOT_NAME,
    PER_CLASS_FILE,
    RUN_FILE,
    SAMPLE_GRID_SEED_OFFSET,
    SAMPLES_DIR,
    SAMPLES_NAME,
    TIMING_FILE,
    class_folder,
    run_name,
    sample_grid_path,
)
from ganstudy.plots import save_grid, save_loss_curves
from ganstudy.runs import load_checkpoint
from ganstudy.runs import read_per_class as read_per_class
from ganstudy.tracking import Run, start_run
from ganstudy.training.checkpoint import resume_key, tensor_digest
from ganstudy.training.loop import (
    TrainResult,
    check_variant_args,
    resolve_device,
    resolved_config,
    train_gan,
    variant_game,
    variant_networks,
)

MAX_CLASSES = 1000  # class seeds seed * 1000 + k stay distinct across seeds and classes

Validate = Callable[[torch.nn.Module], dict[str, float]]


@dataclass(frozen=True)
class Model:
    """One model a run trains, in its own folder with its own checkpoint."""

    folder: Path  # the run folder itself, or class k's folder inside it
    seed: int
    images: torch.Tensor  # (N, C, H, W) in [-1, 1]
    resume_key: str  # what its checkpoint must match to be resumed
    legend: str  # its curve in the run's loss plot
    generator: str  # its generator's MLflow model name
    prefix: str = ""  # of its MLflow scalars and sample-grid artifacts
    labels: torch.Tensor | None = None  # (N,) int64; None: trained without labels
    originals: int | None = None  # the first this many images are originals (None: all)
    validate: Validate | None = None  # held-out scalars of D, logged as it trains


@dataclass(frozen=True)
class Plan:
    """What a run trains and records: its models, the resolved config (``config.json``, MLflow
    params), the run's resume key (``run.json``) and, for a per-class run, its index."""

    models: list[Model]
    resolved: dict[str, Any]
    key: str
    params: dict[str, Any]  # MLflow params
    tags: dict[str, str]  # the run's own MLflow tags, beside the common ones
    per_class: dict[str, Any] | None = None  # ``per_class.json``; None: one model


def train_variant(
    variant_name: str,
    seed: int,
    data_dir: str | Path,
    out_dir: str | Path,
    params_path: str | Path = PARAMS_FILE,
    val_dir: str | Path | None = None,
) -> Path:
    """Train ``variant_name`` with ``seed`` on ``data_dir/train.npz``; write ``out_dir``. With
    ``val_dir`` (a folder holding ``val.npz``), a D with a single class head logs its validation
    accuracy under the head protocol (``Head/accuracy_val``) as it trains (one model a run)."""
    study = load_section("study", params_path)
    cfg = load_section("train", params_path)
    tracking = load_section("tracking", params_path)
    variant = load_variant(variant_name, params_path)
    check_variant_args(variant_name, variant)  # before anything is written or tracked
    out_dir = Path(out_dir)

    # Load data.
    manifest = read_manifest(data_dir)
    x, y = load_split(data_dir, "train")
    images = to_model_range(x)  # (N, C, H, W) in [-1, 1]
    labels = torch.as_tensor(y, dtype=torch.long)  # (N,); used by conditional architectures only
    image = ImageSpec(images.shape[1], images.shape[2], len(manifest["classes"]))
    if variant.per_class:
        plan = _one_per_class(
            variant_name, variant, cfg, seed, manifest, images, labels, image, out_dir
        )
    else:
        plan = _one_model(variant, cfg, seed, manifest, images, labels, image, out_dir, val_dir)
    # Each checkpoint is read once here (a torch.load of the whole state), not once per question.
    resumable = [_resumable(m) for m in plan.models]
    previous = _previous_run(plan, out_dir, any(resumable))
    tags = {
        "variant": variant_name,
        "seed": str(seed),
        "dataset": manifest["dataset"],
        "arch": variant.arch,
        "game": variant.game,
        "study": study.name,
        **plan.tags,
    }
    with start_run(
        tracking,
        study.name,
        run_name(variant_name, seed),
        tags,
        previous,
        params_path=params_path,
    ) as run:
        _train_run(run, previous, resumable, plan, variant_name, variant, cfg, seed, image, out_dir)
    return out_dir


def _one_model(
    variant: VariantConfig,
    cfg: TrainConfig,
    seed: int,
    manifest: dict[str, Any],
    images: torch.Tensor,
    labels: torch.Tensor,
    image: ImageSpec,
    out_dir: Path,
    val_dir: str | Path | None,
) -> Plan:
    """The plan of a run of one model on the whole split, in the run folder itself."""
    originals = original_count(manifest, len(images))
    resolved = resolved_config(variant, cfg, seed, image, images, labels, originals)
    key = resume_key(resolved)
    validate = None if val_dir is None else head_validation(val_dir, images[:originals])
    model = Model(
        out_dir,
        seed,
        images,
        key,
        legend=f"seed {seed}",
        generator="generator",
        labels=labels,
        originals=originals,
        validate=validate,
    )
    params = {**resolved, "dataset": manifest["dataset"], "n_train": len(images)}
    return Plan([model], resolved, key, params, {})


def _one_per_class(
    variant_name: str,
    variant: VariantConfig,
    cfg: TrainConfig,
    seed: int,
    manifest: dict[str, Any],
    images: torch.Tensor,
    labels: torch.Tensor,
    image: ImageSpec,
    out_dir: Path,
) -> Plan:
    """The plan of a per-class run: class k's model trains on the images of class k alone with
    seed ``class_seed(seed, k)``, in ``class_<k>/``. The run's key covers every class's."""
    check_per_class(variant_name, variant, image)
    names = list(manifest["classes"])
    if len(names) > MAX_CLASSES:
        raise GanstudyError(f"per_class: {len(names)} classes; at most {MAX_CLASSES}")
    subsets = [images[labels == k] for k in range(len(names))]  # (N_k, C, H, W) each
    empty = [k for k, x in enumerate(subsets) if len(x) == 0]
    if empty:
        raise GanstudyError(f"per_class: classes {empty} have no training images")
    classes = [
        {
            "class": k,
            "name": names[k],
            "folder": class_folder(k),
            "seed": class_seed(seed, k),
            "n_train": len(x),
            "resume_key": resume_key(resolved_config(variant, cfg, class_seed(seed, k), image, x)),
        }
        for k, x in enumerate(subsets)
    ]
    resolved = {
        **resolved_config(variant, cfg, seed, image, images),
        "label_digest": tensor_digest(labels),  # the split into classes is part of the run
        "per_class": classes,
    }
    key = hashlib.sha256("".join(c["resume_key"] for c in classes).encode()).hexdigest()[:16]
    info = {
        "seed": seed,
        "classes": [c["class"] for c in classes],
        "names": [c["name"] for c in classes],
        "folders": [c["folder"] for c in classes],
        "class_seeds": [c["seed"] for c in classes],
        "n_train": [c["n_train"] for c in classes],
    }
    per_class = {  # one MLflow param per class and field, not one long string
        f"class{c['class']}": {f: c[f] for f in ("name", "seed", "n_train")} for c in classes
    }
    params = {
        **resolved,
        "per_class": per_class,
        "dataset": manifest["dataset"],
        "n_train": len(images),
    }
    models = [
        Model(
            out_dir / c["folder"],
            c["seed"],
            x,
            c["resume_key"],
            legend=f"class {c['class']} ({c['name']})",
            generator=f"generator_class{c['class']}",
            prefix=f"class{c['class']}/",
        )
        for c, x in zip(classes, subsets, strict=True)
    ]
    return Plan(models, resolved, key, params, {"per_class": "true"}, info)


def _previous_run(plan: Plan, out_dir: Path, any_resumable: bool) -> str | None:
    """The MLflow run of an earlier attempt (``run.json``) to resume: when the run's key is the
    same and some model has a checkpoint of its own config to resume; else None (a fresh start)."""
    run_file = out_dir / RUN_FILE
    if not (run_file.is_file() and any_resumable):
        return None
    record = read_json(run_file)
    return record.get("run_id") if record.get("resume_key") == plan.key else None


def _train_run(
    run: Run,
    previous: str | None,
    resumable: list[bool],
    plan: Plan,
    variant_name: str,
    variant: VariantConfig,
    cfg: TrainConfig,
    seed: int,
    image: ImageSpec,
    out_dir: Path,
) -> None:
    """Train ``plan``'s models in the item's MLflow run ``run`` and export the run folder.
    ``previous``: the MLflow run of an earlier attempt (None: a fresh start, which clears the
    whole run folder); ``resumable``: per model, whether its checkpoint can resume; a model
    without a checkpoint of its own config restarts in a clean folder."""
    # Only now: a tracking store that is down leaves the folder as it was.
    _clear_stale(out_dir, plan.models, resumable, fresh=previous is None)
    if plan.per_class is not None:
        write_json(out_dir / PER_CLASS_FILE, plan.per_class)
    run.log_params(plan.params)
    write_json(out_dir / RUN_FILE, {"run_id": run.run_id, "resume_key": plan.key})
    # Resumed: the steps logged after the last checkpoint are not logged again.
    resumed = run.run_id == previous
    results = [
        _train_model(run, m, image, variant_name, variant, cfg, resumed) for m in plan.models
    ]
    _export(run, plan, results, out_dir, variant_name, variant, cfg, seed)


def _resumable(model: Model) -> bool:
    """Whether ``model``'s folder holds a checkpoint of its config, data and code."""
    ckpt = model.folder / CHECKPOINT_NAME
    return ckpt.is_file() and load_checkpoint(ckpt).get("resume_key") == model.resume_key


def _clear_stale(out_dir: Path, models: list[Model], resumable: list[bool], fresh: bool) -> None:
    """Remove the whole run folder (``fresh``), or the folders of models whose checkpoint is
    not of their current config (``resumable`` False)."""
    if fresh:
        shutil.rmtree(out_dir, ignore_errors=True)
    for model, ok in zip(models, resumable, strict=True):
        if not ok:
            shutil.rmtree(model.folder, ignore_errors=True)


def _train_model(
    run: Run,
    model: Model,
    image: ImageSpec,
    variant_name: str,
    variant: VariantConfig,
    cfg: TrainConfig,
    resumed: bool,
) -> TrainResult:
    """Train (or resume, or find finished) one model of a run in its folder; record its
    training time and copy its final sample grid. ``resumed``: ``run`` is the MLflow run of an
    earlier attempt (its logged steps are not logged again)."""
    folder = model.folder

    def on_samples(step: int, samples: torch.Tensor) -> None:
        path = save_grid(samples, sample_grid_path(folder, step))
        run.log_artifact(path, f"{model.prefix}{SAMPLES_DIR}")

    sink = run.history_sink(resumed, prefix=model.prefix)
    started = time.perf_counter()
    result = train_gan(
        model.images,
        image,
        variant_name,
        variant,
        cfg,
        model.seed,
        folder,
        sink,
        on_samples,
        labels=model.labels,
        originals=model.originals,
        validate=model.validate,
    )
    device = resolve_device(variant.train_config(cfg).device)
    seconds = time.perf_counter() - started
    record_timing(folder, seconds, result.step, result.resumed_from, device)
    copy_into(sample_grid_path(folder, result.step), folder / SAMPLES_NAME)
    return result


def _export(
    run: Run,
    plan: Plan,
    results: list[TrainResult],
    out_dir: Path,
    variant_name: str,
    variant: VariantConfig,
    cfg: TrainConfig,
    seed: int,
) -> None:
    """The run folder's pictures (a per-class run: a row of samples per class, the same z in
    every row; one model: its final grid, already in place), loss curves and config; the
    generators to MLflow."""
    if plan.per_class is not None:
        grid_size = variant.train_config(cfg).grid_size
        rows = [_grid_row(r.G, grid_size, seed) for r in results]
        save_grid(torch.cat(rows), out_dir / SAMPLES_NAME, nrow=len(rows[0]))
    histories = {m.legend: r.history for m, r in zip(plan.models, results, strict=True)}
    save_loss_curves(histories, out_dir / LOSS_PLOT_NAME, run_name(variant_name, seed))
    write_json(out_dir / CONFIG_FILE, plan.resolved)
    run.log_artifact(out_dir / LOSS_PLOT_NAME)
    run.log_artifact(out_dir / SAMPLES_NAME)
    if plan.per_class is not None:
        run.log_artifact(out_dir / PER_CLASS_FILE)
    for m, r in zip(plan.models, results, strict=True):
        run.log_generator(r.G, name=m.generator)


def record_timing(
    out_dir: Path, seconds: float, step: int, resumed_from: int, device: torch.device
) -> None:
    """Add this session's training time to the run folder's ``timing.json`` (a resumed run
    adds to what the earlier sessions spent; a finished run found on disk adds nothing)."""
    path = out_dir / TIMING_FILE
    earlier = read_json(path) if resumed_from > 0 and path.is_file() else {}
    if resumed_from == step and earlier:
        return
    write_json(
        path,
        {
            "seconds": earlier.get("seconds", 0.0) + seconds,
            "sessions": earlier.get("sessions", 0) + 1,
            "iterations": step,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": execution.machine(),
            "git_commit": execution.git_commit(),
        },
    )


def original_count(manifest: dict[str, Any], n: int) -> int:
    """How many of a training split's ``n`` images are originals: the augment stage writes the
    originals first, then ``copies`` augmented copies of each (``augment_split``)."""
    copies = manifest.get("augment", {}).get("copies", 0)
    return n // (copies + 1)


def head_validation(
    val_dir: str | Path, stats_images: torch.Tensor
) -> Callable[[torch.nn.Module], dict[str, float]]:
    """``validate`` for ``train_gan``: a D with a single class head -> its accuracy on the
    validation split under the head protocol (BatchNorm statistics re-estimated on the first
    real training images ``stats_images`` (N, C, H, W), in a copy of D); other D's -> nothing."""
    x, y = load_split(val_dir, "val")
    images, labels = to_model_range(x), torch.as_tensor(y, dtype=torch.long)
    stats_images = stats_images[:HEAD_STATS_IMAGES]

    def validate(D: torch.nn.Module) -> dict[str, float]:
        if not has_classifier(D) or is_conditional(D):
            return {}
        return {HEAD_VAL_METRIC: classifier_accuracy(D, images, labels, 500, stats_images)}

    return validate


# Per-class runs (``VariantConfig.per_class``).


def class_seed(seed: int, k: int) -> int:
    """Class ``k``'s training seed in a per-class run of ``seed``: ``seed * 1000 + k``, distinct
    for every (seed, class) pair while there are at most 1000 classes."""
    return seed * MAX_CLASSES + k


def check_per_class(variant_name: str, variant: VariantConfig, image: ImageSpec) -> None:
    """One clear error, before any training, for a variant that cannot train per class: one
    class's data carry no labels to condition on, translate between, or semi-supervise with."""
    game = variant_game(variant_name, variant)
    why = None
    if ARCHITECTURES.get(variant.arch).uses_labels:  # known without building (any image size)
        why = f"architecture {variant.arch!r} trains on labels"
    elif game.needs_labelled_batch:
        why = f"game {variant.game!r} needs labelled batches"
    else:  # the networks' capabilities, for an architecture that does not declare them
        G, D = variant_networks(variant_name, variant, image)
        if translates(G):
            why = f"architecture {variant.arch!r} translates between domains"
        elif is_conditional(G) or is_conditional(D) or has_classifier(D):
            why = f"architecture {variant.arch!r} is conditional"
    if why is not None:
        raise GanstudyError(
            f"variant {variant_name!r}: per_class trains one unconditional model per class, "
            f"but {why}"
        )


@torch.no_grad()
def _grid_row(G: torch.nn.Module, grid_size: int, seed: int) -> torch.Tensor:
    """A class's row of the run's sample grid: as many images as a side of a ``grid_size``
    grid, from latent codes drawn with the run's seed (the same codes for every class)."""
    width = math.ceil(math.sqrt(grid_size))
    gen = torch.Generator().manual_seed(seed + SAMPLE_GRID_SEED_OFFSET)
    z = torch.randn(width, G.z_dim, generator=gen)
    device = next(G.parameters()).device
    return make_fakes(G.eval(), z.to(device), None).cpu()  # (width, C, H, W)
