"""Results pages: a study's answer, committed under ``docs/results/<study>/``.

``ganstudy study publish <name> --size S [--size S ...]`` builds ``docs/results/<name>/index.md``
from what the study's executions left on disk (metrics, run folders, manifests), with the
report code: the study's design, then for each size its section (tables, paired tests with the
smallest detectable difference, published numbers beside ours), the validation curves its
lengths are chosen from, and how it was made (command, git commit, params digest, machine,
training time). Nothing is trained or scored here. The Markdown is written with the report's
page builder (``ganstudy.pages.Page``).
"""

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganstudy.config import Params
from ganstudy.errors import GanstudyError
from ganstudy.io import atomic_dir, read_csv, read_json, write_text
from ganstudy.names import (
    HEAD_VAL_METRIC,
    HISTORY_NAME,
    MANIFEST_NAME,
    PER_CLASS_FILE,
    TIMING_FILE,
)
from ganstudy.pages import Page
from ganstudy.plots import save_validation_curves
from ganstudy.report import collect_runs
from ganstudy.stats import choose_length, mean_ci
from ganstudy.study.pages import study_section
from ganstudy.study.studies import Study, load_study, resolved_params, target_params

RESULTS_DIR = "docs/results"


@dataclass(frozen=True)
class Curves:
    """A validation metric over training, per variant: one row per (variant, seed, step)."""

    metric: str
    frame: pd.DataFrame  # columns variant, seed, step, value

    def mean(self, variant: str, confidence: float) -> tuple[np.ndarray, ...]:
        """(steps (S,), mean over seeds (S,), CI half-width (S,)) of one variant."""
        rows = self.frame[self.frame["variant"] == variant]
        points = [(s, *mean_ci(g["value"], confidence)[:2]) for s, g in rows.groupby("step")]
        return tuple(np.array(v, np.float64) for v in zip(*points, strict=True))


def validation_curves(models_dir: Path, params: Params, metric: str = HEAD_VAL_METRIC) -> Curves:
    """Every run's ``metric`` column of its history (runs without it are left out)."""
    rows = []
    for variant in params.study.variants:
        for seed in params.study.seeds:
            path = models_dir / variant / str(seed) / HISTORY_NAME
            if not path.is_file():
                continue
            history = read_csv(path)
            if metric not in history:
                continue
            values = history[["step", metric]].dropna()
            rows += [
                {"variant": variant, "seed": seed, "step": int(s), "value": float(v)}
                for s, v in zip(values["step"], values[metric], strict=True)
            ]
    return Curves(metric, pd.DataFrame(rows, columns=["variant", "seed", "step", "value"]))


def _digest(values: dict[str, Any]) -> str:
    """sha256 (16 hex) of the params a size runs with, independent of YAML formatting."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _timings(models_dir: Path, params: Params, name: str, size: str) -> list[dict[str, Any]]:
    """Every run's timing record; a run folder that is not in the workspace is an error (its
    curves and provenance would silently drop out of the page)."""
    found, missing = [], []
    for variant in params.study.variants:
        for seed in params.study.seeds:
            run_dir = models_dir / variant / str(seed)
            if (timing := run_timing(run_dir)) is not None:
                found.append({"variant": variant, **timing})
            else:
                missing.append(run_dir / TIMING_FILE)
    if missing:
        raise GanstudyError(
            f"{name} size {size}: {len(missing)} run folders lack {TIMING_FILE} (first: "
            f"{missing[0]}); `ganstudy study run {name} --size {size}` trains them, or restores "
            "them from the size's DVC experiment without retraining"
        )
    return found


def run_timing(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's timing record, None if it has none. A per-class run (one generator per
    class, each in its ``class_<k>/`` with its own ``timing.json``) took its classes' seconds
    summed; None if a class lacks its record."""
    if (run_dir / TIMING_FILE).is_file():
        return read_json(run_dir / TIMING_FILE)
    if not (run_dir / PER_CLASS_FILE).is_file():
        return None
    paths = [run_dir / f / TIMING_FILE for f in read_json(run_dir / PER_CLASS_FILE)["folders"]]
    if not all(p.is_file() for p in paths):
        return None
    classes = [read_json(p) for p in paths]
    return {
        **classes[0],
        "seconds": sum(c["seconds"] for c in classes),
        "sessions": max(c["sessions"] for c in classes),
        "iterations": sum(c["iterations"] for c in classes),  # generator updates, all classes
        "git_commit": ", ".join(sorted({str(c.get("git_commit")) for c in classes})),
    }


