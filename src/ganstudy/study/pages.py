"""Per-study report sections: our numbers over seeds beside the published ones, and the tests.

One builder per study kind (``Study.kind``):

- ``augmentation``: Frid-Adar et al. 2018 (arXiv 1801.02385; GANs in Action ch. 11.1, figure
  11.3): the downstream classifier per arm and count, the accuracy curve, and paired tests of
  classic augmentation vs real only and of each GAN arm vs classic augmentation.
- ``classifier``: GANs in Action ch. 7 (SGAN with 100 labels): D's class-head test accuracy per
  variant, paired by seed with the supervised-only baseline.
- ``variants``: Lucic et al. 2017 ("Are GANs Created Equal?", arXiv 1711.10337): FID, KID,
  precision and recall per variant, FID ranks within seeds with Kendall's W, and Welch tests of
  each variant's FID against the NS GAN baseline.
"""

import base64
import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from ganstudy.errors import GanstudyError  # noqa: E402
from ganstudy.io import copy_into, write_with  # noqa: E402
from ganstudy.names import downstream_dir, metrics_path, sources_path  # noqa: E402
from ganstudy.stats import format_ci, mean_ci, paired_test  # noqa: E402
from ganstudy.study.augmentation import CLASSIC, arm_records, as_rows  # noqa: E402
from ganstudy.study.studies import Published, Study  # noqa: E402
from ganstudy.tables import html_table, markdown_table

ALPHA = 0.05  # the variants study's significance level (with the CI of the difference)
HEAD = "head_accuracy_test"  # D's class-head accuracy on the test split (metrics/head.py)
RATE = re.compile(r"^(accuracy|sensitivity|specificity|auc|head_accuracy|precision|recall)")
AUG_METRICS = {  # downstream column -> table header
    "accuracy": "accuracy",
    "sensitivity_macro": "sensitivity (macro)",
    "specificity_macro": "specificity (macro)",
    "auc_macro": "AUC (macro)",
}
AUG_TESTED = ("accuracy", "sensitivity_macro", "specificity_macro", "auc_macro")
REAL_ONLY = "real only"  # the classic arm at count 0
GAN_ROW = "classic+synthetic"  # published row: every GAN arm at its largest count
SAME = "inconclusive (the interval of the difference holds 0)"

Values = pd.Series  # one metric of one row of ours, indexed by seed (NaN: no value)
Match = tuple[str, Values | None]  # our row's label and values (None: we do not measure it)
Comparison = tuple[str, str, str, Values, Values]  # b, a, metric, a's values, b's values


@dataclass
class Section:
    """What a study adds to the report page."""

    markdown: str  # headings from level 2 down
    html: str  # the same content; <img src='<relative path>'> for each figure
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table (CSV)

    def inline_html(self, root: str | Path) -> str:
        """The HTML with each figure under ``root`` (the report folder) embedded as base64."""
        out = self.html
        for _, rel in self.figures:
            data = base64.b64encode((Path(root) / rel).read_bytes()).decode()
            out = out.replace(f"src='{html.escape(rel)}'", f"src='data:image/png;base64,{data}'")
        return out


def study_section(
    study: Study, runs: pd.DataFrame, metrics_dir: Path, out_dir: Path, confidence: float
) -> Section:
    """The study's section of the report, by ``study.kind``.

    Args:
        study: the study file (title, kind, baseline, published numbers).
        runs: ``ganstudy.report.collect_runs`` (one row per variant x seed).
        metrics_dir: the metrics folder (the augmentation study reads ``downstream/`` in it).
        out_dir: the report folder being written; figures go to ``out_dir / "figures"``.
        confidence: two-sided level of every interval.
    """
    for p in study.published:
        if RATE.match(p.metric) and not 0.0 <= p.value <= 1.0:
            raise GanstudyError(
                f"study {study.title!r}: published {p.row} {p.metric} = {p.value} is a rate; "
                "write it as a fraction (e.g. 0.857), as our metrics are"
            )
    if study.kind == "augmentation":
        return augmentation_section(study, Path(metrics_dir), Path(out_dir), confidence)
    if study.kind == "classifier":
        return classifier_section(study, runs, confidence)
    if study.kind == "variants":
        return variants_section(study, runs, confidence)
    raise GanstudyError(f"study kind {study.kind!r} has no report page")


# Augmentation (Frid-Adar et al. 2018; GANs in Action ch. 11.1).


