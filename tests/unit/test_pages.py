import math
from unittest.mock import ANY

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from ganstudy.errors import GanstudyError
from ganstudy.io import write_json
from ganstudy.pages import Section
from ganstudy.plots import save_grid
from ganstudy.stats import fid_ranks, kendall_w
from ganstudy.study.pages import study_section
from ganstudy.study.section import SAME
from ganstudy.study.studies import Published, Study

T975 = {2: 4.302652729911275, 3: 3.182446305284263}  # Student t quantile 0.975 by df (tables)
SIZES = {"tiny": {}, "quick": {}, "full": {}}


def _study(kind: str, baseline: str | None, published: list[Published]) -> Study:
    return Study(
        title=f"{kind} study",
        kind=kind,
        description="What it reproduces.",
        baseline=baseline,
        sizes=SIZES,
        published=published,
    )


def _half(values: list[float]) -> float:
    """The 95% t half-width by hand: t * sd / sqrt(n)."""
    return T975[len(values) - 1] * float(np.std(values, ddof=1)) / math.sqrt(len(values))


# Augmentation: classic at counts 0, 10, 20 and 30 (the equal-size control of dcgan's +10); a
# dcgan arm on top of the 20 classic at 0, 10, whose seed 2 generator fails the quality gate.
CLASSIC_ACC = {0: [0.60, 0.70, 0.80], 10: [0.70, 0.72, 0.80], 20: [0.74, 0.76, 0.81]}
CLASSIC_ACC[30] = [0.79, 0.85, 0.84]
GAN_ACC = {0: [0.74, 0.76, 0.81], 10: [0.80, 0.84, 0.86]}
CLASS_FID = {0: [10.0, 12.0, 30.0], 1: [8.0, 9.0, 11.0]}  # per class, by seed
MAX_CLASS_FID = 20.0


def _scores(accuracy: float) -> dict[str, float]:
    return {
        "accuracy": accuracy,
        "sensitivity_macro": accuracy - 0.05,
        "specificity_macro": accuracy + 0.05,
        "auc_macro": 0.9,
        "sensitivity_class0": accuracy,
        "specificity_class0": 1 - accuracy / 2,
        "sensitivity_class1": accuracy - 0.1,
        "specificity_class1": 0.9,
        "n_train": 0,
        "steps": 100,
        "best_step": 50,
        "val_accuracy": accuracy,
    }


def _write_arm(folder, arm: str, table: dict[int, list[float]], base: int) -> None:
    for seed in range(3):
        results = {}
        for count, accuracies in table.items():
            results[str(count)] = _scores(accuracies[seed]) | {"n_train": 30 + base + count}
        record = {"arm": arm, "seed": seed, "counts": list(table), "n_real": 30, "n_val": 30}
        record |= {"seconds": 60.0, "machine": "cpu, 2 cores, 1 threads"}
        if arm != "classic":
            fids = {str(k): v[seed] for k, v in CLASS_FID.items()}
            worst = max(fids.values())
            record["quality"] = {
                "metric": "fid_domain_1k_test_class<k>",
                "fid_class": fids,
                "worst": worst,
                "threshold": MAX_CLASS_FID,
                "passed": worst <= MAX_CLASS_FID,
            }
        write_json(
            folder / arm / f"{seed}.json", record | {"n_classic_base": base, "results": results}
        )


@pytest.fixture
def downstream(tmp_path):
    metrics = tmp_path / "metrics"
    _write_arm(metrics / "downstream", "classic", CLASSIC_ACC, 0)
    _write_arm(metrics / "downstream", "dcgan", GAN_ACC, 20)
    # Only the classic arm drew its picture: the GAN arm's is skipped, not an error.
    save_grid(torch.zeros(3, 1, 8, 8), metrics / "downstream" / "classic" / "0_sources.png")
    return metrics