def _made_with(name: str, size: str, params: Params, root: Path) -> list[list[str]]:
    """How the size was made: (what, value) rows."""
    paths = params.paths
    timings = _timings(root / paths.models, params, name, size)
    manifest_path = root / paths.processed / params.download.dataset / MANIFEST_NAME
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    splits = manifest.get("splits", {})
    rows = [
        ["command", f"`ganstudy study run {name} --size {size}`"],
        ["params digest", f"{_digest(target_params(name, size, root))} (sha256 of the values)"],
        ["dataset", params.download.dataset],
        ["splits", ", ".join(f"{k} {v['n']:,}" for k, v in splits.items()) or "–"],
        ["variants × seeds", f"{params.study.variants} × {params.study.seeds}"],
    ]
    commits = sorted({t.get("git_commit") or "no git" for t in timings})
    seconds = sum(t["seconds"] for t in timings)
    per = {}
    for t in timings:
        per.setdefault(t["variant"], []).append(t["seconds"])
    each = "; ".join(f"{v} {np.mean(s) / 60:.1f} min a seed" for v, s in per.items())
    rows += [
        ["git commit", ", ".join(commits)],
        ["machine", "; ".join(sorted({t["machine"] for t in timings}))],
        [
            "device",
            "; ".join(sorted({f"{t['device']}, {t['threads']} threads" for t in timings})),
        ],
        ["torch", ", ".join(sorted({t["torch"] for t in timings}))],
        ["training time", f"{seconds / 3600:.2f} h in {len(timings)} runs ({each})"],
    ]
    return rows


def _shift(markdown: str, levels: int) -> str:
    """Markdown headings ``levels`` deeper (a section inside a size's heading)."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown, flags=re.M)


def _size_part(
    study: Study, name: str, size: str, out: Path, root: Path
) -> tuple[list[str], pd.DataFrame]:
    """The Markdown blocks of one size (joined by newlines; its figures written under
    ``out / size``) and its length choices (one row per variant)."""
    params = resolved_params(name, size, root)
    paths, confidence = params.paths, params.report.confidence
    runs = collect_runs(root / paths.metrics, params.study)
    section = study_section(
        study, runs, root / paths.metrics, out / size, confidence, params.download.dataset
    )
    # The section opens with the study's title and description: the page says them once.
    text = section.markdown.replace(f"## {study.title}\n\n{study.description.strip()}\n", "", 1)
    for _, rel in section.figures:
        text = text.replace(f"]({rel})", f"]({size}/{rel})")
    page = Page()
    page.heading(f"{params.download.dataset}: size `{size}`", 2)
    page.table(["", ""], _made_with(name, size, params, root))
    page.raw(_shift(text, 1) + "\n")  # the section, a blank line after it
    curves = validation_curves(root / paths.models, params)
    choices = []
    if not curves.frame.empty:
        plotted, chosen = {}, {}
        for variant in dict.fromkeys(curves.frame["variant"]):
            steps, mean, half = curves.mean(variant, confidence)
            plotted[variant] = (steps, mean, half)
            choice = choose_length(steps, mean)
            chosen[variant] = choice.steps
            choices.append(
                {
                    "size": size,
                    "variant": variant,
                    "length": choice.steps,
                    "peak_step": choice.best_step,
                    "peak": choice.best,
                    "rule": choice.rule,
                }
            )
        rel = "figures/validation.png"
        save_validation_curves(
            plotted,
            out / size / rel,
            f"{curves.metric} ({params.download.dataset}; mean, {confidence:.0%} CI over seeds)",
            "validation accuracy",
            chosen,
        )
        page.heading(f"Validation curves ({curves.metric})")
        page.image("validation", f"{size}/{rel}")
        body = [
            [c["variant"], str(c["length"]), str(c["peak_step"]), f"{c['peak']:.3f}"]
            for c in choices
        ]
        header = ["variant", "length by the rule", "peak at", "peak (smoothed)"]
        page.table(header, body)
        page.text(f"Rule: {choices[0]['rule']}.")
    return page.md, pd.DataFrame(choices)


SECTION_FILE = "section.md"  # a size's part of the page, under <results>/<size>/
LENGTHS_FILE = "lengths.csv"  # the length choices: per size, and all of them beside index.md


def _write_size(study: Study, name: str, size: str, tmp: Path, root: Path) -> None:
    """One size's folder of the page: its section, its length choices and its figures."""
    blocks, choices = _size_part(study, name, size, tmp, root)
    page = Page()
    page.raw("\n".join(blocks))
    page.text(f"_Section made by `ganstudy study publish {name} --size {size}`._")
    write_text(tmp / size / SECTION_FILE, page.markdown())
    if not choices.empty:  # sizes without validation curves choose no length
        choices.to_csv(tmp / size / LENGTHS_FILE, index=False)


