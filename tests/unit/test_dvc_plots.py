"""`dvc plots`: the report's long table of training curves, and dvc.yaml's plot definitions
resolved by DVC itself over it (any game's columns, no column named in dvc.yaml but step)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from ganstudy.report import TRAINING_CURVES, training_curves

ROOT = Path(__file__).resolve().parents[2]


def _histories() -> dict[str, pd.DataFrame]:
    gan = pd.DataFrame({"step": [1, 2], "Loss/D": [1.0, 0.8], "Loss/G": [0.5, 0.7]})
    # A semi-supervised run logs a head's accuracy at some steps only; a VAE has no D.
    sgan = gan.assign(**{"Head/val_accuracy": [float("nan"), 0.6]})
    vae = pd.DataFrame({"step": [1, 2], "Loss/G": [3.0, 2.5], "VAE/kl": [0.1, 0.2]})
    return {"dcgan seed 0": gan, "sgan seed 0": sgan, "vae seed 1": vae}


def test_training_curves_is_one_long_table_of_whatever_was_logged():
    table = training_curves(_histories())
    assert list(table.columns) == ["step", "run", "quantity", "value"]
    assert len(table) == 4 + 5 + 4  # the head's missing step is left out, not a NaN
    sgan = table[table["run"] == "sgan seed 0"]
    assert set(sgan["quantity"]) == {"Loss/D", "Loss/G", "Head/val_accuracy"}
    assert sgan.loc[sgan["quantity"] == "Head/val_accuracy", "value"].tolist() == [0.6]
    assert training_curves({}).empty


def test_dvc_yaml_plots_render_through_dvc(tmp_path):
    """DVC resolves the plots of dvc.yaml (templated paths, the custom template) over a
    report folder and fills the chart with every run's every quantity, and the figures."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"paths": {"report": "report"}}))
    shutil.copytree(ROOT / ".dvc" / "plots", tmp_path / ".dvc" / "plots")
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = true\n    analytics = false\n")
    report = tmp_path / "report"
    (report / "plots").mkdir(parents=True)
    training_curves(_histories()).to_csv(report / TRAINING_CURVES, index=False)
    (report / "figures").mkdir()
    (report / "figures" / "dcgan_seed0_samples.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = Path(sys.executable).with_name("dvc")
    out = subprocess.run(
        [str(dvc), "plots", "show", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    shown = json.loads(out.stdout)
    assert not shown.get("errors"), shown["errors"]
    curves = shown["data"][f"report/{TRAINING_CURVES}"][0]
    values = curves["content"]["data"]["values"]
    assert {(v["run"], v["quantity"]) for v in values} >= {
        ("sgan seed 0", "Head/val_accuracy"),
        ("vae seed 1", "VAE/kl"),
        ("dcgan seed 0", "Loss/D"),
    }
    assert curves["content"]["facet"]["field"] == "quantity"  # our template, one panel each
    assert shown["data"]["report/figures/dcgan_seed0_samples.png"][0]["type"] == "image"
