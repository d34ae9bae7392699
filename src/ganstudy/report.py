"""The report stage: the study's table (mean ± CI over seeds), sample grids and loss curves,
as Markdown and as one self-contained HTML page, both from one ``ganstudy.pages.Page``; with a
study file, its section (``ganstudy.study.pages.study_section``) first."""

from pathlib import Path

import pandas as pd

from ganstudy.config import ReportConfig, StudyConfig, TrackingConfig
from ganstudy.errors import GanstudyError
from ganstudy.io import atomic_dir, copy_into, read_csv, read_json, write_text
from ganstudy.metrics import PER_CLASS
from ganstudy.names import (
    HISTORY_NAME,
    PARAMS_FILE,
    SAMPLES_NAME,
    memorisation_path,
    metrics_path,
)
from ganstudy.pages import Page
from ganstudy.plots import save_loss_curves
from ganstudy.runs import read_per_class
from ganstudy.stats import format_ci, mean_ci

NOT_METRICS = {"seed", "step"}
# Data for `dvc plots` (dvc.yaml's top-level plots; the report's figures/ are its image plots).
PLOTS_DIR = "plots"
TRAINING_CURVES = f"{PLOTS_DIR}/training_curves.csv"


def collect_runs(metrics_dir: Path, study: StudyConfig) -> pd.DataFrame:
    """One row per variant x seed of the study; a missing metrics file is an error."""
    rows = []
    for variant in study.variants:
        for seed in study.seeds:
            path = metrics_path(metrics_dir, variant, seed)
            if not path.is_file():
                raise GanstudyError(f"{path}: missing; run evaluate for {variant} seed {seed}")
            rows.append({"variant": variant, "seed": seed, **read_json(path)})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Per variant and metric: mean, CI half-width and n."""
    metrics = [c for c in runs.columns if c not in NOT_METRICS | {"variant"}]
    rows = []
    for variant, group in runs.groupby("variant", sort=False):
        for metric in metrics:
            mean, half, n = mean_ci(group[metric].dropna().to_list(), confidence)
            rows.append({"variant": variant, "metric": metric, "mean": mean, "ci": half, "n": n})
    return pd.DataFrame(rows)


def _table(summary: pd.DataFrame, runs: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    # One FID per class would widen the table by K columns: it shows their mean (`_classmean`);
    # the per-class values stay in the metrics files and MLflow.
    metrics = [m for m in dict.fromkeys(summary["metric"]) if not PER_CLASS.search(m)]
    header = ["variant", "seeds", *metrics]
    body = []
    for variant, group in summary.groupby("variant", sort=False):
        seeds = ", ".join(str(s) for s in runs.loc[runs["variant"] == variant, "seed"])
        cells = {r.metric: format_ci(r.mean, r.ci) for r in group.itertuples()}
        body.append([str(variant), seeds, *(cells[m] for m in metrics)])
    return header, body


def training_curves(histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every run's history in one long table (step, run, quantity, value): whatever the loop
    logged (losses, D's scores, a class head's accuracy...) for any game, so the dvc.yaml plot
    over it names no column but ``step``."""
    frames = [
        history.melt(id_vars="step", var_name="quantity", value_name="value")
        .dropna()
        .assign(run=label)
        for label, history in histories.items()
    ]
    columns = ["step", "run", "quantity", "value"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def run_histories(run_dir: Path, seed: int) -> dict[str, pd.DataFrame]:
    """The run's loss history labelled by seed; a per-class run's one per class."""
    info = read_per_class(run_dir)
    if info is None:
        return {f"seed {seed}": read_csv(run_dir / HISTORY_NAME)}
    return {
        f"seed {seed}, class {k}": read_csv(run_dir / folder / HISTORY_NAME)
        for k, folder in zip(info["classes"], info["folders"], strict=True)
    }


def build_report(
    metrics_dir: str | Path,
    models_dir: str | Path,
    reference_metrics: str | Path,
    out_dir: str | Path,
    cfg: ReportConfig,
    study: StudyConfig,
    tracking: TrackingConfig | None = None,
    params_path: str | Path | None = None,
    dataset: str | None = None,
) -> Path:
    """Write ``index.md``, ``index.html``, ``runs.csv``, ``summary.csv`` and figures; with
    ``cfg.study``, the study file's section (its tables, tests and published numbers) first.
    Given the stage's ``params_path`` (the report stage of a study execution, not a page rebuilt
    from disk), it also registers the champion generator, and logs the table's per-variant
    means and the report folder into the execution's MLflow parent run and closes it (a store
    that is down keeps the last report). ``dataset`` (``download.dataset``) picks the study's
    published numbers set beside ours (``study_section``)."""
    from ganstudy.study.pages import study_section
    from ganstudy.study.provenance import provenance
    from ganstudy.study.studies import load_study

    metrics_dir, models_dir = Path(metrics_dir), Path(models_dir)
    study_file = load_study(cfg.study) if cfg.study else None  # fails before any work
    runs = collect_runs(metrics_dir, study)
    summary = summarize(runs, cfg.confidence)
    reference = read_json(reference_metrics)
    header, body = _table(summary, runs)
    ref_rows = [[k, f"{v:.4g}"] for k, v in reference.items()]
    rows = provenance(study, cfg.study, models_dir, tracking, params_path or PARAMS_FILE)
    if tracking is not None and params_path is not None:
        from ganstudy.study.registry import record_execution

        rows += record_execution(runs, study, models_dir, tracking, params_path)
    made_by = [list(row) for row in rows]

    with atomic_dir(out_dir) as tmp:
        section = None
        if study_file is not None:
            section = study_section(study_file, runs, metrics_dir, tmp, cfg.confidence, dataset)
            for name, table in section.tables.items():
                table.to_csv(tmp / f"{name}.csv", index=False)
        # Figures: loss curves per variant (seeds overlaid) and a sample grid per run.
        figures: list[tuple[str, str]] = []  # (caption, relative path)
        curves: dict[str, pd.DataFrame] = {}  # run label -> its history, for `dvc plots`
        for variant in study.variants:
            histories = {
                label: history
                for s in study.seeds
                for label, history in run_histories(models_dir / variant / str(s), s).items()
            }
            curves |= {f"{variant} {label}": history for label, history in histories.items()}
            rel = f"figures/{variant}_loss.png"
            save_loss_curves(histories, tmp / rel, f"{variant}: losses")
            figures.append((f"{variant}: loss curves", rel))
            for seed in study.seeds:
                rel = f"figures/{variant}_seed{seed}_samples.png"
                copy_into(models_dir / variant / str(seed) / SAMPLES_NAME, tmp / rel)
                figures.append((f"{variant}, seed {seed}: samples", rel))
                nearest = memorisation_path(metrics_path(metrics_dir, variant, seed))
                if nearest.is_file():  # written when evaluate had the training images
                    rel = f"figures/{variant}_seed{seed}_memorisation.png"
                    copy_into(nearest, tmp / rel)
                    figures.append(
                        (
                            f"{variant}, seed {seed}: generated images nearest the "
                            "training set (top) and their nearest training images",
                            rel,
                        )
                    )
        runs.to_csv(tmp / "runs.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        (tmp / PLOTS_DIR).mkdir()
        training_curves(curves).to_csv(tmp / TRAINING_CURVES, index=False)

        title = f"ganstudy report: study `{study.name}`"
        note = (
            f"Mean ± {cfg.confidence:.0%} t-interval over seeds (no interval with one seed). "
            "All metrics use the domain classifier's feature space (see reference below); "
            "metric names give backbone, sample count and reference split."
        )
        page = Page()
        page.heading(title, 1)
        if section is not None:
            page.section(section)
            page.heading("Every metric", 2)
        page.text(note)
        page.table(header, body)
        page.heading("How this report was made", 2)
        page.table(["what", "value"], made_by)
        page.heading("Reference (real data)", 2)
        page.table(["metric", "value"], ref_rows)
        page.heading("Figures", 2, markdown=False)  # each Markdown figure has its own heading
        for caption, rel in figures:
            page.figure(caption, rel, titled=True)
        write_text(tmp / "index.md", page.markdown())
        write_text(tmp / "index.html", page.html_document(title, tmp))
        if tracking is not None and params_path is not None:
            from ganstudy.study.registry import close_execution

            # From the finished folder before it replaces the last report: a store that fails
            # here keeps the old one, and the parent run holds exactly what the page shows.
            close_execution(summary, study, tracking, tmp, params_path)
    return Path(out_dir)