def test_augmentation_section_tables_curve_tests_and_published(downstream, tmp_path):
    published = [
        Published(
            row="classic",
            metric="sensitivity_macro",
            value=0.786,
            dataset="182 CT liver lesions",
            source="Frid-Adar et al. 2018",
            note="3 lesion classes, cross-validation",
        ),
        Published(
            row="classic+synthetic",
            metric="sensitivity_macro",
            value=0.857,
            dataset="182 CT liver lesions",
            source="Frid-Adar et al. 2018",
        ),
    ]
    out = tmp_path / "report"
    section = study_section(
        _study("augmentation", "classic", published), pd.DataFrame(), downstream, out, 0.95
    )
    assert isinstance(section, Section)
    arms = section.tables["augmentation_arms"].set_index("arm")
    assert list(arms.index) == [
        "real only",
        "classic +10",
        "classic +20",
        "classic +30",
        "dcgan: classic +20, synthetic +0",
        "dcgan: classic +20, synthetic +10",
    ]
    # The quality gate: seed 2's worst class (30) is above 20; the arm is marked.
    assert arms.loc["dcgan: classic +20, synthetic +10", "quality gate"] == "2/3 seeds passed ⚠"
    assert arms.loc["classic +30", "quality gate"] == "–"
    assert "⚠ dcgan: the generators of seeds 2 failed the quality gate" in section.markdown
    fid = section.tables["augmentation_fid"].set_index("arm").loc["dcgan"]
    assert fid["fid_0_mean"] == pytest.approx(np.mean(CLASS_FID[0]))
    assert fid["fid_worst_mean"] == pytest.approx(np.mean([10.0, 12.0, 30.0]))
    assert fid["failed"] == "2" and fid["n"] == 3
    # The design, read off the records: one step budget, the control, the gate.
    assert "every classifier takes 100 optimizer steps" in section.markdown
    assert "worst per-class FID is at most 20" in section.markdown
    wall = "Classifier wall time: 6.0 min for 18 fits in 6 downstream stages (cpu, 2 cores, 1"
    assert wall in section.markdown
    # Per-class sensitivity and specificity of the compared rows.
    per_class = section.tables["augmentation_per_class"].set_index("arm")
    assert per_class.loc["classic +30", "specificity_class0_mean"] == pytest.approx(
        np.mean([1 - a / 2 for a in CLASSIC_ACC[30]])
    )
    assert "sensitivity class 1" in section.markdown
    real = arms.loc["real only"]
    assert real["accuracy_mean"] == pytest.approx(0.70)
    assert real["accuracy_ci"] == pytest.approx(_half([0.60, 0.70, 0.80]))
    assert real["n"] == 3 and real["seeds"] == "0, 1, 2" and real["n_train"] == "30"
    assert arms.loc["dcgan: classic +20, synthetic +10", "added"] == 30
    assert f"| real only | 0 | 0.700 ± {_half([0.6, 0.7, 0.8]):.3f} |" in section.markdown

    # Figures: the curve and the one picture that exists, both written under the report folder.
    rels = [rel for _, rel in section.figures]
    assert rels == [
        "figures/augmentation_curve.png",
        "figures/augmentation_classic_seed0_sources.png",
    ]
    assert all((out / rel).is_file() for rel in rels)
    assert all(f"src='{rel}'" in section.html for rel in rels)
    assert "data:image/png;base64," in section.inline_html(out)

    # Paired tests: dcgan at +10 vs its equal-size control (classic +30), and vs the classic
    # base (classic +20) as Frid-Adar et al. compare; a better GAN arm is a positive b - a.
    tests = section.tables["augmentation_tests"].set_index(["b", "a", "metric"])
    control = tests.loc[("dcgan: classic +20, synthetic +10", "classic +30", "accuracy")]
    assert control["mean_diff"] == pytest.approx(np.mean(np.subtract(GAN_ACC[10], CLASSIC_ACC[30])))
    assert control["verdict"] == SAME
    assert ("dcgan: classic +20, synthetic +10", "classic +30", "auc_macro") in tests.index
    tests = tests.reset_index("a")
    gan = tests[tests["a"] == "classic +20"].loc[("dcgan: classic +20, synthetic +10", "accuracy")]
    diff = np.subtract(GAN_ACC[10], CLASSIC_ACC[20])
    assert gan["a"] == "classic +20"
    assert gan["mean_diff"] == pytest.approx(diff.mean()) and gan["mean_diff"] > 0
    assert gan["ci_low"] == pytest.approx(diff.mean() - _half(list(diff)))
    assert gan["t_pvalue"] == pytest.approx(stats.ttest_rel(GAN_ACC[10], CLASSIC_ACC[20]).pvalue)
    assert math.isnan(gan["wilcoxon_pvalue"])  # 3 pairs: below the Wilcoxon minimum
    assert gan["verdict"] == "higher beyond the seed noise"
    classic = tests.loc[("classic +20", "accuracy")]
    assert classic["a"] == "real only" and classic["verdict"] == SAME
    assert "inconclusive (the interval of the difference holds 0)" in section.markdown

    # Published numbers beside ours, with source and note.
    pub = section.tables["augmentation_published"].set_index("row")
    assert pub.loc["classic", "ours_row"] == "classic +20"
    assert pub.loc["classic", "mean"] == pytest.approx(np.mean(CLASSIC_ACC[20]) - 0.05)
    assert pub.loc["classic+synthetic", "ours_row"] == "dcgan: classic +20, synthetic +10"
    assert pub.loc["classic+synthetic", "mean"] == pytest.approx(np.mean(GAN_ACC[10]) - 0.05)
    for text in (section.markdown, section.html):
        assert "0.857" in text and "Frid-Adar et al. 2018" in text
        assert "3 lesion classes, cross-validation" in text