def augmentation_section(
    study: Study, metrics_dir: Path, out_dir: Path, confidence: float
) -> Section:
    """The fair design (issue 13) stated, arms x counts with each GAN arm's quality gate, the
    accuracy curve (book figure 11.3) with the equal-size classic curve beside the GAN curves,
    per-class sensitivity and specificity, the generators' per-class FID, the arms' source
    pictures, paired tests (classic vs real only; each GAN count vs its equal-size classic
    control, and vs the classic base as Frid-Adar et al. compare), published numbers."""
    folder = downstream_dir(metrics_dir)
    records = arm_records(folder)
    df = pd.DataFrame(as_rows(records))
    if df.empty:
        raise GanstudyError(f"{folder}: no <arm>/<seed>.json; run the downstream stages")
    _require(df, ["arm", "seed", "count", "added", "n_train", *AUG_METRICS], str(folder))
    if CLASSIC not in set(df["arm"]):
        raise GanstudyError(f"{folder}: no classic arm; every GAN arm is compared with it")
    arms = list(dict.fromkeys([CLASSIC, *df["arm"]]))
    gans = arms[1:]
    counts = {arm: sorted(set(df.loc[df["arm"] == arm, "count"].astype(int))) for arm in arms}
    # The classic base of the GAN arms (every GAN image comes on top of it): max(counts).
    bases = {int(r["n_classic_base"]) for r in records if r["arm"] != CLASSIC}
    if len(bases) > 1:
        raise GanstudyError(f"{folder}: GAN arms on different classic bases {sorted(bases)}")
    base = bases.pop() if bases else counts[CLASSIC][-1]
    gates = {arm: _gate(records, arm) for arm in gans}

    def at(arm: str, count: int) -> tuple[str, pd.DataFrame]:
        rows = df[(df["arm"] == arm) & (df["count"] == count)]
        added = int(rows["added"].iloc[0]) if len(rows) else count
        return _arm_label(arm, count, added), rows

    page = _Page(study, confidence)
    page.heading("Design")
    page.bullets(_design(records, base, gates, confidence))
    for arm, gate in gates.items():
        if gate["failed"]:
            page.text(
                f"⚠ {arm}: the generators of seeds {_seeds(pd.Index(gate['failed']))} failed the "
                f"quality gate (worst per-class FID above {gate['threshold']:g}); every table "
                "still includes them, so read this arm's numbers as those of partly failed GANs."
            )

    page.heading("Downstream classifier per arm and number of added images")
    page.summary_table(
        "augmentation_arms",
        ["arm", "added", *AUG_METRICS.values(), "n_train", "quality gate", "n", "seeds"],
        [
            ({"arm": label, "added": rows["added"].iloc[0]}, rows)
            for arm in arms
            for label, rows in (at(arm, c) for c in counts[arm])
        ],
        {head: column for column, head in AUG_METRICS.items()},
        extra=lambda rows: {
            "n_train": _span(sorted(set(rows["n_train"].astype(int)))),
            "quality gate": _gate_cell(gates.get(str(rows["arm"].iloc[0]))),
        },
    )
    page.text(
        f"Rows 'classic +c' with c > {base} are the equal-size controls: 'classic +{base} "
        f"+ c synthetic' and 'classic +{base} + c more classic' train on as many images, with "
        "the same optimizer steps."
    )

    curve = "figures/augmentation_curve.png"
    _save_curve(df, arms, out_dir / curve, confidence, study.published, base, gates)
    page.figure(
        "Test accuracy vs images added to the real training split (figure 11.3); the classic "
        f"curve continues past +{base} as the equal-size control of the GAN curves",
        curve,
    )

    page.heading("Per-class sensitivity and specificity (one class against the rest)")
    classes = sorted(
        {int(m[1]) for c in df.columns if (m := re.match(r"^sensitivity_class(\d+)$", c))}
    )
    rows_of = [(CLASSIC, 0), (CLASSIC, base)] + [(arm, counts[arm][-1]) for arm in gans]
    rows_of += [(CLASSIC, base + counts[arm][-1]) for arm in gans]
    per_class = {
        f"{what} class {k}": f"{what}_class{k}"
        for k in classes
        for what in ("sensitivity", "specificity")
    }
    per_class["AUC (macro)"] = "auc_macro"
    page.summary_table(
        "augmentation_per_class",
        ["arm", *per_class, "n", "seeds"],
        [({"arm": label}, rows) for label, rows in dict(at(a, c) for a, c in rows_of).items()],
        per_class,
    )

    if gans:
        page.heading("Generator quality: per-class FID of each seed's generator")
        page.table(*_fid_table(gates, confidence))

    seed = int(df["seed"].min())
    for arm in arms:  # real | classic | synthetic rows of each arm, when the stage drew them
        source = sources_path(metrics_path(folder, arm, seed))
        if source.is_file():
            rel = f"figures/augmentation_{arm}_seed{seed}_sources.png"
            copy_into(source, out_dir / rel)
            rows = "real, classic" + ("" if arm == CLASSIC else ", synthetic")
            page.figure(f"{arm}, seed {seed}: training images (rows: {rows})", rel)

    comparisons: list[Comparison] = []
    pairs = [((CLASSIC, 0), (CLASSIC, base))] if base > 0 else []
    for arm in gans:  # each synthetic count against its equal-size classic control
        pairs += [((CLASSIC, base + c), (arm, c)) for c in counts[arm] if c > 0]
    for arm in gans:  # Frid-Adar et al.'s comparison: classic + synthetic vs classic alone
        if counts[arm][-1] > 0:
            pairs.append(((CLASSIC, base), (arm, counts[arm][-1])))
    for (a_arm, a_count), (b_arm, b_count) in pairs:
        (a, a_rows), (b, b_rows) = at(a_arm, a_count), at(b_arm, b_count)
        for metric in AUG_TESTED:
            comparisons.append((b, a, metric, _by_seed(a_rows, metric), _by_seed(b_rows, metric)))
    page.paired_tests("augmentation_tests", comparisons)
    if gans:
        page.text(
            f"The fair test of synthetic images is each GAN row against its equal-size control "
            f"(a = classic +{base} + c: as many images, more classic ones). Against the classic "
            f"base (a = classic +{base}) the GAN arm also trains on more images: that is "
            "Frid-Adar et al.'s comparison, shown for the published numbers."
        )

    def lookup(p: Published) -> list[Match]:
        if p.row == REAL_ONLY:
            targets = [(CLASSIC, 0)]
        elif p.row == CLASSIC:
            targets = [(CLASSIC, base)]  # the paper's classic arm: no synthetic images
        else:
            names = gans if p.row == GAN_ROW else [a for a in arms if a == p.row]
            targets = [(arm, counts[arm][-1]) for arm in names]
        matches = [at(arm, count) for arm, count in targets]
        return [
            (label, _by_seed(rows, p.metric) if p.metric in df else None)
            for label, rows in matches
            if len(rows)
        ]

    page.published("augmentation_published", lookup)
    return page.done()


