"""The augmentation study's section (Frid-Adar et al. 2018, arXiv 1801.02385; GANs in Action
ch. 11.1, figure 11.3): the downstream classifier per arm and count, the accuracy curve, and
paired tests of classic augmentation vs real only and of each GAN arm vs classic augmentation."""

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganstudy.errors import GanstudyError
from ganstudy.io import copy_into
from ganstudy.names import downstream_dir, metrics_path, sources_path
from ganstudy.pages import Section
from ganstudy.plots import save_rate_curves
from ganstudy.stats import format_ci, mean_ci
from ganstudy.study.augmentation import CLASSIC, arm_records, as_rows
from ganstudy.study.section import (
    Comparison,
    Match,
    StudyPage,
    by_seed,
    require,
    seed_list,
)
from ganstudy.study.studies import Published, Study

AUG_METRICS = {  # downstream column -> table header
    "accuracy": "accuracy",
    "sensitivity_macro": "sensitivity (macro)",
    "specificity_macro": "specificity (macro)",
    "auc_macro": "AUC (macro)",
}
AUG_TESTED = ("accuracy", "sensitivity_macro", "specificity_macro", "auc_macro")
REAL_ONLY = "real only"  # the classic arm at count 0
GAN_ROW = "classic+synthetic"  # published row: every GAN arm at its largest count


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
    require(df, ["arm", "seed", "count", "added", "n_train", *AUG_METRICS], str(folder))
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

    page = StudyPage(study, confidence)
    page.heading("Design")
    page.bullets(_design(records, base, gates, confidence))
    for arm, gate in gates.items():
        if gate["failed"]:
            failed = seed_list(pd.Index(gate["failed"]))
            page.text(
                f"⚠ {arm}: the generators of seeds {failed} failed the "
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
        header, body, frame = _fid_table(gates, confidence)
        page.table(header, body, "augmentation_fid", frame)

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
            comparisons.append((b, a, metric, by_seed(a_rows, metric), by_seed(b_rows, metric)))
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
            (label, by_seed(rows, p.metric) if p.metric in df else None)
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
) -> tuple[list[str], list[list[str]], pd.DataFrame]:
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
        seeds = seed_list(pd.Index(sorted(quality)))
        cells += [str(len(quality)), seeds]
        body.append(cells)
        record |= {"threshold": threshold, "failed": seed_list(pd.Index(gate["failed"]))}
        records.append(record | {"n": len(quality), "seeds": seeds})
    return header, body, pd.DataFrame(records)


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
        f"Seeds: {len(seeds)} ({seed_list(pd.Index(seeds))}); seed s pairs classifier seed s with "
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
    curves = {}
    for arm in arms:
        points = [
            (added, *mean_ci(g["accuracy"].dropna(), confidence)[:2])
            for added, g in df[df["arm"] == arm].groupby("added")
        ]
        if arm == CLASSIC:
            label = "classic augmentation (past the dotted line: equal-size control)"
        else:
            label = f"{arm}: classic + synthetic"
            failed, gated = gates[arm]["failed"], gates[arm]["gated"]
            label += f" (⚠ {len(failed)}/{len(gated)} seeds failed the gate)" if failed else ""
        curves[label] = tuple(np.array(v, np.float64) for v in zip(*points, strict=True))
    return save_rate_curves(
        curves,
        path,
        f"Accuracy vs added images (mean, {confidence:.0%} CI over seeds)",
        "images added to the real training split",
        "test accuracy",
        divider=base if len(arms) > 1 else None,
        marks=[
            (p.value, f"published {p.row} ({p.dataset})")
            for p in published
            if p.metric == "accuracy"
        ],
    )


def _span(sizes: list[int]) -> str:
    return str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