def test_augmentation_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(GanstudyError, match="downstream"):
        study_section(_study("augmentation", None, []), pd.DataFrame(), tmp_path, tmp_path, 0.95)


# Classifier: SGAN's head vs the supervised-only baseline by seed; dcgan has no head.
def _classifier_runs(with_head: bool = True) -> pd.DataFrame:
    rows = []
    heads = {"sgan": [0.88, 0.90, 0.95], "sgan-supervised": [0.70, 0.71, 0.72], "dcgan": [None] * 3}
    for variant, accuracies in heads.items():
        for seed, accuracy in enumerate(accuracies):
            row = {"variant": variant, "seed": seed, "fid_domain_10k_test": 10.0}
            rows.append(row | ({"head_accuracy_test": accuracy} if with_head else {}))
    return pd.DataFrame(rows)


BOOK = "GANs in Action §7.3"


def test_classifier_section_tables_tests_and_published(tmp_path):
    published = [
        Published(row="sgan", metric="accuracy", value=0.89, dataset="MNIST", source=BOOK),
        Published(
            row="sgan-supervised",
            metric="accuracy",
            value=0.70,
            dataset="MNIST",
            source=BOOK,
            note="Keras, 30 epochs",
        ),
    ]
    study = _study("classifier", "sgan-supervised", published)
    section = study_section(study, _classifier_runs(), tmp_path, tmp_path, 0.95)
    heads = section.tables["classifier_heads"].set_index("variant")
    assert heads.loc["sgan", "head_accuracy_test_mean"] == pytest.approx(0.91)
    assert heads.loc["sgan", "head_accuracy_test_ci"] == pytest.approx(_half([0.88, 0.90, 0.95]))
    assert heads.loc["sgan", "published (MNIST)"] == "0.890"
    assert heads.loc["dcgan", "n"] == 0
    assert "| dcgan | – | 0 |" in section.markdown  # missing head accuracy: –, not a failure
    assert "no single class head" in section.markdown

    tests = section.tables["classifier_tests"].set_index("b")
    sgan = tests.loc["sgan"]
    assert sgan["a"] == "sgan-supervised"
    assert sgan["mean_diff"] == pytest.approx(0.91 - 0.71) and sgan["ci_low"] > 0
    assert sgan["verdict"] == "higher beyond the seed noise"
    assert tests.loc["dcgan", "n"] == 0 and "dcgan vs sgan-supervised" in section.markdown
    assert "sgan higher than sgan-supervised beyond the seed noise" in section.markdown
    assert "| 0.910 ± " in section.markdown and "| +0.020 |" in section.markdown  # ours − book
    assert sgan["detectable"] > 0  # what the design could resolve, beside the verdict

    pub = section.tables["classifier_published"].set_index("row")
    assert pub.loc["sgan", "mean"] == pytest.approx(0.91)
    assert "Keras, 30 epochs" in section.html