def _gate(records: list[dict[str, Any]], arm: str) -> dict[str, Any]:
    """A GAN arm's quality records by seed: per-class FIDs, the threshold, failed seeds."""
    quality = {int(r["seed"]): r["quality"] for r in records if r["arm"] == arm and "quality" in r}
    thresholds = {q["threshold"] for q in quality.values()}
    return {
        "quality": quality,
        "metric": next((q["metric"] for q in quality.values()), None),
        "threshold": thresholds.pop() if len(thresholds) == 1 else None,
        "failed": sorted(s for s, q in quality.items() if q["passed"] is False),
        "gated": sorted(s for s, q in quality.items() if q["passed"] is not None),
    }


def _gate_cell(gate: dict[str, Any] | None) -> str:
    if gate is None:
        return "–"
    if not gate["gated"]:
        return "no gate" if gate["quality"] else "not recorded"
    ok = len(gate["gated"]) - len(gate["failed"])
    mark = "" if not gate["failed"] else " ⚠"
    return f"{ok}/{len(gate['gated'])} seeds passed{mark}"


def _fid_table(
    gates: dict[str, dict[str, Any]], confidence: float
) -> tuple[str, list[str], list[list[str]], pd.DataFrame]:
    """Per GAN arm: each class's FID and the worst, mean ± CI over seeds, gate and seeds."""
    classes = sorted(
        {k for g in gates.values() for q in g["quality"].values() for k in q["fid_class"]}, key=int
    )
    header = ["arm", *(f"FID class {k}" for k in classes), "worst class", "gate", "n", "seeds"]
    body, records = [], []
    for arm, gate in gates.items():
        quality = gate["quality"]
        cells, record = [arm], {"arm": arm, "metric": gate["metric"]}
        for k in [*classes, "worst"]:
            values = [
                q["worst"] if k == "worst" else q["fid_class"].get(k, math.nan)
                for q in quality.values()
            ]
            mean, half, _ = mean_ci(pd.Series(values, dtype=float).dropna(), confidence)
            cells.append(format_ci(mean, half, 2))
            record |= {f"fid_{k}_mean": mean, f"fid_{k}_ci": half}
        threshold = gate["threshold"]
        cells.append(_gate_cell(gate) + ("" if threshold is None else f" (≤ {threshold:g})"))
        seeds = _seeds(pd.Index(sorted(quality)))
        cells += [str(len(quality)), seeds]
        body.append(cells)
        record |= {"threshold": threshold, "failed": _seeds(pd.Index(gate["failed"]))}
        records.append(record | {"n": len(quality), "seeds": seeds})
    return "augmentation_fid", header, body, pd.DataFrame(records)


