"""The training loop: variant-agnostic, resumable, deterministic for a seed on one device.

The loop owns time (iterations, logging, sampling, checkpoints); the game owns the objective.
Training data live on the device as one tensor; batches are drawn with replacement, as in the
book, by a seeded generator whose state is checkpointed with everything else.
Conditional architectures (their G takes labels, or D classifies) train on (image, label) pairs:
every fake batch is generated for the labels of the real batch it is paired with (book listing
8.6), and the game gets D bound to those labels (``losses.Labelled``). The labels come with the
real batch's index draw, so no extra random numbers are drawn: unconditional runs are unchanged.
Two tricks of book §5.4 depend on time, so they live here and not in the games: instance noise
on D's inputs (annealed to 0 over the run) and an exponential moving average (EMA) of G.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ganstudy.config import OptimizerConfig, TrainConfig, VariantConfig
from ganstudy.device import make_deterministic, resolve_device, resolve_precision
from ganstudy.errors import GanstudyError
from ganstudy.io import read_csv, write_with
from ganstudy.losses import GAMES, Batch, Game, Stats, build_game
from ganstudy.models import (
    ARCHITECTURES,
    ImageSpec,
    build_gan,
    has_classifier,
    is_conditional,
    make_fakes,
    set_progress,
    translates,
)
from ganstudy.names import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    LABELLED_SEED_OFFSET,
    SAMPLE_GRID_SEED_OFFSET,
)
from ganstudy.registry import check_keywords
from ganstudy.runs import RESTART, load_checkpoint, save_checkpoint
from ganstudy.training.checkpoint import TrainingState, resume_key, tensor_digest

Sink = Callable[[int, dict[str, float]], None]  # (iteration, named scalars) -> None


@dataclass
class TrainResult:
    G: torch.nn.Module  # the EMA of G when train.ema_beta is set, else G itself; in eval mode
    step: int
    history: pd.DataFrame
    resumed_from: int  # 0 for a fresh start


def resolved_config(
    variant: VariantConfig,
    cfg: TrainConfig,
    seed: int,
    image: ImageSpec,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    originals: int | None = None,
) -> dict:
    """Everything that determines a training run, the training data's digest included (and the
    labels' for an architecture that trains on them; how many images are originals, for a run
    that draws labelled images from them)."""
    train = variant.train_config(cfg)
    # The precision that runs, not "auto": a record says what ran, and a run resumes only in it.
    precision = resolve_precision(train.precision, resolve_device(train.device))
    resolved = {
        "variant": variant.model_dump(mode="json"),
        "train": train.model_copy(update={"precision": precision}).model_dump(mode="json"),
        "seed": seed,
        "image": [image.channels, image.size, image.num_classes],
        "data_digest": tensor_digest(images),
    }
    if labels is not None and ARCHITECTURES.get(variant.arch).uses_labels:
        resolved["label_digest"] = tensor_digest(labels)
    if variant.labelled is not None and originals is not None:
        resolved["labelled_from_first"] = originals
    return resolved


def variant_networks(
    variant_name: str, variant: VariantConfig, image: ImageSpec
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(G, D) of ``variant`` for ``image``; an unknown ``arch_args`` key is one line naming the
    variant, the key and the keys the architecture accepts."""
    return build_gan(variant.arch, image, variant.arch_args, _arch_args(variant_name, variant))


def variant_game(variant_name: str, variant: VariantConfig) -> Game:
    """The game of ``variant``; an unknown ``game_args`` key is one line naming the variant, the
    key and the keys the game accepts."""
    return build_game(variant.game, variant.game_args, _game_args(variant_name, variant))


def check_variant_args(variant_name: str, variant: VariantConfig) -> None:
    """The keys of ``variant``'s ``arch_args`` and ``game_args`` against those its architecture
    and game accept, without building anything (any image size)."""
    arch, game = ARCHITECTURES.get(variant.arch), GAMES.get(variant.game)
    check_keywords(_arch_args(variant_name, variant), variant.arch_args, arch.keywords)
    check_keywords(_game_args(variant_name, variant), variant.game_args, game.keywords())


def _arch_args(variant_name: str, variant: VariantConfig) -> str:
    return f"variant {variant_name!r}: arch_args of architecture {variant.arch!r}"


