"""What every study section shares: the study page (its opening, tables of ours over seeds,
published numbers beside ours, paired tests over seeds) and the helpers that read our values by
seed. The sections themselves: ``augmentation_page``, ``classifier_page``, ``variants_page``;
``pages.study_section`` picks one by the study's kind."""

import math
import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from ganstudy.errors import GanstudyError
from ganstudy.pages import Page
from ganstudy.stats import format_ci, mean_ci, paired_test
from ganstudy.study.studies import Published, Study

RATE = re.compile(r"^(accuracy|sensitivity|specificity|auc|head_accuracy|precision|recall)")
SAME = "inconclusive (the interval of the difference holds 0)"

Values = pd.Series  # one metric of one row of ours, indexed by seed (NaN: no value)
Match = tuple[str, Values | None]  # our row's label and values (None: we do not measure it)
Comparison = tuple[str, str, str, Values, Values]  # b, a, metric, a's values, b's values


class StudyPage(Page):
    """A study's section of a page: its title, description and interval note first; tables of
    ours over seeds, published numbers beside ours and tests, each kept as a data frame."""

    def __init__(self, study: Study, confidence: float) -> None:
        super().__init__()
        self.study, self.confidence = study, confidence
        self.heading(study.title, 2)
        self.text(study.description.strip())
        self.text(
            f"Ours: mean ± {confidence:.0%} t-interval over seeds (none with one seed); "
            "n = seeds with a value."
        )

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
                values = by_seed(rows, column).dropna()
                mean, half, n = mean_ci(values, self.confidence)
                cells[head] = format_ci(mean, half, 3 if RATE.match(column or "") else 2)
                record |= {f"{column or head}_mean": mean, f"{column or head}_ci": half}
                if head == next(iter(metrics)):
                    cells["n"], cells["seeds"] = str(n), seed_list(values.index)
                    record |= {"n": n, "seeds": cells["seeds"]}
            for head, value in (extra(rows) if extra else {}).items():
                record[head] = value
                if head in header:
                    cells[head] = str(value)
            key = str(next(iter(keys.values())))
            body.append([cells[h] for h in header] + [c.get(key, "–") for c in published.values()])
            records.append(record | {h: c.get(key) for h, c in published.items()})
        self.table(header + list(published), body, name, pd.DataFrame(records))

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
                seeds = seed_list(known.index)
                mine = {"ours_row": label, "mean": mean, "ci": half, "n": n, "seeds": seeds}
                records.append(p.model_dump() | mine)
                gap = "–" if math.isnan(mean) else f"{mean - p.value:+.{digits}f}"
                cells = [p.metric, f"{p.value:.{digits}f}", p.dataset, p.source, ours, gap]
                body.append([f"{p.row} → ours: {label}", *cells, str(n), seeds])
        self.table(header, body, name, pd.DataFrame(records))
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
            verdict = interval_verdict(t.ci_low, t.ci_high)
            records[-1] |= {k: getattr(t, k) for k in ("mean_diff", "ci_low", "ci_high")}
            records[-1] |= {"t_pvalue": t.t_pvalue, "wilcoxon_pvalue": t.wilcoxon_pvalue}
            records[-1] |= {"seeds": seed_list(both.index), "verdict": verdict}
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
        self.table(header, body, name, pd.DataFrame(records))
        self.bullets(words)


def variant_lookup(
    runs: pd.DataFrame, aliases: dict[str, str]
) -> Callable[[Published], list[Match]]:
    """Published row = our variant; its metric through ``aliases`` to our column."""

    def lookup(p: Published) -> list[Match]:
        rows = runs[runs["variant"] == p.row]
        if rows.empty:
            return []
        metric = aliases.get(p.metric, p.metric)
        return [(p.row, by_seed(rows, metric) if metric in runs else None)]

    return lookup


def interval_verdict(low: float, high: float) -> str:
    """What the interval of b - a says: SAME when it covers 0 (or does not exist)."""
    if math.isnan(low) or low <= 0 <= high:
        return SAME
    return ("higher" if low > 0 else "lower") + " beyond the seed noise"


def require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise GanstudyError(f"{what}: missing columns {missing}; have {list(df.columns)}")


def by_seed(rows: pd.DataFrame, metric: str | None) -> Values:
    """``metric`` of ``rows`` indexed by seed; NaN where missing (no column, null in JSON)."""
    seeds = rows["seed"].astype(int).to_numpy()
    if metric is None or metric not in rows:
        return pd.Series(math.nan, index=seeds, dtype=float)
    return pd.Series(pd.to_numeric(rows[metric], errors="coerce").to_numpy(float), index=seeds)


def seed_list(seeds: pd.Index | pd.Series) -> str:
    return ", ".join(str(int(s)) for s in sorted(seeds))
