"""FID vs training length of one variant: the curve a study's ``train.iterations`` is chosen from.

One ``train_gan`` run of ``--variant`` (params.yaml's settings, ``train.iterations`` replaced by
``--iterations``) whose checkpoint is copied every ``--every`` iterations; each copy is then scored
as the evaluate stage scores a run (``evaluate`` section: samples, backbone, batch size) against
the reference stage's validation and test splits. A run of N iterations is the same as the first
N iterations of the long run (nothing in the dcgan loop depends on the total length unless
``train.instance_noise`` is on, which this script refuses), so one run gives the whole curve.

Run from a repository whose augment and reference stages are up to date (``dvc repro augment
reference``):

    python benchmarks/fid_curve.py --iterations 6000 --every 500 --out /tmp/curve
    python benchmarks/fid_curve.py --out /tmp/curve --score-only      # score new copies only

Outputs in ``--out``: ``step<N>/checkpoint.pt`` (the copies), ``times.json`` (wall seconds from
the start of training at each copy), ``curve.csv`` (one row per copy: FID, KID, precision and
recall against val and test) and ``curve.png``. Choose the length on the validation split; the
test split is the study's reported one. Scoring resumes: copies already in curve.csv are skipped.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ganstudy.config import load_section, load_variant  # noqa: E402
from ganstudy.data.arrays import load_split, read_manifest, to_model_range  # noqa: E402
from ganstudy.errors import GanstudyError  # noqa: E402
from ganstudy.io import copy_into, read_csv, write_json, write_with  # noqa: E402
from ganstudy.metrics.evaluate import generate, score  # noqa: E402
from ganstudy.models import ImageSpec  # noqa: E402
from ganstudy.training.checkpoint import CHECKPOINT_NAME  # noqa: E402
from ganstudy.training.loop import resolve_device, train_gan  # noqa: E402

SPLITS = ("val", "test")
KEPT = ("fid_", "kid_", "precision_", "recall_")  # metric families kept in the CSV


def train_with_copies(args: argparse.Namespace, out: Path) -> None:
    dataset = load_section("download", args.params).dataset
    data_dir = Path(load_section("paths", args.params).augmented) / dataset
    variant = load_variant(args.variant, args.params)
    every = {"checkpoint_every": args.every, "sample_every": args.every, "log_every": args.every}
    cfg = variant.train_config(load_section("train", args.params))  # the variant's own values
    cfg = cfg.model_copy(update={"iterations": args.iterations, **every})
    if cfg.instance_noise > 0:
        raise GanstudyError("instance noise anneals over the whole run: one run is not a curve")
    manifest = read_manifest(data_dir)
    x, y = load_split(data_dir, "train")
    images = to_model_range(x)  # (N, C, H, W) in [-1, 1]
    image = ImageSpec(images.shape[1], images.shape[2], len(manifest["classes"]))
    run_dir, times = out / "run", {}
    start = time.perf_counter()

    def sink(step: int, _: dict[str, float]) -> None:
        # The loop writes its checkpoint right after the sink of the same step; copy it then
        # (on_samples below), here only note the time.
        times[step] = time.perf_counter() - start

    def copy(step: int, _images: object) -> None:
        if step % args.every == 0:
            copy_into(run_dir / CHECKPOINT_NAME, out / f"step{step:06d}" / CHECKPOINT_NAME)
            print(f"step {step}: {times.get(step, float('nan')):.0f} s", flush=True)

    train_gan(
        images, image, args.variant, variant, cfg, args.seed, run_dir, sink=sink, on_samples=copy
    )
    write_json(out / "times.json", {str(k): round(v, 1) for k, v in times.items()})


def score_copies(args: argparse.Namespace, out: Path) -> pd.DataFrame:
    csv = out / "curve.csv"
    done = read_csv(csv) if csv.is_file() else pd.DataFrame({"step": []})
    rows = done.to_dict("records")
    seen = set(done["step"].astype(int))
    ev = load_section("evaluate", args.params)
    dataset = load_section("download", args.params).dataset
    reference = Path(load_section("paths", args.params).reference) / dataset
    device = resolve_device(ev.device)
    copies = sorted(out.glob("step*/" + CHECKPOINT_NAME))
    if not copies:
        raise GanstudyError(
            f"{out}: no step*/{CHECKPOINT_NAME}; train first (without --score-only)"
        )
    for path in copies:
        step = int(path.parent.name[4:])
        if step in seen:
            continue
        images, state = generate(path.parent, ev.num_samples, ev.batch_size, device)
        row = {"step": step}
        for split in SPLITS:
            metrics, _ = score(
                images, reference, ev.model_copy(update={"reference_split": split}), device
            )
            row |= {k: v for k, v in metrics.items() if k.startswith(KEPT) and "class" not in k}
        print(json.dumps(row), flush=True)
        rows.append(row)
        frame = pd.DataFrame(rows).sort_values("step")
        write_with(csv, lambda p, f=frame: f.to_csv(p, index=False))  # after each: resumable
    return pd.DataFrame(rows).sort_values("step")


def plot(frame: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for split, style in zip(SPLITS, ("o-", "s--"), strict=True):
        column = next(
            (c for c in frame.columns if c.startswith("fid_") and c.endswith(split)), None
        )
        if column is not None:
            ax.plot(frame["step"], frame[column], style, label=f"{column}")
    ax.set_xlabel("generator updates (train.iterations)")
    ax.set_ylabel("FID")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    write_with(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="dcgan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=6000, help="length of the long run")
    parser.add_argument("--every", type=int, default=500, help="iterations between copies")
    parser.add_argument("--out", required=True, help="folder for copies, CSV and PNG")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--score-only", action="store_true", help="score the copies there")
    args = parser.parse_args(argv)
    if min(args.iterations, args.every) < 1 or args.every > args.iterations:
        parser.error("--iterations and --every must be >= 1, --every <= --iterations")
    out = Path(args.out)
    try:
        if not args.score_only:
            train_with_copies(args, out)
        frame = score_copies(args, out)
        plot(frame, out / "curve.png", f"{args.variant}, seed {args.seed}: FID vs iterations")
    except GanstudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(frame.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