def test_classifier_without_head_column_shows_dashes(tmp_path):
    study = _study("classifier", "sgan-supervised", [])
    section = study_section(study, _classifier_runs(with_head=False), tmp_path, tmp_path, 0.95)
    assert (section.tables["classifier_heads"]["n"] == 0).all()
    assert "not tested (0 paired seeds)" in section.markdown


def test_unknown_baseline_and_percent_published_are_clear_errors(tmp_path):
    with pytest.raises(GanstudyError, match="baseline 'nope'"):
        study_section(
            _study("classifier", "nope", []), _classifier_runs(), tmp_path, tmp_path, 0.95
        )
    percent = Published(row="sgan", metric="accuracy", value=89.0, dataset="MNIST", source=BOOK)
    with pytest.raises(GanstudyError, match="fraction"):
        study_section(
            _study("classifier", None, [percent]), _classifier_runs(), tmp_path, tmp_path, 0.95
        )


# Variants: lsgan lowest FID in every seed, then dcgan, then wgan.
FIDS = {"dcgan": [30.0, 32.0, 31.0, 33.0], "wgan": [31.0, 50.0, 32.0, 48.0]}
FIDS["lsgan"] = [18.0, 21.0, 19.0, 24.0]  # spread unlike dcgan: Welch df != pooled df


def _variant_runs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "variant": variant,
            "seed": seed,
            "fid_domain_10k_test": fid,
            "fid_domain_10k_test_classmean": 1.0,  # not the FID column
            "kid_domain_10k_test_mean": fid * 2,
            "kid_domain_10k_test_std": 1.0,
            "precision_domain_10k_test": 0.5,
            "recall_domain_10k_test": 0.25,
        }
        for variant, fids in FIDS.items()
        for seed, fid in enumerate(fids)
    )


