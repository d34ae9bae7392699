"""The classifier study's section (GANs in Action ch. 7: SGAN with 100 labels): D's class-head
test accuracy per variant, paired by seed with the supervised-only baseline."""

import pandas as pd

from ganstudy.pages import Section
from ganstudy.study.section import StudyPage, by_seed, require, variant_lookup
from ganstudy.study.studies import Study

HEAD = "head_accuracy_test"  # D's class-head accuracy on the test split (metrics/head.py)


def classifier_section(study: Study, runs: pd.DataFrame, confidence: float) -> Section:
    """D's class-head test accuracy per variant beside the book's; each variant paired by seed
    with the supervised-only baseline (``study.baseline``). Published metric ``accuracy`` means
    the head's test accuracy here."""
    require(runs, ["variant", "seed"], "runs")
    variants = list(dict.fromkeys(runs["variant"]))
    aliases = {"accuracy": HEAD, "head_accuracy": HEAD}
    page = StudyPage(study, confidence)
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
    missing = [v for v in variants if by_seed(runs[runs["variant"] == v], HEAD).isna().all()]
    if missing:
        page.text(f"No {HEAD} in the metrics of {', '.join(missing)} (no single class head): –.")
    if page.baseline(variants):
        base = by_seed(runs[runs["variant"] == study.baseline], HEAD)
        page.paired_tests(
            "classifier_tests",
            [
                (v, study.baseline, HEAD, base, by_seed(runs[runs["variant"] == v], HEAD))
                for v in variants
                if v != study.baseline
            ],
        )
    page.published("classifier_published", variant_lookup(runs, aliases))
    return page.done()
