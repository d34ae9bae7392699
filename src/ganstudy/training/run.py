"""The train stage: one variant x seed, from a data folder to a self-describing run folder."""

import shutil
from pathlib import Path

import torch

from ganstudy.config import PARAMS_FILE, load_section, load_variant
from ganstudy.data.arrays import load_split, read_manifest, to_model_range
from ganstudy.io import copy_into, read_json, write_json
from ganstudy.models import ImageSpec
from ganstudy.plots import save_grid, save_loss_curves
from ganstudy.tracking import start_run
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, resume_key
from ganstudy.training.loop import resolved_config, train_gan

RUN_FILE = "run.json"  # links the run folder to its MLflow run
SAMPLES_NAME = "samples.png"
LOSS_PLOT_NAME = "loss.png"


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def train_variant(
    variant_name: str,
    seed: int,
    data_dir: str | Path,
    out_dir: str | Path,
    params_path: str | Path = PARAMS_FILE,
) -> Path:
    """Train ``variant_name`` with ``seed`` on ``data_dir/train.npz``; write ``out_dir``."""
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
    resolved = resolved_config(variant, cfg, seed, image, images, labels)
    key = resume_key(resolved)

    # Resume the MLflow run too when the checkpoint will be resumed.
    previous = None
    ckpt, run_file = out_dir / CHECKPOINT_NAME, out_dir / RUN_FILE
    # Only a checkpoint of the same config, data and code is resumed (see train_gan).
    same = ckpt.is_file() and load_checkpoint(ckpt).get("resume_key") == key
    if same and run_file.is_file():
        previous = read_json(run_file).get("run_id")
    if previous is None:  # a fresh start: nothing of an earlier config may survive
        shutil.rmtree(out_dir, ignore_errors=True)

    tags = {
        "variant": variant_name,
        "seed": str(seed),
        "dataset": manifest["dataset"],
        "arch": variant.arch,
        "game": variant.game,
        "study": study.name,
    }
    with start_run(tracking, study.name, run_name(variant_name, seed), tags, previous) as run:
        run.log_params({**resolved, "dataset": manifest["dataset"], "n_train": len(x)})
        write_json(out_dir / RUN_FILE, {"run_id": run.run_id, "resume_key": key})

        def on_samples(step: int, samples: torch.Tensor) -> None:
            path = save_grid(samples, out_dir / "samples" / f"step_{step:06d}.png")
            run.log_artifact(path, "samples")

        result = train_gan(
            images,
            image,
            variant_name,
            variant,
            cfg,
            seed,
            out_dir,
            sink=lambda step, stats: run.log_metrics(stats, step),
            on_samples=on_samples,
            labels=labels,
        )

        # Export the final pictures and the generator.
        copy_into(out_dir / "samples" / f"step_{result.step:06d}.png", out_dir / SAMPLES_NAME)
        save_loss_curves(
            {f"seed {seed}": result.history}, out_dir / LOSS_PLOT_NAME, run_name(variant_name, seed)
        )
        write_json(out_dir / "config.json", resolved)
        run.log_artifact(out_dir / LOSS_PLOT_NAME)
        run.log_artifact(out_dir / SAMPLES_NAME)
        run.log_generator(result.G)
    return out_dir
