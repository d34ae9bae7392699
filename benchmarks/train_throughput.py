"""Benchmark: training throughput (images/s) of our ``train_gan`` vs a plain reference loop.

Both loops train the book's 28x28 DCGAN (``ganstudy.models.dcgan``'s Generator and
Discriminator, built by the registry as train_gan builds them: same architecture, initial
weights and parameter count) with the non-saturating cross-entropy game, Adam (lr 2e-4, betas
(0.5, 0.999)), fp32, one D step then one G step per iteration, in this one process, on the same
device, data, batch size and number of iterations:

- ours: ``ganstudy.training.loop.train_gan``: data on the device as one tensor, batches drawn
  with replacement by a seeded generator; the G step reuses the D step's fakes (game option
  ``reuse_fakes``, on by default: one G forward per iteration; ``--fresh-fakes`` draws a new batch
  and z for G as before, two G forwards); the game's statistics stay on the device and are read
  every ``log_every`` (= ``--warmup``) iterations; fused Adam on CUDA; ``--channels-last`` and
  ``--compile`` are our loop's train options.
- reference: a pytorch/examples ``dcgan/main.py``-style loop written here: ``TensorDataset`` +
  ``DataLoader(shuffle=True, num_workers=0, drop_last=True)`` on CPU, each batch moved to the
  device, ``nn.BCEWithLogitsLoss``, D on real then on the detached fake, G's step reusing that
  fake (one G forward per iteration), the examples' five logged scalars read with ``.item()``.

What is timed: each call runs ``--warmup`` iterations untimed, then the wall time of the next
``--iterations`` iterations is measured. For ours it is taken between two calls of train_gan's
``sink`` (at the end of iteration ``warmup`` and of the last iteration), so it excludes setup
(model construction, data digest), the warm-up and the final checkpoint write, which are reported
apart; only that one checkpoint is written (no intermediate checkpoints, no samples). Images/s
counts the real images D's steps consume: iterations * batch size. Calls alternate
ours/reference ``--repeats`` times; the medians and their ratio are printed.

    python benchmarks/train_throughput.py                    # defaults: a few minutes on 2 CPUs
    python benchmarks/train_throughput.py --iterations 20 --repeats 1   # a quick look
    python benchmarks/train_throughput.py --device cuda --data fashion-mnist
    python benchmarks/train_throughput.py --device cuda --precision bf16 --compile   # GPU speed-ups
    python benchmarks/train_throughput.py --channels-last --threads 2   # the CPU options

``--threads`` sets torch's intra-op threads for the whole process (both loops) before anything
runs; ``--channels-last``, ``--compile``, ``--precision`` and ``--fresh-fakes`` apply to ours only.

Timings on a shared machine vary; the load average is printed before and after. Images per
CPU second (the process's user + system time over the same iterations) vary less when other
jobs share the cores; with ``--threads 1`` they measure the work itself (with more threads, idle
OpenMP threads spin and add CPU time).
"""

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ganstudy.config import OptimizerConfig, TrainConfig, VariantConfig
from ganstudy.data.arrays import load_split, to_model_range
from ganstudy.models import ImageSpec, build_gan
from ganstudy.training.loop import resolve_device, train_gan

FASHION_MNIST = Path("data/processed/fashion-mnist")  # the prepare stage's output
IMAGE = ImageSpec(channels=1, size=28, num_classes=10)
ARCH, ARCH_ARGS = "dcgan", {"z_dim": 100}  # the 28x28 DCGAN of GANs in Action ch. 4
LR, BETAS = 2e-4, (0.5, 0.999)
NEVER = 10**9  # an interval no run reaches: only the final checkpoint is written


@dataclass
class Timing:
    seconds: float  # the timed iterations
    before: float  # untimed, before them: setup and warm-up
    after: float  # untimed, after them: for ours, the final checkpoint write
    cpu: float  # this process's CPU time (user + system) over the timed iterations


def training_images(source: str, n: int, seed: int) -> torch.Tensor:
    """(n, 1, 28, 28) float in [-1, 1]: uniform noise, or the first n Fashion-MNIST train images."""
    if source == "fashion-mnist":
        images, _ = load_split(FASHION_MNIST, "train")
        return to_model_range(images[:n])
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1


