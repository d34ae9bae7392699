"""Per-study report sections: our numbers over seeds beside the published ones, and the tests.

One section per study kind (``Study.kind``), each in its module over the shared study page
(``study/section.py``) and the one page builder (``ganstudy.pages``):

- ``augmentation`` (``augmentation_page``): Frid-Adar et al. 2018 (arXiv 1801.02385; GANs in
  Action ch. 11.1, figure 11.3): the downstream classifier per arm and count, the accuracy curve,
  and paired tests of classic augmentation vs real only and of each GAN arm vs classic
  augmentation.
- ``classifier`` (``classifier_page``): GANs in Action ch. 7 (SGAN with 100 labels): D's
  class-head test accuracy per variant, paired by seed with the supervised-only baseline.
- ``variants`` (``variants_page``): Lucic et al. 2017 ("Are GANs Created Equal?", arXiv
  1711.10337): FID, KID, precision and recall per variant, FID ranks within seeds with Kendall's
  W, and Welch tests of each variant's FID against the NS GAN baseline.
"""

import re
from pathlib import Path

import pandas as pd

from ganstudy.errors import GanstudyError
from ganstudy.pages import Section
from ganstudy.study.augmentation_page import augmentation_section
from ganstudy.study.classifier_page import classifier_section
from ganstudy.study.section import RATE
from ganstudy.study.studies import Study
from ganstudy.study.variants_page import variants_section


def study_section(
    study: Study,
    runs: pd.DataFrame,
    metrics_dir: Path,
    out_dir: Path,
    confidence: float,
    dataset: str | None = None,
) -> Section:
    """The study's section of the report, by ``study.kind``.

    Args:
        study: the study file (title, kind, baseline, published numbers).
        runs: ``ganstudy.report.collect_runs`` (one row per variant x seed).
        metrics_dir: the metrics folder (the augmentation study reads ``downstream/`` in it).
        out_dir: the report folder being written; figures go to ``out_dir / "figures"``.
        confidence: two-sided level of every interval.
        dataset: our runs' dataset (``download.dataset``): where the study publishes numbers
            for it, those of its other datasets are not set beside ours.
    """
    for p in study.published:
        if RATE.match(p.metric) and not 0.0 <= p.value <= 1.0:
            raise GanstudyError(
                f"study {study.title!r}: published {p.row} {p.metric} = {p.value} is a rate; "
                "write it as a fraction (e.g. 0.857), as our metrics are"
            )
    study = published_for(study, dataset)
    if study.kind == "augmentation":
        return augmentation_section(study, Path(metrics_dir), Path(out_dir), confidence)
    if study.kind == "classifier":
        return classifier_section(study, runs, confidence)
    if study.kind == "variants":
        return variants_section(study, runs, Path(out_dir), confidence)
    raise GanstudyError(f"study kind {study.kind!r} has no report page")


def published_for(study: Study, dataset: str | None) -> Study:
    """The study with only the published numbers of ``dataset`` when it has some (Lucic's
    Fashion-MNIST FIDs beside our Fashion-MNIST runs, not his MNIST ones). A study whose sources
    used none of our datasets (the augmentation study's private CT lesions beside its proxy)
    keeps them all: they are the only numbers there are to compare with."""
    same = [p for p in study.published if dataset and _name(p.dataset) == _name(dataset)]
    return study.model_copy(update={"published": same}) if same else study


def _name(dataset: str) -> str:
    """A dataset's name without case and punctuation: "Fashion-MNIST" is fashion-mnist."""
    return re.sub(r"[^a-z0-9]", "", dataset.lower())
