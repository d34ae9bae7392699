"""The train stage: one variant x seed, from a data folder to a self-describing run folder.

A ``per_class`` variant (Frid-Adar et al. 2018: one DCGAN per liver-lesion class) trains one
independent unconditional model per class on that class's images alone; each class's run folder
is ``class_<k>/`` inside the run folder, and ``per_class.json`` marks the folder as per-class.
"""

import hashlib
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ganstudy import execution
from ganstudy.config import PARAMS_FILE, TrainConfig, VariantConfig, load_section, load_variant
from ganstudy.data.arrays import load_split, read_manifest, to_model_range
from ganstudy.errors import GanstudyError
from ganstudy.io import copy_into, read_json, write_json
from ganstudy.losses import build_game
from ganstudy.models import (
    ARCHITECTURES,
    ImageSpec,
    build_gan,
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
from ganstudy.training.loop import resolve_device, resolved_config, train_gan

MAX_CLASSES = 1000  # class seeds seed * 1000 + k stay distinct across seeds and classes


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
    accuracy under the head protocol (``Head/accuracy_val``) as it trains."""
    study = load_section("study", params_path)
    cfg = load_section("train", params_path)
    tracking = load_section("tracking", params_path)
    variant = load_variant(variant_name, params_path)
    out_dir = Path(out_dir)

    # Load data.
    manifest = read_manifest(data_dir)
    x, y = load_split(data_dir, "train")
    images = to_model_range(x)  # (N, C, H, W) in [-1, 1]
    labels = torch.as_tensor(y, dtype=torch.long)  # (N,); used by conditional architectures only
    image = ImageSpec(images.shape[1], images.shape[2], len(manifest["classes"]))
    if variant.per_class:
        return _train_per_class(
            variant_name, variant, seed, manifest, images, labels, image, out_dir, params_path
        )
    originals = original_count(manifest, len(x))
    resolved = resolved_config(variant, cfg, seed, image, images, labels, originals)
    key = resume_key(resolved)
    validate = None if val_dir is None else head_validation(val_dir, images[:originals])

    # Resume the MLflow run too when the checkpoint will be resumed.
    previous = None
    ckpt, run_file = out_dir / CHECKPOINT_NAME, out_dir / RUN_FILE
    # Only a checkpoint of the same config, data and code is resumed (see train_gan).
    same = ckpt.is_file() and load_checkpoint(ckpt).get("resume_key") == key
    if same and run_file.is_file():
        previous = read_json(run_file).get("run_id")

    tags = {
        "variant": variant_name,
        "seed": str(seed),
        "dataset": manifest["dataset"],
        "arch": variant.arch,
        "game": variant.game,
        "study": study.name,
    }
    with start_run(
        tracking, study.name, run_name(variant_name, seed), tags, previous, params_path=params_path
    ) as run:
        # Only now: a tracking store that is down leaves the folder as it was.
        if previous is None:  # a fresh start: nothing of an earlier config may survive
            shutil.rmtree(out_dir, ignore_errors=True)
        run.log_params({**resolved, "dataset": manifest["dataset"], "n_train": len(x)})
        write_json(out_dir / RUN_FILE, {"run_id": run.run_id, "resume_key": key})

        def on_samples(step: int, samples: torch.Tensor) -> None:
            path = save_grid(samples, sample_grid_path(out_dir, step))
            run.log_artifact(path, SAMPLES_DIR)

        started = time.perf_counter()
        result = train_gan(
            images,
            image,
            variant_name,
            variant,
            cfg,
            seed,
            out_dir,
            # Resumed: the steps logged after the last checkpoint are not logged again.
            sink=run.history_sink(resumed=run.run_id == previous),
            on_samples=on_samples,
            labels=labels,
            originals=originals,
            validate=validate,
        )
        device = resolve_device(variant.train_config(cfg).device)
        seconds = time.perf_counter() - started
        record_timing(out_dir, seconds, result.step, result.resumed_from, device)

        # Export the final pictures and the generator.
        copy_into(sample_grid_path(out_dir, result.step), out_dir / SAMPLES_NAME)
        save_loss_curves(
            {f"seed {seed}": result.history}, out_dir / LOSS_PLOT_NAME, run_name(variant_name, seed)
        )
        write_json(out_dir / CONFIG_FILE, resolved)
        run.log_artifact(out_dir / LOSS_PLOT_NAME)
        run.log_artifact(out_dir / SAMPLES_NAME)
        run.log_generator(result.G)
    return out_dir


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
    game = build_game(variant.game, variant.game_args)
    why = None
    if ARCHITECTURES.get(variant.arch).uses_labels:  # known without building (any image size)
        why = f"architecture {variant.arch!r} trains on labels"
    elif game.needs_labelled_batch:
        why = f"game {variant.game!r} needs labelled batches"
    else:  # the networks' capabilities, for an architecture that does not declare them
        G, D = build_gan(variant.arch, image, variant.arch_args)
        if translates(G):
            why = f"architecture {variant.arch!r} translates between domains"
        elif is_conditional(G) or is_conditional(D) or has_classifier(D):
            why = f"architecture {variant.arch!r} is conditional"
    if why is not None:
        raise GanstudyError(
            f"variant {variant_name!r}: per_class trains one unconditional model per class, "
            f"but {why}"
        )


def _train_per_class(
    variant_name: str,
    variant: VariantConfig,
    seed: int,
    manifest: dict[str, Any],
    images: torch.Tensor,
    labels: torch.Tensor,
    image: ImageSpec,
    out_dir: Path,
    params_path: str | Path,
) -> Path:
    """``train_variant`` for a per-class variant: class k's model is ``train_gan`` on the
    images of class k alone with seed ``class_seed(seed, k)``, in ``out_dir/class_<k>/``, each
    resuming from its own checkpoint. One MLflow run; class k's scalars as ``class<k>/...``."""
    study = load_section("study", params_path)
    cfg = load_section("train", params_path)
    tracking = load_section("tracking", params_path)
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

    # Resume the MLflow run when every class's config, data and code are unchanged; a class
    # without a checkpoint of its own config restarts in a clean folder.
    previous = None
    run_file = out_dir / RUN_FILE
    if run_file.is_file() and read_json(run_file).get("resume_key") == key:
        previous = read_json(run_file).get("run_id")
    info = {
        "seed": seed,
        "classes": [c["class"] for c in classes],
        "names": [c["name"] for c in classes],
        "folders": [c["folder"] for c in classes],
        "class_seeds": [c["seed"] for c in classes],
        "n_train": [c["n_train"] for c in classes],
    }

    tags = {
        "variant": variant_name,
        "seed": str(seed),
        "dataset": manifest["dataset"],
        "arch": variant.arch,
        "game": variant.game,
        "study": study.name,
        "per_class": "true",
    }
    with start_run(
        tracking, study.name, run_name(variant_name, seed), tags, previous, params_path=params_path
    ) as run:
        # Only now: a tracking store that is down leaves the folder as it was.
        _clear_stale(out_dir, classes, fresh=previous is None)
        write_json(out_dir / PER_CLASS_FILE, info)
        per_class = {  # one MLflow param per class and field, not one long string
            f"class{c['class']}": {f: c[f] for f in ("name", "seed", "n_train")} for c in classes
        }
        dataset = manifest["dataset"]
        run.log_params(
            {**resolved, "per_class": per_class, "dataset": dataset, "n_train": len(images)}
        )
        write_json(out_dir / RUN_FILE, {"run_id": run.run_id, "resume_key": key})
        generators, histories, rows = [], {}, []
        resumed = run.run_id == previous
        for c, x in zip(classes, subsets, strict=True):
            G, history = _train_class(
                run, c, x, image, variant_name, variant, cfg, out_dir, resumed
            )
            generators.append(G)
            histories[f"class {c['class']} ({c['name']})"] = history
            rows.append(_grid_row(G, variant.train_config(cfg).grid_size, seed))

        # Export the pictures (a row of samples per class, the same z in every row), the
        # config and the generators.
        width = len(rows[0])
        save_grid(torch.cat(rows), out_dir / SAMPLES_NAME, nrow=width)
        save_loss_curves(histories, out_dir / LOSS_PLOT_NAME, run_name(variant_name, seed))
        write_json(out_dir / CONFIG_FILE, resolved)
        run.log_artifact(out_dir / LOSS_PLOT_NAME)
        run.log_artifact(out_dir / SAMPLES_NAME)
        run.log_artifact(out_dir / PER_CLASS_FILE)
        for c, G in zip(classes, generators, strict=True):
            run.log_generator(G, name=f"generator_class{c['class']}")
    return out_dir


def _clear_stale(out_dir: Path, classes: list[dict[str, Any]], fresh: bool) -> None:
    """Remove the whole run folder (``fresh``), or the folders of classes whose checkpoint is
    not of their current config."""
    if fresh:
        shutil.rmtree(out_dir, ignore_errors=True)
    for c in classes:
        ckpt = out_dir / c["folder"] / CHECKPOINT_NAME
        if not (ckpt.is_file() and load_checkpoint(ckpt).get("resume_key") == c["resume_key"]):
            shutil.rmtree(out_dir / c["folder"], ignore_errors=True)


def _train_class(
    run: Run,
    c: dict[str, Any],
    images: torch.Tensor,
    image: ImageSpec,
    variant_name: str,
    variant: VariantConfig,
    cfg: TrainConfig,
    out_dir: Path,
    resumed: bool,
) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Train (or resume, or find finished) class ``c``'s model on its ``images`` (N_k, C, H, W);
    its final generator (eval mode) and history. ``resumed``: ``run`` is the MLflow run of an
    earlier attempt (its logged steps are not logged again)."""
    k, folder = c["class"], out_dir / c["folder"]

    def on_samples(step: int, samples: torch.Tensor) -> None:
        path = save_grid(samples, sample_grid_path(folder, step))
        run.log_artifact(path, f"class{k}/{SAMPLES_DIR}")

    sink = run.history_sink(resumed, prefix=f"class{k}/")
    result = train_gan(
        images, image, variant_name, variant, cfg, c["seed"], folder, sink, on_samples
    )
    copy_into(sample_grid_path(folder, result.step), folder / SAMPLES_NAME)
    return result.G, result.history


@torch.no_grad()
def _grid_row(G: torch.nn.Module, grid_size: int, seed: int) -> torch.Tensor:
    """A class's row of the run's sample grid: as many images as a side of a ``grid_size``
    grid, from latent codes drawn with the run's seed (the same codes for every class)."""
    width = math.ceil(math.sqrt(grid_size))
    gen = torch.Generator().manual_seed(seed + SAMPLE_GRID_SEED_OFFSET)
    z = torch.randn(width, G.z_dim, generator=gen)
    device = next(G.parameters()).device
    return make_fakes(G.eval(), z.to(device), None).cpu()  # (width, C, H, W)