def _game_args(variant_name: str, variant: VariantConfig) -> str:
    return f"variant {variant_name!r}: game_args of game {variant.game!r}"


def make_optimizer(
    params: Iterable[torch.nn.Parameter], lr: float, cfg: OptimizerConfig, fused: bool
) -> torch.optim.Optimizer:
    """The optimizer ``cfg.name`` at learning rate ``lr``; ``fused`` asks for the CUDA kernel."""
    if cfg.name == "rmsprop":  # no fused kernel for RMSprop
        return torch.optim.RMSprop(params, lr, alpha=cfg.alpha, eps=cfg.eps)
    return torch.optim.Adam(params, lr, betas=cfg.betas, eps=cfg.eps, fused=fused)


def _fixed_noise(n: int, z_dim: int, seed: int, device: torch.device) -> torch.Tensor:
    # One fixed grid per seed, CPU-drawn.
    gen = torch.Generator().manual_seed(seed + SAMPLE_GRID_SEED_OFFSET)
    return torch.randn(n, z_dim, generator=gen).to(device)


def labelled_subset(
    labels: torch.Tensor, n: int, seed: int, pick: str = "balanced", originals: int | None = None
) -> torch.Tensor:
    """Indices (n,) of the labels a semi-supervised run may see, all distinct and among the first
    ``originals`` images (the original images of a classically augmented split, which come before
    their copies; None: all): n // K of every class (the first n % K classes one more), drawn with
    ``seed``; with ``pick`` "random", n images drawn uniformly with ``seed`` (the book's first n of
    a shuffled MNIST, one draw per seed); with "first", the first n images (the book's way, the
    same for every seed). The same for every caller with the same arguments."""
    labels = labels[: len(labels) if originals is None else originals]
    if pick in ("first", "random"):
        if n > len(labels):
            raise GanstudyError(f"labelled: {n} labels asked, the training split has {len(labels)}")
        if pick == "first":
            return torch.arange(n)
        gen = torch.Generator().manual_seed(seed + LABELLED_SEED_OFFSET)
        return torch.randperm(len(labels), generator=gen)[:n].sort().values
    gen = torch.Generator().manual_seed(seed + LABELLED_SEED_OFFSET)
    classes = labels.cpu().unique()
    if n < len(classes):
        raise GanstudyError(f"labelled: {n} labels cannot cover {len(classes)} classes")
    picks = []
    for i, c in enumerate(classes):
        members = (labels.cpu() == c).nonzero().squeeze(1)  # (N_c,)
        want = n // len(classes) + (i < n % len(classes))
        if want > len(members):
            raise GanstudyError(f"labelled: class {int(c)} has only {len(members)} images")
        picks.append(members[torch.randperm(len(members), generator=gen)[:want]])
    return torch.cat(picks).sort().values


def _batch(
    data: torch.Tensor,
    labels: torch.Tensor | None,
    batch_size: int,
    z_dim: int,
    sampler: torch.Generator,
    labelled: torch.Tensor | None = None,
) -> Batch:
    """A real batch drawn with replacement, its labels (None without ``labels``), latent codes
    and, given the ``labelled`` indices (semi-supervised), a batch of those instead of labels."""
    index = torch.randint(len(data), (batch_size,), generator=sampler, device=data.device)
    z = torch.randn(batch_size, z_dim, generator=sampler, device=data.device)
    if labelled is None:
        return Batch(data[index], None if labels is None else labels[index], z)
    pick = labelled[
        torch.randint(len(labelled), (batch_size,), generator=sampler, device=data.device)
    ]
    return Batch(data[index], None, z, (data[pick], labels[pick]))