def _design(
    records: list[dict[str, Any]], base: int, gates: dict[str, dict[str, Any]], confidence: float
) -> list[str]:
    """The protocol every arm shares, read off the records (not restated from params)."""
    first = records[0]
    steps = sorted(
        {int(s["steps"]) for r in records for s in r["results"].values() if "steps" in s}
    )
    seeds = sorted({int(r["seed"]) for r in records})
    thresholds = sorted({g["threshold"] for g in gates.values() if g["threshold"] is not None})
    sizes = ", ".join(
        f"{first[k]} {what}"
        for k, what in (("n_real", "real training"), ("n_val", "validation"), ("n_test", "test"))
        if k in first
    )
    return [
        f"Data: {sizes} images; the validation split picks the step kept, the test split is "
        "scored once per classifier.",
        "Step budget: every classifier takes "
        + (
            f"{steps[0]} optimizer steps"
            if len(steps) == 1
            else f"{_span(steps)} optimizer steps (NOT one budget)"
        )
        + ", whatever its training-set size, so no arm wins on updates alone.",
        f"Equal-size control: every GAN arm adds its synthetic images to the real split plus "
        f"{base} classic images; the classic arm at {base} + c is its twin with c more classic "
        "images instead of c synthetic ones.",
        "Quality gate: "
        + (
            f"a generator passes when its worst per-class FID is at most {thresholds[0]:g}"
            if len(thresholds) == 1
            else "none set (downstream.max_class_fid): per-class FIDs are reported below"
        )
        + "; the GAN length is fixed in the study file, not chosen on test accuracy.",
        f"Seeds: {len(seeds)} ({_seeds(pd.Index(seeds))}); seed s pairs classifier seed s with "
        f"the generators of seed s; {confidence:.0%} t-intervals over seeds, paired tests over "
        "the seeds both rows have.",
        *_classifier_time(records),
    ]


def _classifier_time(records: list[dict[str, Any]]) -> list[str]:
    """The downstream stages' wall time (each record's ``seconds``) and machines."""
    timed = [r for r in records if "seconds" in r]
    if not timed:
        return []
    fits = sum(len(r["results"]) for r in timed)
    minutes = sum(float(r["seconds"]) for r in timed) / 60
    machines = ", ".join(sorted({str(r.get("machine", "?")) for r in timed}))
    return [
        f"Classifier wall time: {minutes:.1f} min for {fits} fits in {len(timed)} downstream "
        f"stages ({machines})."
    ]


def _arm_label(arm: str, count: int, added: int) -> str:
    if arm == CLASSIC:
        return REAL_ONLY if count == 0 else f"classic +{count}"
    return f"{arm}: classic +{added - count}, synthetic +{count}"


def _save_curve(
    df: pd.DataFrame,
    arms: list[str],
    path: Path,
    confidence: float,
    published: list[Published],
    base: int,
    gates: dict[str, dict[str, Any]],
) -> Path:
    """Mean accuracy per number of added images, one line per arm, CI band over seeds; a GAN
    arm starts where the classic base ends (its synthetic images come on top of it), and the
    classic line continues past it as the equal-size control; published accuracies are dashed
    lines."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for arm in arms:
        points = [
            (added, *mean_ci(g["accuracy"].dropna(), confidence)[:2])
            for added, g in df[df["arm"] == arm].groupby("added")
        ]
        x, mean, half = (np.array(v, np.float64) for v in zip(*points, strict=True))
        if arm == CLASSIC:
            label = "classic augmentation (past the dotted line: equal-size control)"
        else:
            label = f"{arm}: classic + synthetic"
            failed, gated = gates[arm]["failed"], gates[arm]["gated"]
            label += f" (⚠ {len(failed)}/{len(gated)} seeds failed the gate)" if failed else ""
        (line,) = ax.plot(x, mean, marker="o", label=label)
        band = np.nan_to_num(half)  # one seed: no interval
        low, high = np.clip(mean - band, 0, 1), np.clip(mean + band, 0, 1)  # a rate's bounds
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    if len(arms) > 1:
        ax.axvline(base, color="grey", linestyle=":", linewidth=1)
    for p in (p for p in published if p.metric == "accuracy"):
        ax.axhline(p.value, color="grey", linestyle="--", linewidth=1)
        where = ("axes fraction", "data")
        ax.annotate(f"published {p.row} ({p.dataset})", (0.01, p.value), xycoords=where, fontsize=7)
    ax.set_xlabel("images added to the real training split")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Accuracy vs added images (mean, {confidence:.0%} CI over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        return write_with(path, lambda p: fig.savefig(p, format="png", dpi=100))
    finally:
        plt.close(fig)


# Classifier (GANs in Action ch. 7: SGAN with 100 labels).


def classifier_section(study: Study, runs: pd.DataFrame, confidence: float) -> Section:
    """D's class-head test accuracy per variant beside the book's; each variant paired by seed
    with the supervised-only baseline (``study.baseline``). Published metric ``accuracy`` means
    the head's test accuracy here."""
    _require(runs, ["variant", "seed"], "runs")
    variants = list(dict.fromkeys(runs["variant"]))
    aliases = {"accuracy": HEAD, "head_accuracy": HEAD}
    page = _Page(study, confidence)
    page.heading("Class-head test accuracy per variant")
    page.summary_table(
        "classifier_heads",
        ["variant", "head accuracy (test)", "n", "seeds"],
        [({"variant": v}, runs[runs["variant"] == v]) for v in variants],
        {"head accuracy (test)": HEAD},
        published=page.published_columns(
            variants, lambda p: aliases.get(p.metric, p.metric) == HEAD
        ),
    )
    missing = [v for v in variants if _by_seed(runs[runs["variant"] == v], HEAD).isna().all()]
    if missing:
        page.text(f"No {HEAD} in the metrics of {', '.join(missing)} (no single class head): –.")
    if page.baseline(variants):
        base = _by_seed(runs[runs["variant"] == study.baseline], HEAD)
        page.paired_tests(
            "classifier_tests",
            [
                (v, study.baseline, HEAD, base, _by_seed(runs[runs["variant"] == v], HEAD))
                for v in variants
                if v != study.baseline
            ],
        )
    page.published("classifier_published", _variant_lookup(runs, aliases))
    return page.done()


