"""The evaluate stage: sample a trained generator; score it against a cached real split."""

import tempfile
from pathlib import Path

import numpy as np
import torch

from ganstudy.config import EvaluateConfig, StudyConfig, TrackingConfig
from ganstudy.device import resolve_device
from ganstudy.errors import GanstudyError
from ganstudy.io import copy_into, read_json, write_json
from ganstudy.metrics.backbones import load_backbone
from ganstudy.metrics.head import head_accuracy
from ganstudy.metrics.reference import BACKBONE, load_reference
from ganstudy.metrics.registry import compute_all
from ganstudy.models import ImageSpec, build_gan, is_conditional, make_fakes, translates
from ganstudy.names import (
    CHECKPOINT_NAME,
    CONFIG_FILE,
    EVAL_SEED_OFFSET,
    MEMORISATION_ARTIFACT,
    PARAMS_FILE,
    memorisation_path,
    run_name,
)
from ganstudy.runs import load_checkpoint, read_per_class, read_run_id
from ganstudy.tracking import start_run


@torch.no_grad()
def generate(
    run_dir: str | Path,
    n: int,
    batch_size: int,
    device: torch.device,
    source: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict]:
    """``n`` images (N, C, H, W) in [-1, 1] from the run's final generator, seeded by its seed,
    and the run's checkpoint state. An image-to-image generator translates ``n`` images drawn
    from ``source`` ((M, C, H, W) images in [-1, 1], (M,) domains), e.g. the training split,
    into the other domain. ``state["sample_labels"]``: the (N,) classes a conditional G(z, y)
    was asked for (balanced), else None. A per-class run (``per_class.json``) samples its
    classes evenly, each image from its class's generator (see ``_generate_per_class``)."""
    info = read_per_class(run_dir)
    if info is not None:
        return _generate_per_class(Path(run_dir), info, n, batch_size, device)
    state = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    G, _ = build_gan(state["arch"], ImageSpec(*state["image"]), state["arch_args"])
    G.load_state_dict(state[state.get("G_eval", "G")])
    G = G.to(device).eval()
    gen = torch.Generator().manual_seed(state["config"]["seed"] + EVAL_SEED_OFFSET)
    labels, images = None, None
    if translates(G):  # n source images, drawn with replacement
        if source is None:
            raise GanstudyError(f"{run_dir}: an image-to-image generator needs source images")
        pick = torch.randint(len(source[0]), (n,), generator=gen)
        images, labels = source[0][pick], source[1][pick]
    elif is_conditional(G):  # balanced classes (n // K or one more each), in a seeded order
        labels = (torch.arange(n) % G.num_classes)[torch.randperm(n, generator=gen)]  # (n,)
    chunks = []
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), state["z_dim"], generator=gen)
        part = slice(start, start + len(z))
        y = None if labels is None else labels[part].to(device)
        x = None if images is None else images[part].to(device)
        chunks.append(make_fakes(G, z.to(device), y, x).cpu())
    # Translations keep their source's content, not a class of their own: no per-class labels.
    state["sample_labels"] = labels if is_conditional(G) and not translates(G) else None
    return torch.cat(chunks), state


@torch.no_grad()
def _generate_per_class(
    run_dir: Path, info: dict, n: int, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, dict]:
    """``generate`` for a per-class run (Frid-Adar et al. 2018: one generator per class): n // K
    or one more images of each of the K classes, in a seeded order, image i made by the final
    generator of class ``labels[i]`` from latent code ``z[i]`` (both drawn with the run's seed).
    The state is class 0's checkpoint with the run's resolved config (``config.json``: the run's
    seed, not the class's) and ``sample_labels``, so per-class FID scores each generator."""
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise GanstudyError(f"{config_file}: missing; the train stage did not finish")
    first = load_checkpoint(run_dir / info["folders"][0] / CHECKPOINT_NAME)
    gen = torch.Generator().manual_seed(info["seed"] + EVAL_SEED_OFFSET)  # disjoint from training
    classes = torch.as_tensor(info["classes"])  # (K,)
    labels = classes[(torch.arange(n) % len(classes))[torch.randperm(n, generator=gen)]]  # (n,)
    z = torch.randn(n, first["z_dim"], generator=gen)  # (n, z_dim)
    channels, size, _ = first["image"]
    images = torch.empty(n, channels, size, size)  # (n, C, H, W)
    for k, folder in zip(info["classes"], info["folders"], strict=True):
        state = load_checkpoint(run_dir / folder / CHECKPOINT_NAME)  # one class in memory at once
        G, _ = build_gan(state["arch"], ImageSpec(*state["image"]), state["arch_args"])
        G.load_state_dict(state[state.get("G_eval", "G")])
        G = G.to(device).eval()
        for part in (labels == k).nonzero().squeeze(1).split(batch_size):  # (<= batch_size,)
            images[part] = make_fakes(G, z[part].to(device), None).cpu()
    return images, {**first, "config": read_json(config_file), "sample_labels": labels}