def noisy(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` plus N(0, std^2) noise from ``generator`` (the checkpointed sampler: resume stays
    exact); ``x`` itself, with no draw, at std 0. Keeps x's graph: G's gradient flows through."""
    if std == 0:
        return x
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def instance_noise_std(cfg: TrainConfig, step: int) -> float:
    """Instance-noise std at 0-based iteration ``step``: from cfg.instance_noise at the first
    iteration linearly down to 0 at the last (Sønderby et al. 2016; Arjovsky & Bottou 2017)."""
    return cfg.instance_noise * (1 - step / max(cfg.iterations - 1, 1))


def make_ema(G: torch.nn.Module, beta: float | None) -> AveragedModel | None:
    """EMA of G's parameters and buffers (BatchNorm statistics), or None when ``beta`` is None."""
    if beta is None:
        return None
    ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(beta), use_buffers=True)
    # Its first update copies; doing it now makes the average start at G's initial weights.
    ema.update_parameters(G)
    return ema


class DivergenceWatch:
    """The latest iteration's statistics and the first iteration with a non-finite one, kept on
    the device: reading a value waits for the device (a GPU stalls every iteration), so the loop
    records every iteration and reads only when it logs or checkpoints."""

    def __init__(self, device: torch.device) -> None:
        self.first_bad = torch.zeros((), dtype=torch.long, device=device)  # 0: none so far
        self.bad: torch.Tensor | None = None  # (S,) the tensor statistics of that iteration
        self.names: list[str] = []  # of the tensor statistics, in order
        self.latest: torch.Tensor | None = None  # (S,) the last recorded iteration's
        self.constants: dict[str, float] = {}  # Python-float statistics of that iteration
        self.order: list[str] = []  # every statistic's name, as the game returned them
        self.step = 0  # the last recorded iteration

    def record(self, step: int, stats: Stats) -> None:
        """Note iteration ``step``'s statistics (0-d tensors or floats) without reading them."""
        names = [k for k, v in stats.items() if isinstance(v, torch.Tensor)]
        if names != self.names and self.bad is not None:
            self.read(None)  # another set of names (no game of ours does that): settle first
            self.bad = None
        self.names, self.order, self.step = names, list(stats), step
        self.constants = {k: float(v) for k, v in stats.items() if k not in set(names)}
        if not names:
            self.latest = None
            return
        values = torch.stack([stats[k].detach().float().reshape(()) for k in names])  # (S,)
        new = ~values.isfinite().all() & (self.first_bad == 0)  # () bool: first bad iteration
        self.first_bad = torch.where(new, step, self.first_bad)
        self.bad = values if self.bad is None else torch.where(new, values, self.bad)  # (S,)
        self.latest = values

    def read(self, kept: Path | None) -> dict[str, float]:
        """The last recorded statistics as floats (waits for the device); GanstudyError naming
        the first iteration with a non-finite statistic, if any, and the checkpoint ``kept``."""
        first = int(self.first_bad)
        bad_floats = {k: v for k, v in self.constants.items() if not math.isfinite(v)}
        if first or bad_floats:
            values = dict(zip(self.names, self.bad.tolist(), strict=True)) if first else {}
            bad = {k: v for k, v in (values | bad_floats).items() if not math.isfinite(v)}
            raise GanstudyError(
                f"training diverged at iteration {first or self.step}: {bad}; last good checkpoint "
                f"{kept} is kept (lower the learning rate or change the game)"
            )
        latest = [] if self.latest is None else self.latest.tolist()
        values = dict(zip(self.names, latest, strict=True)) | self.constants
        return {k: values[k] for k in self.order}


def _check_players(
    variant: VariantConfig,
    G: torch.nn.Module,
    D: torch.nn.Module,
    game: Game,
    labels: torch.Tensor | None,
) -> bool:
    """Whether the run trains on labels; one clear error for a pairing that cannot train."""
    uses_labels = is_conditional(G) or is_conditional(D) or has_classifier(D) or translates(G)
    if uses_labels and labels is None:
        raise GanstudyError(f"architecture {variant.arch!r} trains on labels; none were given")
    if game.needs_classifier and not has_classifier(D):
        raise GanstudyError(
            f"game {variant.game!r} needs a D with an auxiliary classifier "
            f"(arch acgan or sgan), not {variant.arch!r}"
        )
    if variant.labelled is not None and not game.needs_labelled_batch:
        raise GanstudyError(
            f"variant `labelled` is for semi-supervised games (sgan), not {variant.game!r}"
        )
    return uses_labels or game.needs_labelled_batch


def _fixed_inputs(
    G: torch.nn.Module,
    n: int,
    seed: int,
    data: torch.Tensor,
    labels: torch.Tensor | None,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The sample grid's fixed latent codes, labels and (image-to-image G) source images."""
    z = _fixed_noise(n, G.z_dim, seed, data.device)
    if translates(G):  # the first training images of each domain, as many of each, translated
        per = max(n // num_classes, 1)
        index = torch.cat([(labels == d).nonzero().squeeze(1)[:per] for d in range(num_classes)])
        return z[: len(index)], labels[index], data[index]
    if labels is None:
        return z, None, None
    # 0, 1, ..., K-1, 0, 1, ... (book listing 8.7: one digit per class).
    return z, torch.arange(n, device=data.device) % num_classes, None


def train_gan(
    images: torch.Tensor,
    image: ImageSpec,
    variant_name: str,
    variant: VariantConfig,
    cfg: TrainConfig,
    seed: int,
    out_dir: str | Path,
    sink: Sink | None = None,
    on_samples: Callable[[int, torch.Tensor], None] | None = None,
    labels: torch.Tensor | None = None,
    originals: int | None = None,
    validate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
) -> TrainResult:
    """Train ``variant`` on ``images`` ((N, C, H, W) float in [-1, 1]), checkpointing in out_dir.
    ``labels`` (N,) int: the class of each image, needed by conditional architectures only.
    ``originals``: the first this many images are originals, the rest their augmented copies
    (semi-supervised labels are drawn from the originals); None: all are.
    ``validate(D)``: named scalars of D on held-out data (e.g. its class head's validation
    accuracy), logged every ``train.validate_every`` iterations and at the end; it must not
    change D nor draw from the global RNG.
    ``cfg`` is the `train` section; the variant's own train values override it."""
    out_dir = Path(out_dir)
    cfg = variant.train_config(cfg)
    device = resolve_device(cfg.device)
    make_deterministic(device)
    resolved = resolved_config(variant, cfg, seed, image, images, labels, originals)
    key = resume_key(resolved)

    # Construct networks, game and optimizers.
    torch.manual_seed(seed)
    G, D = variant_networks(variant_name, variant, image)
    G, D = G.to(device), D.to(device)
    if cfg.channels_last:  # in place: optimizers and state dicts see the same parameters
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    game = variant_game(variant_name, variant)
    uses_labels = _check_players(variant, G, D, game, labels)
    opt = variant.optimizer
    fused = device.type == "cuda"
    opt_G = make_optimizer(G.parameters(), opt.lr_g, opt, fused)
    has_d = any(True for _ in D.parameters())  # a non-adversarial baseline (VAE) has no D
    opt_D = make_optimizer(D.parameters(), opt.lr_d, opt, fused) if has_d else None
    data = images.to(device)
    if cfg.channels_last and data.dim() == 4:
        data = data.contiguous(memory_format=torch.channels_last)  # (N, C, H, W), NHWC in memory
    label_data = labels.to(device=device, dtype=torch.long) if uses_labels else None
    labelled = None
    if game.needs_labelled_batch:
        n = variant.labelled or len(images)
        labelled = labelled_subset(labels, n, seed, variant.labelled_pick, originals).to(device)
    sampler = torch.Generator(device=device).manual_seed(seed)
    fixed = _fixed_inputs(G, cfg.grid_size, seed, data, label_data, image.num_classes)
    ema = make_ema(G, cfg.ema_beta)
    G_eval = G if ema is None else ema.module  # sampled, returned (logged to MLflow) and scored
    timed = (G, D) if ema is None else (G, D, ema.module)  # networks that may change with time
    state = TrainingState(G, D, opt_G, opt_D, None if ema is None else ema.module, sampler, device)

    # Resume from the last checkpoint of the same config, if any.
    step, history = 0, []
    ckpt_path = out_dir / CHECKPOINT_NAME
    if ckpt_path.is_file():
        saved = load_checkpoint(ckpt_path)  # on CPU: RNG states must stay there
        if saved.get("resume_key") == key:
            state.load_state_dict(saved)
            step = saved["step"]
            history = _read_history(out_dir, step)
    out_dir.mkdir(parents=True, exist_ok=True)
    resumed_from = step
    # What evaluate reads to rebuild G, and what a resume must match.
    described = {
        "variant": variant_name,
        "arch": variant.arch,
        "arch_args": variant.arch_args,
        "game": variant.game,
        "image": resolved["image"],
        "z_dim": G.z_dim,
        "config": resolved,
        "resume_key": key,
    }

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, {**described, "step": step, **state.state_dict()})
        write_with(out_dir / HISTORY_NAME, lambda p: pd.DataFrame(history).to_csv(p, index=False))

    def update_d(loss: torch.Tensor) -> None:
        opt_D.zero_grad(set_to_none=True)
        loss.backward()
        opt_D.step()
        game.after_d_step(D)

    def update_g(loss: torch.Tensor) -> None:
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()

    # Optional speed-ups (GPU): compiled networks (in place: state-dict keys stay the same) and
    # bfloat16 autocast, which needs no loss scaling.
    if cfg.compile:
        G.compile()
        D.compile()
    bf16 = resolved["train"]["precision"] == "bf16"
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=bf16)

    # Train.
    G.train()
    D.train()
    watch = DivergenceWatch(device)
    bar = tqdm(
        total=cfg.iterations,
        initial=step,
        desc=f"train {variant_name} seed {seed}",
        unit="it",
        mininterval=2,
    )
    while step < cfg.iterations:
        set_progress(timed, step, cfg.iterations)
        std = instance_noise_std(cfg, step)  # one std per iteration, for D and G steps alike

        def noise(x: torch.Tensor, std: float = std) -> torch.Tensor:
            return noisy(x, std, sampler)

        stats: Stats = {}
        for i in range(game.d_steps):
            batch = _batch(data, label_data, cfg.batch_size, G.z_dim, sampler, labelled)
            # With reuse_fakes the last D step keeps its fakes' graph for G's step.
            batch.keep_fake = bool(game.reuse_fakes) and i == game.d_steps - 1
            with autocast:
                loss_d, d_stats = game.d_step(G, D, batch, noise, update_d)
            stats = {"Loss/D": loss_d.detach(), **d_stats}
        if not game.reuse_fakes:  # G's step on a fresh real batch and z
            batch = _batch(data, label_data, cfg.batch_size, G.z_dim, sampler, labelled)
        with autocast:
            loss_g, g_stats = game.g_step(G, D, batch, noise, update_g)
        if ema is not None:
            ema.update_parameters(G)
        step += 1
        set_progress(timed, step, cfg.iterations)  # what a checkpoint and a grid now show
        bar.update(1)

        stats |= {"Loss/G": loss_g.detach(), **g_stats}
        if cfg.instance_noise > 0:
            stats["Noise/instance_std"] = std
        watch.record(step, stats)  # stays on the device: no wait for it
        every = cfg.validate_every or cfg.sample_every
        validating = validate is not None and (step % every == 0 or step == cfg.iterations)
        log_now = validating or step % cfg.log_every == 0 or step == cfg.iterations
        checkpoint_now = step % cfg.checkpoint_every == 0 or step == cfg.iterations
        # Stop on divergence, keeping the last good checkpoint on disk: checked whenever the
        # statistics are read (logging) and before every checkpoint.
        if log_now or checkpoint_now:
            values = watch.read(ckpt_path)
        if validating:  # held-out scalars: the curve a run's length is chosen from
            values |= validate(D)
        if log_now:
            history.append({"step": step, **values})
            if sink is not None:
                sink(step, values)
        if checkpoint_now:
            checkpoint()
        if on_samples is not None and (step % cfg.sample_every == 0 or step == cfg.iterations):
            on_samples(step, _sample(G_eval, *fixed))
    bar.close()
    if resumed_from == cfg.iterations:  # nothing left to do; keep what is on disk
        history = _read_history(out_dir, step)
    return TrainResult(G_eval.eval(), step, pd.DataFrame(history), resumed_from)


@torch.no_grad()
def _sample(
    G: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None, source: torch.Tensor | None
) -> torch.Tensor:
    """G's grid images; for an image-to-image G, each source image beside its translation."""
    was_training = G.training
    G.eval()
    images = make_fakes(G, z, y, source)  # (n, C, H, W)
    G.train(was_training)
    if source is not None:  # (2n, C, H, W): source 0, translation 0, source 1, ...
        images = torch.stack([source, images], 1).flatten(0, 1)
    return images.cpu()


def _read_history(out_dir: Path, step: int) -> list[dict[str, Any]]:
    path = out_dir / HISTORY_NAME
    if not path.is_file():
        return []
    frame = read_csv(path, hint=RESTART.format(out_dir))
    return frame[frame["step"] <= step].to_dict("records")
