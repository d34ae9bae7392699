"""The variants study's section (Lucic et al. 2017, "Are GANs Created Equal?", arXiv 1711.10337):
FID, KID, precision and recall per variant, FID ranks within seeds with Kendall's W, and Welch
tests of each variant's FID against the NS GAN baseline."""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ganstudy.errors import GanstudyError
from ganstudy.pages import Section
from ganstudy.plots import save_seed_spread
from ganstudy.stats import fid_ranks, format_ci, friedman_p, kendall_w, mean_ci, welch_test
from ganstudy.study.section import (
    SAME,
    StudyPage,
    Values,
    by_seed,
    interval_verdict,
    require,
    variant_lookup,
)
from ganstudy.study.studies import Study

ALPHA = 0.05  # the significance level of the Welch tests (with the CI of the difference)


def variants_section(study: Study, runs: pd.DataFrame, out_dir: Path, confidence: float) -> Section:
    """FID, KID, precision and recall per variant, FID ranks within seeds (mean, std, Kendall's
    W), Welch tests of each variant's FID against ``study.baseline`` (lower FID is better), and
    a figure of every seed's FID and precision/recall (``out_dir / "figures"``). Published
    metrics ``fid``, ``kid``, ``precision``, ``recall`` mean our columns of each."""
    require(runs, ["variant", "seed"], "runs")
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

    page = StudyPage(study, confidence)
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
    _spread_figure(page, runs, variants, columns, Path(out_dir), confidence)
    if page.baseline(variants):
        values = {v: by_seed(runs[runs["variant"] == v], fid) for v in variants}
        _welch_tests(page, study.baseline or "", values)
    page.published("variants_published", variant_lookup(runs, aliases))
    return page.done()


def _spread_figure(
    page: StudyPage,
    runs: pd.DataFrame,
    variants: list[str],
    columns: dict[str, str | None],
    out_dir: Path,
    confidence: float,
) -> None:
    """Every seed's FID per variant with the mean and its interval; precision against recall
    per seed when both are measured: the spread the tables summarise."""
    fid = columns["FID"] or ""
    spread = {}
    for v in variants:
        values = by_seed(runs[runs["variant"] == v], fid).dropna()
        mean, half, _ = mean_ci(values, confidence)
        spread[v] = (values.to_numpy(), mean, half)
    pairs = None
    if columns["precision"] and columns["recall"]:
        rows = {v: runs[runs["variant"] == v] for v in variants}
        pairs = {
            v: (r[columns["recall"]].to_numpy(), r[columns["precision"]].to_numpy())
            for v, r in rows.items()
        }
    rel = "figures/variants_spread.png"
    title = f"{fid} per seed (dots), mean and {confidence:.0%} CI (black)"
    save_seed_spread(spread, out_dir / rel, title, "FID (lower is better)", pairs)
    page.figure(f"{fid} of every seed, and precision against recall", rel)


def _rank_cells(ranks: pd.DataFrame, variant: str) -> dict[str, Any]:
    r = ranks[variant] if variant in ranks else pd.Series(dtype=float)
    mean = float(r.mean()) if len(r) else math.nan
    std = float(r.std(ddof=1)) if len(r) > 1 else math.nan
    return {"FID rank (mean ± std)": format_ci(mean, std), "rank_mean": mean, "rank_std": std}


def _agreement(w: float, m: int, n: int) -> str:
    if math.isnan(w):
        return "Rank stability (Kendall's W): not defined (fewer than 2 seeds or variants)."
    p = friedman_p(w, m, n)
    return (
        f"Rank stability over {m} seeds: Kendall's W = {w:.2f} (1 = the same order of the "
        f"{n} variants in every seed, 0 = none); Friedman test of no consistent order, "
        f"p = {p:.3g}."
    )


def _welch_tests(page: StudyPage, baseline: str, values: dict[str, Values]) -> None:
    """Each variant's FID vs the baseline's, unpaired (Welch); lower FID is better."""
    page.heading(f"FID against the baseline {baseline} (Welch t-test)")
    header = ["variant", "n", "FID difference variant − baseline (CI)", "Welch p", "verdict"]
    body, records, better, worse = [], [], [], []
    base = values[baseline].dropna().to_numpy()
    for v, series in values.items():
        x = series.dropna().to_numpy()
        if v == baseline:
            continue
        records.append({"variant": v, "baseline": baseline, "n": len(x), "n_baseline": len(base)})
        test = welch_test(x, base, page.confidence)
        if test is None:
            body.append([v, str(len(x)), "–", "–", "not tested (< 2 seeds or no spread)"])
            continue
        diff, p, low, high = test.diff, test.pvalue, test.ci_low, test.ci_high
        verdict = interval_verdict(low, high) if p < ALPHA else SAME
        if verdict != SAME:
            verdict = ("better" if diff < 0 else "worse") + " beyond the seed noise"
            (better if diff < 0 else worse).append(v)
        records[-1] |= {"diff": diff, "ci_low": low, "ci_high": high, "p": p, "verdict": verdict}
        cell = f"{diff:+.2f} ({low:+.2f} to {high:+.2f})"
        body.append([v, str(len(x)), cell, f"{p:.3g}", verdict])
    page.table(header, body, "variants_tests", pd.DataFrame(records))
    rule = f"p < {ALPHA} and the {page.confidence:.0%} CI of the difference excluding 0"
    said = f"beat the baseline {baseline} on FID beyond the seed noise ({rule})"
    words = f"{', '.join(better)} {said}." if better else f"No variant {said}."
    if worse:
        words += " Worse than the baseline beyond the seed noise: " + ", ".join(worse) + "."
    page.text(words)


def _column(runs: pd.DataFrame, match: Callable[[str], bool]) -> str | None:
    """The first column matching, per-class columns (``_class``) left out."""
    return next((c for c in runs.columns if "_class" not in c and match(c)), None)