def score(
    images: torch.Tensor,
    reference_dir: str | Path,
    cfg: EvaluateConfig,
    device: torch.device,
    labels: torch.Tensor | None = None,
) -> tuple[dict[str, float], np.ndarray]:
    """Every registered metric (``ganstudy metrics``: FID, per-class FID, IS, KID,
    precision/recall) of ``images`` in the ``cfg.backbone`` feature space, against the cached
    real reference split.

    Args:
        images: (N, C, H, W) generated images in [-1, 1].
        reference_dir: the reference stage's output folder.
        cfg: the evaluate section (backbone, feature precision, reference split, batch size,
            IS splits).
        device: where the backbone runs.
        labels: (N,) the classes a conditional generator made the images for; None otherwise.

    Returns:
        Metric name (carrying the protocol, e.g. ``kid_domain_10k_test_mean``) -> value, and the
        images' (N, D) features in that space.
    """
    reference = load_reference(reference_dir, cfg.reference_split, cfg.backbone)  # fails early
    backbone = load_backbone(cfg.backbone, cfg, device, reference_dir, cfg.feature_precision)
    feats, probs = backbone.extract(images, cfg.batch_size)  # (N, D), (N, K) or None
    classes = None if labels is None else labels.cpu().numpy()  # (N,)
    return compute_all(feats, probs, reference, cfg, classes), feats


def _split(processed_dir: str | Path, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A processed split as (N, C, H, W) images in [-1, 1] and (N,) int64 labels."""
    from ganstudy.data.arrays import load_split, to_model_range

    x, y = load_split(processed_dir, name)
    return to_model_range(x), torch.as_tensor(y, dtype=torch.long)


def save_memorisation_figure(
    images: torch.Tensor,
    feats: np.ndarray | None,
    reference_dir: str | Path,
    train: torch.Tensor,
    path: str | Path,
    cfg: EvaluateConfig,
    device: torch.device,
) -> Path:
    """The generated images nearest to the training set beside their nearest training images
    ``train`` (M, C, H, W) in [-1, 1], in the domain classifier's feature space (whatever
    ``cfg.backbone`` is). ``feats``: the images' domain features when computed, else None."""
    from ganstudy.metrics.memorisation import save_closest_pairs
    from ganstudy.metrics.reference import feats_name

    train_feats = load_reference(reference_dir, cfg.reference_split).train_feats
    if train_feats is None:
        raise GanstudyError(
            f"{Path(reference_dir) / feats_name('train')}: missing; run the reference stage"
        )
    if len(train) != len(train_feats):
        raise GanstudyError("the train split does not match the reference stage's; re-run it")
    if feats is None:
        feats = load_backbone(BACKBONE, cfg, device, reference_dir).features(images, cfg.batch_size)
    return save_closest_pairs(images, feats, train, train_feats, path)


def evaluate_run(
    run_dir: str | Path,
    reference_dir: str | Path,
    out_path: str | Path,
    cfg: EvaluateConfig,
    study: StudyConfig,
    tracking: TrackingConfig,
    processed_dir: str | Path | None = None,
    params_path: str | Path = PARAMS_FILE,
    memorisation: str | Path | None = None,
) -> dict[str, float]:
    """Write the run's metrics JSON and log the same values to its MLflow run (the item's run
    that train made; ``params_path`` finds the execution's parent run); with the processed
    data folder, also the memorisation picture at ``memorisation`` (default
    ``names.memorisation_path(out_path)``: ``<seed>_memorisation.png`` beside the JSON)."""
    device = resolve_device(cfg.device)
    # (M, C, H, W) in [-1, 1] and (M,) labels: translation sources, memorisation
    train = None if processed_dir is None else _split(processed_dir, "train")
    images, state = generate(run_dir, cfg.num_samples, cfg.batch_size, device, train)
    metrics, feats = score(images, reference_dir, cfg, device, state["sample_labels"])
    if processed_dir is not None:  # D's class head on the test split (book §7.2.8 / §7.3)
        test = _split(processed_dir, "test")  # BatchNorm statistics from real train images:
        accuracy = head_accuracy(run_dir, *test, device, cfg.batch_size, train[0])
        if accuracy is not None:
            metrics["head_accuracy_test"] = accuracy
    record = {**metrics, "step": state["step"], "seed": state["config"]["seed"]}
    run_id = read_run_id(run_dir)
    name = run_name(state["variant"], state["config"]["seed"])
    tags = {"variant": state["variant"], "seed": str(state["config"]["seed"]), "study": study.name}
    if processed_dir is not None:
        from ganstudy.data.arrays import read_manifest

        tags["dataset"] = read_manifest(processed_dir)["dataset"]
    with tempfile.TemporaryDirectory() as scratch:
        figure = None  # drawn first, so the run gets it; put in place with the other outputs
        if train is not None:
            domain_feats = feats if cfg.backbone == BACKBONE else None  # extract once, not twice
            figure = save_memorisation_figure(
                images,
                domain_feats,
                reference_dir,
                train[0],
                Path(scratch) / MEMORISATION_ARTIFACT,
                cfg,
                device,
            )
        with start_run(tracking, study.name, name, tags, run_id, params_path=params_path) as run:
            run.log_metrics(metrics, step=state["step"])
            if figure is not None:
                run.log_artifact(figure)
        # Local outputs only now: a tracking store that is down leaves the last ones as they were.
        if figure is not None:
            copy_into(figure, memorisation or memorisation_path(out_path))
    write_json(out_path, record)
    return record