def time_ours(
    images: torch.Tensor,
    device: torch.device,
    batch_size: int,
    warmup: int,
    iterations: int,
    seed: int,
    precision: str = "fp32",
    compile: bool = False,
    channels_last: bool = False,
    fresh_fakes: bool = False,
) -> Timing:
    """One train_gan call of warmup + iterations steps in a fresh folder (no resume); our loop's
    bf16 autocast and torch.compile options when asked (compiling happens in the warm-up)."""
    variant = VariantConfig(
        arch=ARCH,
        arch_args=ARCH_ARGS,
        game="nonsaturating",
        game_args={"reuse_fakes": False} if fresh_fakes else {},
        optimizer=OptimizerConfig(lr_g=LR, lr_d=LR, betas=BETAS),
    )
    cfg = TrainConfig(
        iterations=warmup + iterations,
        batch_size=batch_size,
        log_every=warmup,  # the sink fires at the end of the warm-up (and every warmup steps)
        sample_every=NEVER,  # no on_samples callback is passed anyway
        checkpoint_every=NEVER,
        grid_size=16,
        device=str(device),
        precision=precision,
        compile=compile,
        channels_last=channels_last,
    )
    stamps: dict[int, float] = {}
    cpu: dict[int, float] = {}

    def sink(step: int, stats: dict[str, float]) -> None:
        # The loop has just read its statistics from the device: CUDA work is done.
        stamps[step] = time.perf_counter()
        cpu[step] = time.process_time()

    with tempfile.TemporaryDirectory(prefix="train_throughput.") as out_dir:
        start = time.perf_counter()
        # The progress bar still runs (part of the loop's cost) but writes into a buffer.
        with contextlib.redirect_stderr(io.StringIO()):
            train_gan(images, IMAGE, "dcgan", variant, cfg, seed, out_dir, sink=sink)
        end = time.perf_counter()
    first, last = stamps[warmup], stamps[warmup + iterations]
    cpu_time = cpu[warmup + iterations] - cpu[warmup]
    return Timing(last - first, first - start, end - last, cpu_time)