# Variants (Lucic et al. 2017).


def variants_section(study: Study, runs: pd.DataFrame, confidence: float) -> Section:
    """FID, KID, precision and recall per variant, FID ranks within seeds (mean, std, Kendall's
    W), Welch tests of each variant's FID against ``study.baseline`` (lower FID is better).
    Published metrics ``fid``, ``kid``, ``precision``, ``recall`` mean our columns of each."""
    _require(runs, ["variant", "seed"], "runs")
    columns = {
        "FID": _column(runs, lambda c: c.startswith("fid_")),
        "KID": _column(runs, lambda c: c.startswith("kid_") and c.endswith("_mean")),
        "precision": _column(runs, lambda c: c.startswith("precision_")),
        "recall": _column(runs, lambda c: c.startswith("recall_")),
    }
    fid = columns["FID"]
    if fid is None:
        raise GanstudyError(f"runs have no fid_* column; have {list(runs.columns)}")
    aliases = {k.lower(): c for k, c in columns.items() if c is not None}
    variants = list(dict.fromkeys(runs["variant"]))
    ranks = fid_ranks(runs, fid)

    page = _Page(study, confidence)
    page.heading("Variants")
    page.summary_table(
        "variants",
        ["variant", *columns, "n", "seeds", "FID rank (mean ± std)"],
        [({"variant": v}, runs[runs["variant"] == v]) for v in variants],
        columns,
        extra=lambda rows: _rank_cells(ranks, rows["variant"].iloc[0]),
        published=page.published_columns(variants, lambda p: aliases.get(p.metric) == fid),
    )
    page.tables["variants_fid_ranks"] = ranks.reset_index()
    others = ", ".join(f"{k} = {c or '–'}" for k, c in columns.items() if k != "FID")
    page.text(
        f"Columns: FID = {fid}, {others}. Ranks: 1 = lowest FID within a seed (ties share the "
        f"mean rank), over the {len(ranks)} seeds where every variant has an FID."
    )
    if "inception" not in fid:
        page.text(
            "Our FID is not computed in Inception features (see its column name), while the "
            "published FIDs are: compare the order of the variants, not the values."
        )
    page.text(_agreement(kendall_w(ranks.to_numpy()), *ranks.shape))
    if page.baseline(variants):
        page.welch_tests(
            study.baseline or "", {v: _by_seed(runs[runs["variant"] == v], fid) for v in variants}
        )
    page.published("variants_published", _variant_lookup(runs, aliases))
    return page.done()


def fid_ranks(runs: pd.DataFrame, fid: str) -> pd.DataFrame:
    """(seeds, variants) ranks of FID within each seed (1 = lowest; ties averaged), over the
    seeds where every variant has a value."""
    if runs.duplicated(["variant", "seed"]).any():
        raise GanstudyError("runs hold a variant twice for one seed")
    values = runs.assign(value=pd.to_numeric(runs[fid], errors="coerce"))
    wide = values.pivot(index="seed", columns="variant", values="value")
    wide = wide.reindex(columns=list(dict.fromkeys(runs["variant"]))).dropna()
    ranked = stats.rankdata(wide.to_numpy(), axis=1) if len(wide) else wide.to_numpy()
    return pd.DataFrame(ranked, index=wide.index, columns=wide.columns)


