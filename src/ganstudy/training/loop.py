"""The training loop: variant-agnostic, resumable, deterministic for a seed on one device.

The loop owns time (iterations, logging, sampling, checkpoints); the game owns the objective.
Training data live on the device as one tensor; batches are drawn with replacement, as in the
book, by a seeded generator whose state is checkpointed with everything else.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from ganstudy.config import OptimizerConfig, TrainConfig, VariantConfig
from ganstudy.errors import GanstudyError
from ganstudy.io import write_with
from ganstudy.losses import build_game
from ganstudy.models import ImageSpec, build_gan
from ganstudy.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    resume_key,
    save_checkpoint,
    tensor_digest,
)

Sink = Callable[[int, dict[str, float]], None]  # (iteration, named scalars) -> None
HISTORY_NAME = "history.csv"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GanstudyError(
            f"device {name!r} requested but CUDA is not available (use auto or cpu)"
        )
    return torch.device(name)


@dataclass
class TrainResult:
    G: torch.nn.Module
    step: int
    history: pd.DataFrame
    resumed_from: int  # 0 for a fresh start


def resolved_config(
    variant: VariantConfig, cfg: TrainConfig, seed: int, image: ImageSpec, images: torch.Tensor
) -> dict:
    """Everything that determines a training run, the training data's digest included."""
    return {
        "variant": variant.model_dump(mode="json"),
        "train": cfg.model_dump(mode="json"),
        "seed": seed,
        "image": [image.channels, image.size, image.num_classes],
        "data_digest": tensor_digest(images),
    }


def make_optimizer(
    params: Iterable[torch.nn.Parameter], lr: float, cfg: OptimizerConfig, fused: bool
) -> torch.optim.Optimizer:
    """The optimizer ``cfg.name`` at learning rate ``lr``; ``fused`` asks for the CUDA kernel."""
    if cfg.name == "rmsprop":  # no fused kernel for RMSprop
        return torch.optim.RMSprop(params, lr, eps=cfg.eps)
    return torch.optim.Adam(params, lr, betas=cfg.betas, eps=cfg.eps, fused=fused)


def _fixed_noise(n: int, z_dim: int, seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 10_000)  # one fixed grid per seed, CPU-drawn
    return torch.randn(n, z_dim, generator=gen).to(device)


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
) -> TrainResult:
    """Train ``variant`` on ``images`` ((N, C, H, W) float in [-1, 1]), checkpointing in out_dir."""
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    resolved = resolved_config(variant, cfg, seed, image, images)
    key = resume_key(resolved)

    # Construct networks, game and optimizers.
    torch.manual_seed(seed)
    G, D = build_gan(variant.arch, image, variant.arch_args)
    G, D = G.to(device), D.to(device)
    game = build_game(variant.game, variant.game_args)
    opt = variant.optimizer
    fused = device.type == "cuda"
    opt_G = make_optimizer(G.parameters(), opt.lr_g, opt, fused)
    opt_D = make_optimizer(D.parameters(), opt.lr_d, opt, fused)
    data = images.to(device)
    sampler = torch.Generator(device=device).manual_seed(seed)
    fixed_z = _fixed_noise(cfg.grid_size, G.z_dim, seed, device)

    # Resume from the last checkpoint of the same config, if any.
    step, history = 0, []
    ckpt_path = out_dir / CHECKPOINT_NAME
    if ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)  # on CPU: RNG states must stay there
        if state.get("resume_key") == key:
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
            opt_G.load_state_dict(state["opt_G"])
            opt_D.load_state_dict(state["opt_D"])
            torch.set_rng_state(state["rng_cpu"])
            sampler.set_state(state["rng_sampler"])
            step = state["step"]
            history = _read_history(out_dir, step)
    out_dir.mkdir(parents=True, exist_ok=True)
    resumed_from = step

    def checkpoint() -> None:
        save_checkpoint(
            ckpt_path,
            {
                "variant": variant_name,
                "arch": variant.arch,
                "arch_args": variant.arch_args,
                "game": variant.game,
                "image": resolved["image"],
                "z_dim": G.z_dim,
                "config": resolved,
                "resume_key": key,
                "step": step,
                "G": G.state_dict(),
                "D": D.state_dict(),
                "opt_G": opt_G.state_dict(),
                "opt_D": opt_D.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_sampler": sampler.get_state(),
            },
        )
        write_with(out_dir / HISTORY_NAME, lambda p: pd.DataFrame(history).to_csv(p, index=False))

    # Train.
    G.train()
    D.train()
    bar = tqdm(
        total=cfg.iterations,
        initial=step,
        desc=f"train {variant_name} seed {seed}",
        unit="it",
        mininterval=2,
    )
    while step < cfg.iterations:
        for _ in range(game.d_steps):
            real = data[
                torch.randint(len(data), (cfg.batch_size,), generator=sampler, device=device)
            ]
            z = torch.randn(cfg.batch_size, G.z_dim, generator=sampler, device=device)
            with torch.no_grad():
                fake = G(z)
            loss_d, d_stats = game.d_loss(D, real, fake)
            opt_D.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_D.step()
            game.after_d_step(D)
        real = data[torch.randint(len(data), (cfg.batch_size,), generator=sampler, device=device)]
        z = torch.randn(cfg.batch_size, G.z_dim, generator=sampler, device=device)
        loss_g, g_stats = game.g_loss(D, G(z), real)
        opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_G.step()
        step += 1
        bar.update(1)

        # Stop on divergence, keeping the last good checkpoint on disk.
        stats = {"Loss/D": loss_d.item(), "Loss/G": loss_g.item(), **d_stats, **g_stats}
        if not all(math.isfinite(v) for v in stats.values()):
            bad = {k: v for k, v in stats.items() if not math.isfinite(v)}
            raise GanstudyError(
                f"training diverged at iteration {step}: {bad}; last good checkpoint "
                f"{ckpt_path} is kept (lower the learning rate or change the game)"
            )
        if step % cfg.log_every == 0 or step == cfg.iterations:
            history.append({"step": step, **stats})
            if sink is not None:
                sink(step, stats)
        if step % cfg.checkpoint_every == 0 or step == cfg.iterations:
            checkpoint()
        if on_samples is not None and (step % cfg.sample_every == 0 or step == cfg.iterations):
            on_samples(step, _sample(G, fixed_z))
    bar.close()
    if resumed_from == cfg.iterations:  # nothing left to do; keep what is on disk
        history = _read_history(out_dir, step)
    return TrainResult(G.eval(), step, pd.DataFrame(history), resumed_from)


@torch.no_grad()
def _sample(G: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    was_training = G.training
    G.eval()
    images = G(z).cpu()
    G.train(was_training)
    return images


def _read_history(out_dir: Path, step: int) -> list[dict[str, Any]]:
    path = out_dir / HISTORY_NAME
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return frame[frame["step"] <= step].to_dict("records")