def time_reference(
    images: torch.Tensor,
    device: torch.device,
    batch_size: int,
    warmup: int,
    iterations: int,
    seed: int,
) -> Timing:
    """A pytorch/examples dcgan/main.py-style loop over a shuffling DataLoader."""
    start = time.perf_counter()
    torch.manual_seed(seed)  # as train_gan: the same initial weights
    netG, netD = build_gan(ARCH, IMAGE, ARCH_ARGS)  # the same call as in train_gan
    netG, netD = netG.to(device), netD.to(device)
    criterion = nn.BCEWithLogitsLoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=LR, betas=BETAS)
    optimizerG = torch.optim.Adam(netG.parameters(), lr=LR, betas=BETAS)
    loader = DataLoader(
        TensorDataset(images),
        batch_size=batch_size,
        shuffle=True,
        num_workers=0,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    real_label, fake_label = 1.0, 0.0
    netG.train()
    netD.train()

    def batches() -> Iterator[list[torch.Tensor]]:  # the DataLoader, epoch after epoch
        while True:
            yield from loader

    data = batches()
    first = start
    for i in range(warmup + iterations):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            first, first_cpu = time.perf_counter(), time.process_time()
        (real_cpu,) = next(data)
        real = real_cpu.to(device)  # (B, 1, 28, 28)
        b_size = real.size(0)

        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        label = torch.full((b_size,), real_label, device=device)
        output = netD(real)  # (B,) logits
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.sigmoid().mean().item()
        noise = torch.randn(b_size, netG.z_dim, device=device)  # (B, z_dim)
        fake = netG(noise)  # (B, 1, 28, 28)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.sigmoid().mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()

        # (2) Update G network: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.sigmoid().mean().item()
        optimizerG.step()
        # What the examples print every iteration; read, not printed.
        _logged = (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    last = time.perf_counter()
    return Timing(last - first, first - start, 0.0, time.process_time() - first_cpu)


def report(
    name: str, timings: list[Timing], images: int, after: str | None = None
) -> tuple[float, float]:
    """Print the images/s of each run, their median, the images per CPU second and the untimed
    parts; return the medians of images/s and images per CPU second."""
    rates = [images / t.seconds for t in timings]
    median = statistics.median(rates)
    print(
        f"  {name:<21} median {median:8.1f} images/s   runs: {', '.join(f'{r:.1f}' for r in rates)}"
    )
    per_cpu = [images / t.cpu for t in timings]
    cpu_median = statistics.median(per_cpu)
    print(
        f"  {'':<21} median {cpu_median:8.1f} images/CPU-s   runs: "
        + ", ".join(f"{r:.1f}" for r in per_cpu)
    )
    untimed = f"setup + warm-up {statistics.median(t.before for t in timings):.3f} s"
    if after is not None:
        untimed += f", {after} {statistics.median(t.after for t in timings):.3f} s"
    print(f"    untimed, median: {untimed}")
    return median, cpu_median


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--iterations", type=int, default=100, help="timed iterations per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed iterations first (>= 1)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each loop, interleaved")
    parser.add_argument("--data", choices=["random", "fashion-mnist"], default="random")
    parser.add_argument("--images", type=int, default=10_000, help="training images")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, models and batches")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="ours only")
    parser.add_argument("--compile", action="store_true", help="torch.compile our G and D")
    parser.add_argument("--channels-last", action="store_true", help="ours: NHWC G, D and data")
    parser.add_argument(
        "--fresh-fakes", action="store_true", help="ours: a new batch and z for G (2 G forwards)"
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if min(args.iterations, args.warmup, args.batch_size, args.repeats, args.images) < 1:
        parser.error("--iterations, --warmup, --batch-size, --repeats, --images must be >= 1")
    if args.images < args.batch_size:
        parser.error("--images must be >= --batch-size (the DataLoader drops the last batch)")

    device = resolve_device(args.device)
    images = training_images(args.data, args.images, args.seed)
    n_g, n_d = (
        sum(p.numel() for p in net.parameters()) for net in build_gan(ARCH, IMAGE, ARCH_ARGS)
    )
    per_run = args.iterations * args.batch_size  # real images seen by D steps

    print(
        f"torch {torch.__version__}, device {device}, torch threads {torch.get_num_threads()} "
        f"(interop {torch.get_num_interop_threads()}), {os.cpu_count()} CPU(s)"
    )
    print(f"load average (1/5/15 min) before: {load()}")
    print(
        f"data: {args.data}, {len(images):,} x 1 x 28 x 28 in [-1, 1]; batch {args.batch_size}; "
        f"{args.warmup} warm-up + {args.iterations} timed iterations per run; "
        f"{args.repeats} run(s) of each loop, interleaved"
    )
    print(
        f"model: dcgan G {n_g:,} / D {n_d:,} params in both loops; non-saturating BCE on logits; "
        f"Adam lr {LR:g} betas {BETAS}; reference fp32; ours {args.precision}"
        + (", compiled" if args.compile else "")
        + (", channels_last" if args.channels_last else "")
        + (", fresh fakes (2 G forwards)" if args.fresh_fakes else ", reused fakes (1 G forward)")
    )
    print(
        f"timed: {args.iterations} iterations after the warm-up = {per_run:,} real images per run; "
        "ours excludes setup, warm-up and the final checkpoint write (shown apart)"
    )

    ours: list[Timing] = []
    reference: list[Timing] = []
    for _ in range(args.repeats):
        run = (images, device, args.batch_size, args.warmup, args.iterations, args.seed)
        ours.append(
            time_ours(*run, args.precision, args.compile, args.channels_last, args.fresh_fakes)
        )
        reference.append(time_reference(*run))

    ours_median = report("ours (train_gan)", ours, per_run, "final checkpoint + return")
    ref_median = report("reference (examples)", reference, per_run)
    print(
        f"  ratio ours/reference (medians): {ours_median[0] / ref_median[0]:.3f} wall, "
        f"{ours_median[1] / ref_median[1]:.3f} CPU time"
    )
    print(f"load average (1/5/15 min) after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