def kendall_w(ranks: np.ndarray) -> float:
    """Kendall's coefficient of concordance of (m raters, n objects) ranks, tie-corrected
    (Kendall & Babington Smith 1939): 1 = every rater ranks alike, 0 = no agreement. NaN for
    fewer than 2 raters or objects, or when every rater ties every object."""
    ranks = np.asarray(ranks, np.float64)
    m, n = ranks.shape if ranks.ndim == 2 else (0, 0)
    if m < 2 or n < 2:
        return math.nan
    spread = ((ranks.sum(axis=0) - m * (n + 1) / 2) ** 2).sum()
    counts = (np.unique(r, return_counts=True)[1] for r in ranks)  # tie groups per rater
    ties = sum(float((t**3 - t).sum()) for t in counts)
    denominator = m**2 * (n**3 - n) - m * ties
    return math.nan if denominator <= 0 else float(12 * spread / denominator)


def _rank_cells(ranks: pd.DataFrame, variant: str) -> dict[str, Any]:
    r = ranks[variant] if variant in ranks else pd.Series(dtype=float)
    mean = float(r.mean()) if len(r) else math.nan
    std = float(r.std(ddof=1)) if len(r) > 1 else math.nan
    return {"FID rank (mean ± std)": format_ci(mean, std), "rank_mean": mean, "rank_std": std}


def _agreement(w: float, m: int, n: int) -> str:
    if math.isnan(w):
        return "Rank stability (Kendall's W): not defined (fewer than 2 seeds or variants)."
    p = float(stats.chi2.sf(m * (n - 1) * w, n - 1))  # Friedman's chi2 = m (n - 1) W
    return (
        f"Rank stability over {m} seeds: Kendall's W = {w:.2f} (1 = the same order of the "
        f"{n} variants in every seed, 0 = none); Friedman test of no consistent order, "
        f"p = {p:.3g}."
    )


def _variant_lookup(
    runs: pd.DataFrame, aliases: dict[str, str]
) -> Callable[[Published], list[Match]]:
    """Published row = our variant; its metric through ``aliases`` to our column."""

    def lookup(p: Published) -> list[Match]:
        rows = runs[runs["variant"] == p.row]
        if rows.empty:
            return []
        metric = aliases.get(p.metric, p.metric)
        return [(p.row, _by_seed(rows, metric) if metric in runs else None)]

    return lookup


# Shared: the page builder, published numbers, tests.