def _keep_published(study: Study, out_dir: Path, tmp: Path, named: list[str]) -> list[str]:
    """Copy the sections of sizes published before and not named now (their run folders may
    be gone: a section records its own command, commit and machine); returns their sizes."""
    kept = []
    for size in study.sizes:
        if size not in named and (out_dir / size / SECTION_FILE).is_file():
            shutil.copytree(out_dir / size, tmp / size)
            kept.append(size)
    return kept


def _keep_notes(study: Study, out_dir: Path, tmp: Path) -> None:
    """Copy what publish does not write (a README.md saying what the page answers, written by
    hand beside it): every entry but ``index.md``, ``lengths.csv`` and the sizes' folders."""
    owned = {"index.md", LENGTHS_FILE, *study.sizes}
    for entry in out_dir.iterdir():
        if entry.name in owned:
            continue
        if entry.is_dir():
            shutil.copytree(entry, tmp / entry.name)
        else:
            shutil.copy2(entry, tmp / entry.name)


def _assemble(study: Study, name: str, tmp: Path) -> list[str]:
    """``index.md`` and ``lengths.csv`` from the size folders in ``tmp``, in the study's order
    of sizes; returns the sizes on the page."""
    sizes = [s for s in study.sizes if (tmp / s / SECTION_FILE).is_file()]
    page = Page()
    page.heading(study.title, 1)
    page.text(study.description)
    if study.design:
        page.heading("Design", 2)
        page.bullets(study.design)
    for size in sizes:
        page.raw((tmp / size / SECTION_FILE).read_text().rstrip("\n") + "\n")
    page.raw(
        f"---\nEach section is made by `ganstudy study publish {name} --size <size>` from the "
        "outputs of the command in its table; sections of sizes not named are kept.\n"
    )
    write_text(tmp / "index.md", page.markdown())
    frames = [read_csv(tmp / s / LENGTHS_FILE) for s in sizes if (tmp / s / LENGTHS_FILE).is_file()]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    frame.to_csv(tmp / LENGTHS_FILE, index=False)
    return sizes


def publish(
    name: str,
    sizes: list[str],
    root: str | Path = ".",
    out: str | Path | None = None,
    only: bool = False,
) -> Path:
    """Write ``docs/results/<name>/`` (``index.md``, ``lengths.csv``, a folder per size with its
    section and figures) from the named sizes' outputs on disk, keeping the sections of sizes
    published before (unless ``only``) and any note beside them (a ``README.md``); atomically:
    a size with missing results fails before anything is replaced.
    """
    if not sizes:
        raise GanstudyError("ganstudy study publish: name at least one --size")
    root = Path(root)
    study = load_study(name, root)
    unknown = [s for s in sizes if s not in study.sizes]
    if unknown:
        raise GanstudyError(f"{name}: no size {unknown[0]!r} (sizes: {', '.join(study.sizes)})")
    out_dir = Path(out) if out is not None else root / RESULTS_DIR / name
    with atomic_dir(out_dir) as tmp:
        for size in dict.fromkeys(sizes):
            _write_size(study, name, size, tmp, root)
        if not only and out_dir.is_dir():
            _keep_published(study, out_dir, tmp, sizes)
        if out_dir.is_dir():
            _keep_notes(study, out_dir, tmp)
        _assemble(study, name, tmp)
    return out_dir
