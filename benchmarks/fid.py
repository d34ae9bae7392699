"""Benchmark: our FID path vs pytorch-fid's, and domain-classifier feature throughput.

Both FID paths run in this one process on the same random float32 feature sets (what a network
returns): ours is ``gaussian_stats`` + ``frechet_distance`` (symmetric eigendecompositions);
pytorch-fid's is ``np.mean``/``np.cov`` as in its ``calculate_activation_statistics`` +
``calculate_frechet_distance`` (``scipy.linalg.sqrtm``). The two values must agree to 1e-6
relative, or the script exits with status 1.

    python benchmarks/fid.py                      # 2048-d, 5000 samples (the reference: minutes)
    python benchmarks/fid.py --dim 256 --n 1000   # a quick look
    python benchmarks/fid.py --device cuda --precision fp16   # features under fp16 autocast

The throughput runs the evaluate stage's own ``Backbone.extract`` (batching, float64 copy to
the host) in ``--precision`` (``evaluate.feature_precision``; fp16 needs CUDA). Timings on a
shared machine vary; the script reports the best and median of the repeats.
"""

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy
import torch

from ganstudy._torchvision import ensure_torchvision_imports
from ganstudy.errors import GanstudyError
from ganstudy.metrics.backbones import PRECISIONS, domain_backbone
from ganstudy.metrics.domain import DomainClassifier
from ganstudy.metrics.fid import frechet_distance, gaussian_stats

TOLERANCE = 1e-6  # relative agreement required between the two FID paths


def timed(fn: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    """The value of ``fn()`` and its wall times (seconds) over ``repeats`` calls."""
    times, value = [], float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return value, times


def describe(times: list[float]) -> str:
    median = statistics.median(times)
    return f"best {min(times):8.3f} s   median {median:8.3f} s   ({len(times)} run(s))"


def feature_sets(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (n, dim) float32 feature sets with different non-diagonal covariances and means."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)  # (D, D): correlates the features
    real = rng.normal(size=(n, dim)) @ mix  # (N, D)
    fake = rng.normal(size=(n, dim)) @ (1.1 * mix) + 0.05  # (N, D)
    return real.astype(np.float32), fake.astype(np.float32)


def ours(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def pytorch_fid(real: np.ndarray, fake: np.ndarray) -> float:
    ensure_torchvision_imports()  # pytorch-fid imports torchvision: the CPU torch needs this
    from pytorch_fid.fid_score import calculate_frechet_distance

    # The statistics exactly as pytorch-fid's calculate_activation_statistics computes them.
    mu1, sigma1 = np.mean(real, axis=0), np.cov(real, rowvar=False)
    mu2, sigma2 = np.mean(fake, axis=0), np.cov(fake, rowvar=False)
    with warnings.catch_warnings():  # pytorch-fid 0.3.0 passes scipy's deprecated `disp`
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def classifier_throughput(
    n: int, batch_size: int, repeats: int, device: str, precision: str
) -> list[float]:
    """Wall times of the domain backbone's ``extract`` on n random 28x28x1 images with a
    randomly initialised model, in ``precision``."""
    torch.manual_seed(0)
    model = DomainClassifier(channels=1, num_classes=10, feature_dim=128).to(device).eval()
    net = domain_backbone(model).set_precision(precision)
    images = torch.rand(n, 1, 28, 28) * 2 - 1  # (N, 1, 28, 28) in [-1, 1]
    net.extract(images[:batch_size], batch_size)  # warm-up: allocator, kernels
    return timed(lambda: float(len(net.extract(images, batch_size)[0])), repeats)[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
    parser.add_argument("--n", type=int, default=5000, help="samples per feature set")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of our FID path")
    parser.add_argument(
        "--reference-repeats",
        type=int,
        default=1,
        help="timed runs of pytorch-fid's path (sqrtm at 2048-d: 1-2 min each on 2 cores)",
    )
    parser.add_argument("--images", type=int, default=5000, help="images for the throughput")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cpu", help="device of the domain classifier")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="feature extraction precision (fp16: CUDA autocast, --device cuda)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.precision == "fp16" and not args.device.startswith("cuda"):
        parser.error("--precision fp16 runs under CUDA autocast: add --device cuda")

    print(
        f"numpy {np.__version__}, scipy {scipy.__version__}, torch {torch.__version__}; "
        f"{os.cpu_count()} CPU(s), torch threads {torch.get_num_threads()}"
    )
    real, fake = feature_sets(args.n, args.dim, args.seed)
    print(f"FID: two float32 feature sets of {args.n} x {args.dim}")
    value, fast_times = timed(lambda: ours(real, fake), args.repeats)
    print(f"  ours (eigh)          {describe(fast_times)}   FID {value:.10g}")
    reference, ref_times = timed(lambda: pytorch_fid(real, fake), args.reference_repeats)
    print(f"  pytorch-fid (sqrtm)  {describe(ref_times)}   FID {reference:.10g}")
    rel = abs(value - reference) / max(abs(reference), np.finfo(np.float64).tiny)
    print(f"  speed-up (best/best) {min(ref_times) / min(fast_times):.1f}x")
    print(f"  relative difference  {rel:.2e} ({'ok' if rel <= TOLERANCE else 'FAILED'}: <= 1e-6)")

    try:
        times = classifier_throughput(
            args.images, args.batch_size, args.repeats, args.device, args.precision
        )
    except GanstudyError as err:
        parser.error(str(err))
    print(
        f"domain classifier extract() on {args.images} 28x28x1 images ({args.device}, "
        f"{args.precision}, batch {args.batch_size}): {describe(times)}   "
        f"{args.images / min(times):,.0f} features/s"
    )
    return 0 if rel <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
