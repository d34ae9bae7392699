"""The evaluate stage: sample a trained generator and score it against cached real statistics."""

from pathlib import Path

import torch

from ganstudy.config import EvaluateConfig, StudyConfig, TrackingConfig
from ganstudy.io import read_json, write_json
from ganstudy.metrics import metric_name
from ganstudy.metrics.domain import extract, load_classifier
from ganstudy.metrics.fid import frechet_distance, gaussian_stats, load_stats
from ganstudy.metrics.inception_score import inception_score
from ganstudy.metrics.reference import BACKBONE, CLASSIFIER_NAME, stats_name
from ganstudy.models import ImageSpec, build_gan
from ganstudy.tracking import start_run
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ganstudy.training.loop import resolve_device
from ganstudy.training.run import RUN_FILE, run_name


@torch.no_grad()
def generate(
    run_dir: str | Path, n: int, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, dict]:
    """``n`` images (N, C, H, W) in [-1, 1] from the run's final generator, seeded by its seed."""
    state = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    G, _ = build_gan(state["arch"], ImageSpec(*state["image"]), state["arch_args"])
    G.load_state_dict(state[state.get("G_eval", "G")])
    G = G.to(device).eval()
    gen = torch.Generator().manual_seed(state["config"]["seed"] + 20_000)  # disjoint from training
    chunks = []
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), state["z_dim"], generator=gen)
        chunks.append(G(z.to(device)).cpu())
    return torch.cat(chunks), state


def score(
    images: torch.Tensor, reference_dir: str | Path, cfg: EvaluateConfig, device: torch.device
) -> dict[str, float]:
    """FID and IS of ``images`` in the domain-classifier space, names carrying the protocol."""
    model = load_classifier(Path(reference_dir) / CLASSIFIER_NAME, device)
    feats, probs = extract(model, images, cfg.batch_size)
    mu_ref, sigma_ref, _ = load_stats(Path(reference_dir) / stats_name(cfg.reference_split))
    mu, sigma = gaussian_stats(feats)
    n = len(images)
    is_mean, is_std = inception_score(probs, cfg.is_splits)
    return {
        metric_name("fid", BACKBONE, n, cfg.reference_split): frechet_distance(
            mu, sigma, mu_ref, sigma_ref
        ),
        f"{metric_name('is', BACKBONE, n)}_mean": is_mean,
        f"{metric_name('is', BACKBONE, n)}_std": is_std,
    }


def evaluate_run(
    run_dir: str | Path,
    reference_dir: str | Path,
    out_path: str | Path,
    cfg: EvaluateConfig,
    study: StudyConfig,
    tracking: TrackingConfig,
) -> dict[str, float]:
    """Write the run's metrics JSON and log the same values to its MLflow run."""
    device = resolve_device(cfg.device)
    images, state = generate(run_dir, cfg.num_samples, cfg.batch_size, device)
    metrics = score(images, reference_dir, cfg, device)
    record = {**metrics, "step": state["step"], "seed": state["config"]["seed"]}
    run_file = Path(run_dir) / RUN_FILE
    run_id = read_json(run_file).get("run_id") if run_file.is_file() else None
    name = run_name(state["variant"], state["config"]["seed"])
    tags = {"variant": state["variant"], "seed": str(state["config"]["seed"]), "study": study.name}
    with start_run(tracking, study.name, name, tags, run_id) as run:
        run.log_metrics(metrics, step=state["step"])
    write_json(out_path, record)
    return record
