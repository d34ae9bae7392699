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

A per-class variant (``per_class: true``, Frid-Adar et al.'s generator per class) trains each
class as the train stage does (class k alone, seed ``class_seed(seed, k)``); a copy of step N
holds every class's generator and is scored like a per-class run. Conditional and per-class
copies also get per-class FID (``..._class<k>``, ``..._classmean``).

Outputs in ``--out``: ``step<N>/`` (the copies), ``times.json`` (wall seconds from the start of
training at each copy; per class: summed over classes), ``curve.csv`` (one row per copy: FID,
per-class FID, KID, precision and recall against val and test), ``curve.png`` and
``choices.csv``: for each validation FID column, the first copy whose smoothed FID is within
``--tolerance`` of its minimum (``ganstudy.stats.choose_length`` on -log FID). Choose the length
on the validation split; the test split is the study's reported one. Scoring resumes: copies
already in curve.csv are skipped.
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
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ganstudy.config import TrainConfig, VariantConfig, load_section, load_variant  # noqa: E402
from ganstudy.data.arrays import load_split, read_manifest, to_model_range  # noqa: E402
from ganstudy.errors import GanstudyError  # noqa: E402
from ganstudy.io import copy_into, read_csv, write_json, write_with  # noqa: E402
from ganstudy.metrics.evaluate import generate, score  # noqa: E402
from ganstudy.models import ImageSpec  # noqa: E402
from ganstudy.stats import choose_length  # noqa: E402
from ganstudy.training.checkpoint import CHECKPOINT_NAME  # noqa: E402
from ganstudy.training.loop import resolve_device, resolved_config, train_gan  # noqa: E402
from ganstudy.training.run import (  # noqa: E402
    PER_CLASS_FILE,
    class_folder,
    class_seed,
    original_count,
)

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
    labels = torch.as_tensor(y, dtype=torch.long)  # (N,)
    image = ImageSpec(images.shape[1], images.shape[2], len(manifest["classes"]))
    if not variant.per_class:
        originals = original_count(manifest, len(x))
        times = _train_copying(
            args, out, Path(), images, image, variant, cfg, args.seed, labels, originals
        )
        write_json(out / "times.json", {str(k): round(v, 1) for k, v in times.items()})
        return
    # A per-class run (Frid-Adar et al.: a generator per class) as the train stage makes it:
    # class k on its images alone with seed class_seed(seed, k); a copy of step N holds every
    # class's step-N generator and the per_class.json the evaluate stage reads.
    total: dict[int, float] = {}
    classes = list(range(len(manifest["classes"])))
    for k in classes:
        folder = Path(class_folder(k))
        subset = images[labels == k]  # (N_k, C, H, W)
        times = _train_copying(
            args, out, folder, subset, image, variant, cfg, class_seed(args.seed, k)
        )
        total = {s: total.get(s, 0.0) + t for s, t in times.items()}  # N iterations of each class
    info = {"seed": args.seed, "classes": classes, "folders": [class_folder(k) for k in classes]}
    resolved = resolved_config(variant, cfg, args.seed, image, images)
    for step_dir in out.glob("step*"):
        write_json(step_dir / PER_CLASS_FILE, info)
        write_json(step_dir / "config.json", resolved)
    write_json(out / "times.json", {str(k): round(v, 1) for k, v in total.items()})


def _train_copying(
    args: argparse.Namespace,
    out: Path,
    folder: Path,
    images: torch.Tensor,
    image: ImageSpec,
    variant: VariantConfig,
    cfg: TrainConfig,
    seed: int,
    labels: torch.Tensor | None = None,
    originals: int | None = None,
) -> dict[int, float]:
    """One ``train_gan`` run in ``out/run/<folder>``, its checkpoint copied to
    ``out/step<N>/<folder>`` every ``args.every`` iterations; wall seconds at each copy."""
    run_dir, times = out / "run" / folder, {}
    start = time.perf_counter()

    def sink(step: int, _: dict[str, float]) -> None:
        # The loop writes its checkpoint right after the sink of the same step; copy it then
        # (on_samples below), here only note the time.
        times[step] = time.perf_counter() - start

    def copy(step: int, _images: object) -> None:
        if step % args.every == 0:
            target = out / f"step{step:06d}" / folder / CHECKPOINT_NAME
            copy_into(run_dir / CHECKPOINT_NAME, target)
            print(f"{folder} step {step}: {times.get(step, float('nan')):.0f} s", flush=True)

    train_gan(
        images,
        image,
        args.variant,
        variant,
        cfg,
        seed,
        run_dir,
        sink=sink,
        on_samples=copy,
        labels=labels,
        originals=originals,
    )
    return times


def score_copies(args: argparse.Namespace, out: Path) -> pd.DataFrame:
    csv = out / "curve.csv"
    done = read_csv(csv) if csv.is_file() else pd.DataFrame({"step": []})
    rows = done.to_dict("records")
    seen = set(done["step"].astype(int))
    ev = load_section("evaluate", args.params)
    dataset = load_section("download", args.params).dataset
    reference = Path(load_section("paths", args.params).reference) / dataset
    device = resolve_device(ev.device)
    # A copy is complete once its checkpoint (one model) or per_class.json (every class) is in.
    copies = sorted(
        d
        for d in out.glob("step*")
        if (d / CHECKPOINT_NAME).is_file() or (d / PER_CLASS_FILE).is_file()
    )
    if not copies:
        raise GanstudyError(
            f"{out}: no step*/{CHECKPOINT_NAME}; train first (without --score-only)"
        )
    for step_dir in copies:
        step = int(step_dir.name[4:])
        if step in seen:
            continue
        images, state = generate(step_dir, ev.num_samples, ev.batch_size, device)
        labels = state.get("sample_labels")  # (N,) of a conditional or per-class run: per-class FID
        row = {"step": step}
        for split in SPLITS:
            cfg = ev.model_copy(update={"reference_split": split})
            metrics, _ = score(images, reference, cfg, device, labels)
            row |= {k: v for k, v in metrics.items() if k.startswith(KEPT)}
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
    for column in _class_columns(frame):  # per-class generators: each class's own curve
        ax.plot(frame["step"], frame[column], ":", lw=1, label=column.rsplit("_", 1)[1])
    ax.set_xlabel("generator updates (train.iterations)")
    ax.set_ylabel("FID")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    write_with(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def _class_columns(frame: pd.DataFrame) -> list[str]:
    """The per-class validation FID columns (``..._val_class<k>``), classes ascending."""
    return sorted(
        c
        for c in frame.columns
        if c.startswith("fid_") and "_val_class" in c and not c.endswith("classmean")
    )


def choose(frame: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """A length for each validation FID column (the whole set, each class): the first copy whose
    smoothed log FID is within ``tolerance`` (relative) of its minimum (``choose_length`` on
    -log FID). The test columns choose nothing."""
    rows = []
    columns = [c for c in frame.columns if c.startswith("fid_") and "_val" in c]
    for column in columns:
        values = frame[["step", column]].dropna()
        choice = choose_length(
            values["step"], -np.log(values[column]), np.log1p(tolerance), what="-log FID"
        )
        rows.append(
            {
                "curve": column,
                "length": choice.steps,
                "fid_at_length": float(np.exp(-choice.value)),
                "best_step": choice.best_step,
                "best_fid": float(np.exp(-choice.best)),
                "rule": f"{choice.rule} (FID within {tolerance:.0%} of its smoothed minimum)",
            }
        )
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="dcgan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=6000, help="length of the long run")
    parser.add_argument("--every", type=int, default=500, help="iterations between copies")
    parser.add_argument("--out", required=True, help="folder for copies, CSV and PNG")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--score-only", action="store_true", help="score the copies there")
    parser.add_argument(
        "--tolerance", type=float, default=0.05, help="length: FID within this of its minimum"
    )
    args = parser.parse_args(argv)
    if min(args.iterations, args.every) < 1 or args.every > args.iterations:
        parser.error("--iterations and --every must be >= 1, --every <= --iterations")
    out = Path(args.out)
    try:
        if not args.score_only:
            train_with_copies(args, out)
        frame = score_copies(args, out)
        plot(frame, out / "curve.png", f"{args.variant}, seed {args.seed}: FID vs iterations")
        choices = choose(frame, args.tolerance)
    except GanstudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    write_with(out / "choices.csv", lambda p: choices.to_csv(p, index=False))
    print(frame.to_string(index=False))
    print(choices.drop(columns="rule").to_string(index=False))
    if not choices.empty:
        print(f"rule: {choices['rule'].iloc[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