def test_variants_section_ranks_welch_and_published(tmp_path):
    note = "Inception features, 10k samples"
    published = [
        Published(row="dcgan", metric="fid", value=6.7, dataset="MNIST", source="Lucic", note=note),
        Published(row="dcgan", metric="fid", value=26.5, dataset="Fashion-MNIST", source="Lucic"),
        Published(row="wgan", metric="fid", value=6.7, dataset="MNIST", source="Lucic"),
    ]
    section = study_section(
        _study("variants", "dcgan", published), _variant_runs(), tmp_path, tmp_path, 0.95
    )
    table = section.tables["variants"].set_index("variant")
    assert table.loc["wgan", "fid_domain_10k_test_mean"] == pytest.approx(40.25)
    assert table.loc["wgan", "fid_domain_10k_test_ci"] == pytest.approx(_half(FIDS["wgan"]))
    assert table.loc["lsgan", "kid_domain_10k_test_mean_mean"] == pytest.approx(41.0)
    assert table.loc["dcgan", "published (MNIST)"] == "6.70"
    assert table.loc["dcgan", "published (Fashion-MNIST)"] == "26.50"
    assert pd.isna(table.loc["lsgan", "published (MNIST)"])
    assert list(table["rank_mean"]) == [2.0, 3.0, 1.0] and (table["rank_std"] == 0).all()
    assert "Kendall's W = 1.00" in section.markdown

    tests = section.tables["variants_tests"].set_index("variant")
    x, base = np.array(FIDS["lsgan"]), np.array(FIDS["dcgan"])
    se2 = x.var(ddof=1) / 4 + base.var(ddof=1) / 4  # Welch by hand: df from Satterthwaite
    df = se2**2 / ((x.var(ddof=1) / 4) ** 2 / 3 + (base.var(ddof=1) / 4) ** 2 / 3)
    half = stats.t.ppf(0.975, df) * math.sqrt(se2)
    assert tests.loc["lsgan", "diff"] == pytest.approx(-11.0)
    assert tests.loc["lsgan", "ci_high"] == pytest.approx(-11.0 + half)
    assert tests.loc["lsgan", "p"] == pytest.approx(2 * stats.t.sf(11.0 / math.sqrt(se2), df))
    assert tests.loc["lsgan", "verdict"] == "better beyond the seed noise"
    assert (
        tests.loc["wgan", "verdict"] == SAME
    )  # wgan: higher, but its seeds spread over 19 FID points
    assert "lsgan beat the baseline dcgan on FID beyond the seed noise" in section.markdown
    for text in (section.markdown, section.html):
        assert note in text and "26.50" in text
    assert section.figures == [(ANY, "figures/variants_spread.png")]
    assert (tmp_path / "figures" / "variants_spread.png").stat().st_size > 0


def test_published_numbers_of_our_dataset_only(tmp_path):
    """Lucic's MNIST FIDs are not set beside our Fashion-MNIST runs; a study whose sources used
    none of our datasets keeps all its numbers (the augmentation study's proxy)."""
    published = [
        Published(row="dcgan", metric="fid", value=6.7, dataset="MNIST", source="Lucic"),
        Published(row="dcgan", metric="fid", value=26.5, dataset="Fashion-MNIST", source="Lucic"),
    ]
    study = _study("variants", "dcgan", published)
    section = study_section(study, _variant_runs(), tmp_path, tmp_path, 0.95, "fashion-mnist")
    table = section.tables["variants"].set_index("variant")
    assert table.loc["dcgan", "published (Fashion-MNIST)"] == "26.50"
    assert "published (MNIST)" not in table.columns
    assert list(section.tables["variants_published"]["dataset"]) == ["Fashion-MNIST"]
    assert "6.70" not in section.markdown
    section = study_section(study, _variant_runs(), tmp_path, tmp_path, 0.95, "digits")
    assert list(section.tables["variants_published"]["dataset"]) == ["MNIST", "Fashion-MNIST"]


def test_variants_no_winner_is_said(tmp_path):
    runs = _variant_runs()
    runs = runs[runs["variant"] != "lsgan"]
    section = study_section(_study("variants", "dcgan", []), runs, tmp_path, tmp_path, 0.95)
    assert "No variant beat the baseline dcgan on FID beyond the seed noise" in section.markdown


def test_fid_ranks_and_kendall_w():
    ranks = fid_ranks(_variant_runs(), "fid_domain_10k_test")
    assert ranks.to_numpy().tolist() == [[2.0, 3.0, 1.0]] * 4  # identical order in every seed
    assert kendall_w(ranks.to_numpy()) == pytest.approx(1.0)
    assert kendall_w(np.array([[1, 2], [2, 1]])) == pytest.approx(0.0)  # opposite orders
    assert math.isnan(kendall_w(np.array([[1, 2, 3]])))  # one seed: undefined
    # With ties, W matches Friedman's tie-corrected statistic: chi2 = m (n - 1) W.
    ranks = np.array([[1, 2.5, 2.5, 4], [2, 1, 3, 4], [1, 2, 3, 4], [1.5, 1.5, 4, 3]])
    chi2 = stats.friedmanchisquare(*ranks.T).statistic
    assert kendall_w(ranks) == pytest.approx(chi2 / (4 * 3))