class _Page:
    """A section's Markdown and HTML, written side by side, and its figures and tables."""

    def __init__(self, study: Study, confidence: float) -> None:
        self.study, self.confidence = study, confidence
        self.md: list[str] = []
        self.html: list[str] = []
        self.figures: list[tuple[str, str]] = []
        self.tables: dict[str, pd.DataFrame] = {}
        self.heading(study.title, 2)
        self.text(study.description.strip())
        self.text(
            f"Ours: mean ± {confidence:.0%} t-interval over seeds (none with one seed); "
            "n = seeds with a value."
        )

    def heading(self, text: str, level: int = 3) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, paragraph: str) -> None:
        self.md.append(paragraph + "\n")
        self.html.append(f"<p>{html.escape(paragraph)}</p>")

    def bullets(self, items: list[str]) -> None:
        if items:
            self.md.append("\n".join(f"- {s}" for s in items) + "\n")
            self.html.append(
                "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in items) + "</ul>"
            )

    def table(
        self, name: str, header: list[str], body: list[list[str]], frame: pd.DataFrame
    ) -> None:
        self.md.append(markdown_table(header, body) + "\n")
        self.html.append(html_table(header, body))
        self.tables[name] = frame

    def figure(self, caption: str, rel: str) -> None:
        self.md.append(f"![{caption}]({rel})\n\n*{caption}*\n")
        self.html.append(
            f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.figures.append((caption, rel))

    def done(self) -> Section:
        return Section("\n".join(self.md), "".join(self.html), self.figures, self.tables)

    def baseline(self, variants: list[str]) -> bool:
        """Whether to test against ``study.baseline``; a baseline not run is an error."""
        if self.study.baseline is None:
            self.text("The study names no baseline: no tests.")
            return False
        if self.study.baseline not in variants:
            raise GanstudyError(
                f"study {self.study.title!r}: baseline {self.study.baseline!r} is not among "
                f"the runs' variants {variants}"
            )
        return True

    def summary_table(
        self,
        name: str,
        header: list[str],
        groups: list[tuple[dict[str, Any], pd.DataFrame]],
        metrics: dict[str, str | None],
        extra: Callable[[pd.DataFrame], dict[str, Any]] | None = None,
        published: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """One row per (key cells, its rows of seeds): mean ± CI of each metric (header ->
        column; None or a missing column gives –), n (seeds with the first metric), seeds,
        ``extra`` cells by header name, then the published columns."""
        published = published or {}
        body, records = [], []
        for keys, rows in groups:
            cells = {h: str(v) for h, v in keys.items()}
            record: dict[str, Any] = dict(keys)
            for head, column in metrics.items():
                values = _by_seed(rows, column).dropna()
                mean, half, n = mean_ci(values, self.confidence)
                cells[head] = format_ci(mean, half, 3 if RATE.match(column or "") else 2)
                record |= {f"{column or head}_mean": mean, f"{column or head}_ci": half}
                if head == next(iter(metrics)):
                    cells["n"], cells["seeds"] = str(n), _seeds(values.index)
                    record |= {"n": n, "seeds": cells["seeds"]}
            for head, value in (extra(rows) if extra else {}).items():
                record[head] = value
                if head in header:
                    cells[head] = str(value)
            key = str(next(iter(keys.values())))
            body.append([cells[h] for h in header] + [c.get(key, "–") for c in published.values()])
            records.append(record | {h: c.get(key) for h, c in published.items()})
        self.table(name, header + list(published), body, pd.DataFrame(records))

    def published_columns(
        self, rows: list[str], wanted: Callable[[Published], bool]
    ) -> dict[str, dict[str, str]]:
        """One column per dataset of the wanted published numbers: header -> row -> cell."""
        columns: dict[str, dict[str, str]] = {}
        for p in (p for p in self.study.published if wanted(p)):
            column = columns.setdefault(f"published ({p.dataset})", {})
            if p.row in rows:
                column[p.row] = f"{p.value:.{3 if RATE.match(p.metric) else 2}f}"
        return columns

    def published(self, name: str, lookup: Callable[[Published], list[Match]]) -> None:
        """Every published number with the matching number of ours, its source and note."""
        self.heading("Published numbers beside ours")
        if not self.study.published:
            self.text("The study file lists no published numbers.")
            return
        header = ["published", "metric", "value", "dataset", "source", "ours", "ours − published"]
        header += ["n", "seeds"]
        body, records = [], []
        for p in self.study.published:
            digits = 3 if RATE.match(p.metric) else 2
            for label, values in lookup(p) or [("not in our runs", None)]:
                known = values.dropna() if values is not None else pd.Series(dtype=float)
                mean, half, n = mean_ci(known, self.confidence)
                ours = format_ci(mean, half, digits) if values is not None else "– (not measured)"
                seeds = _seeds(known.index)
                mine = {"ours_row": label, "mean": mean, "ci": half, "n": n, "seeds": seeds}
                records.append(p.model_dump() | mine)
                gap = "–" if math.isnan(mean) else f"{mean - p.value:+.{digits}f}"
                cells = [p.metric, f"{p.value:.{digits}f}", p.dataset, p.source, ours, gap]
                body.append([f"{p.row} → ours: {label}", *cells, str(n), seeds])
        self.table(name, header, body, pd.DataFrame(records))
        notes = [
            f"{p.row} ({p.dataset}, {p.source}): {p.note}" for p in self.study.published if p.note
        ]
        if notes:
            self.text("Protocol differences that matter when comparing:")
            self.bullets(notes)

    def paired_tests(self, name: str, comparisons: list[Comparison]) -> None:
        """b - a over the seeds both have (``ganstudy.stats.paired_test``), in a table and
        in words."""
        self.heading("Paired tests over seeds")
        header = ["b vs a", "metric", "n pairs", "difference b − a (CI)", "t-test p"]
        header += ["Wilcoxon p", "detectable (80% power)", "verdict"]
        body, records, words = [], [], []
        for b, a, metric, a_values, b_values in comparisons:
            both = pd.concat([a_values, b_values], axis=1, keys=["a", "b"]).dropna()
            records.append({"b": b, "a": a, "metric": metric, "n": len(both)})
            if len(both) < 2:
                words.append(f"{b} vs {a}, {metric}: not tested ({len(both)} paired seeds).")
                continue
            t = paired_test(both["a"].to_numpy(), both["b"].to_numpy(), self.confidence)
            verdict = _verdict(t.ci_low, t.ci_high)
            records[-1] |= {k: getattr(t, k) for k in ("mean_diff", "ci_low", "ci_high")}
            records[-1] |= {"t_pvalue": t.t_pvalue, "wilcoxon_pvalue": t.wilcoxon_pvalue}
            records[-1] |= {"seeds": _seeds(both.index), "verdict": verdict}
            records[-1] |= {"detectable": t.detectable}
            wilcoxon = "–" if math.isnan(t.wilcoxon_pvalue) else f"{t.wilcoxon_pvalue:.3g}"
            diff = f"{t.mean_diff:+.3f} ({t.ci_low:+.3f} to {t.ci_high:+.3f})"
            detect = "–" if math.isnan(t.detectable) else f"±{t.detectable:.3f}"
            body.append(
                [f"{b} vs {a}", metric, str(t.n), diff, f"{t.t_pvalue:.3g}", wilcoxon, detect]
                + [verdict]
            )
            side = "higher" if t.ci_low > 0 else "lower"
            said = verdict if verdict == SAME else f"{b} {side} than {a} beyond the seed noise"
            if verdict == SAME and detect != "–":  # what the design could have seen
                said += f"; this design detects a true difference of {detect} (80% power)"
            w = "" if wilcoxon == "–" else f", Wilcoxon p = {wilcoxon}"
            words.append(
                f"{b} vs {a}, {metric} over {t.n} seeds: mean difference {t.mean_diff:+.3f} "
                f"({self.confidence:.0%} CI {t.ci_low:+.3f} to {t.ci_high:+.3f}), paired "
                f"t-test p = {t.t_pvalue:.3g}{w}: {said}."
            )
        self.table(name, header, body, pd.DataFrame(records))
        self.bullets(words)

    def welch_tests(self, baseline: str, values: dict[str, Values]) -> None:
        """Each variant's FID vs the baseline's, unpaired (Welch); lower FID is better."""
        self.heading(f"FID against the baseline {baseline} (Welch t-test)")
        header = ["variant", "n", "FID difference variant − baseline (CI)", "Welch p", "verdict"]
        body, records, better, worse = [], [], [], []
        base = values[baseline].dropna().to_numpy()
        for v, series in values.items():
            x = series.dropna().to_numpy()
            if v == baseline:
                continue
            records.append(
                {"variant": v, "baseline": baseline, "n": len(x), "n_baseline": len(base)}
            )
            if min(len(x), len(base)) < 2 or x.var() + base.var() == 0:
                body.append([v, str(len(x)), "–", "–", "not tested (< 2 seeds or no spread)"])
                continue
            res = stats.ttest_ind(x, base, equal_var=False)
            ci = res.confidence_interval(self.confidence)
            diff, p = float(x.mean() - base.mean()), float(res.pvalue)
            verdict = _verdict(ci.low, ci.high) if p < ALPHA else SAME
            if verdict != SAME:
                verdict = ("better" if diff < 0 else "worse") + " beyond the seed noise"
                (better if diff < 0 else worse).append(v)
            records[-1] |= {
                "diff": diff,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "p": p,
                "verdict": verdict,
            }
            cell = f"{diff:+.2f} ({ci.low:+.2f} to {ci.high:+.2f})"
            body.append([v, str(len(x)), cell, f"{p:.3g}", verdict])
        self.table("variants_tests", header, body, pd.DataFrame(records))
        rule = f"p < {ALPHA} and the {self.confidence:.0%} CI of the difference excluding 0"
        said = f"beat the baseline {baseline} on FID beyond the seed noise ({rule})"
        words = f"{', '.join(better)} {said}." if better else f"No variant {said}."
        if worse:
            words += " Worse than the baseline beyond the seed noise: " + ", ".join(worse) + "."
        self.text(words)


def _verdict(low: float, high: float) -> str:
    """What the interval of b - a says: SAME when it covers 0 (or does not exist)."""
    if math.isnan(low) or low <= 0 <= high:
        return SAME
    return ("higher" if low > 0 else "lower") + " beyond the seed noise"


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise GanstudyError(f"{what}: missing columns {missing}; have {list(df.columns)}")


def _column(runs: pd.DataFrame, match: Callable[[str], bool]) -> str | None:
    """The first column matching, per-class columns (``_class``) left out."""
    return next((c for c in runs.columns if "_class" not in c and match(c)), None)


def _by_seed(rows: pd.DataFrame, metric: str | None) -> Values:
    """``metric`` of ``rows`` indexed by seed; NaN where missing (no column, null in JSON)."""
    seeds = rows["seed"].astype(int).to_numpy()
    if metric is None or metric not in rows:
        return pd.Series(math.nan, index=seeds, dtype=float)
    return pd.Series(pd.to_numeric(rows[metric], errors="coerce").to_numpy(float), index=seeds)


def _seeds(seeds: pd.Index | pd.Series) -> str:
    return ", ".join(str(int(s)) for s in sorted(seeds))


def _span(sizes: list[int]) -> str:
    return str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
