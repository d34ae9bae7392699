"""The champion: the lowest-FID run of one generator, registered once under an alias."""

import math
from pathlib import Path

import mlflow
import mlflow.pytorch
import pandas as pd
import pytest
import torch

from ganstudy.config import TrackingConfig
from ganstudy.io import write_json
from ganstudy.study.registry import candidates, primary_fid
from ganstudy.tracking import Candidate, register_champion, start_run
from tests.conftest import fresh_mlflow_uri


class TinyG(torch.nn.Module):
    z_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)).view(-1, 1, 2, 2)


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch) -> TrackingConfig:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_mlflow_uri(tmp_path))
    monkeypatch.chdir(tmp_path)  # the execution key's params file: none here
    return TrackingConfig(uri="sqlite:///unused.db", artifacts=str(tmp_path / "artifacts"))


def _run(cfg: TrackingConfig, name: str, models: list[str]) -> str:
    with start_run(cfg, "reg", name, {"variant": name}) as run:
        for model in models:
            run.log_generator(TinyG(), name=model)
        return run.run_id


def test_candidates_skip_per_class_runs_and_missing_fids(tmp_path):
    runs = pd.DataFrame(
        {
            "variant": ["a", "a", "pc"],
            "seed": [0, 1, 0],
            "fid_domain_120_test_class0": [1.0, 1.0, 1.0],
            "fid_domain_120_test": [3.0, math.nan, 1.0],
        }
    )
    assert primary_fid(runs) == "fid_domain_120_test"
    for variant, seed in (("a", 0), ("a", 1), ("pc", 0)):
        write_json(tmp_path / variant / str(seed) / "run.json", {"run_id": f"{variant}{seed}"})
    write_json(tmp_path / "pc" / "0" / "per_class.json", {"classes": [0, 1]})
    assert candidates(runs, tmp_path) == [Candidate("a0", "fid_domain_120_test", 3.0, "a", 0)]


def test_best_generator_is_champion_and_stays_one_version(cfg):
    worse, best, several = (
        _run(cfg, "worse", ["generator"]),
        _run(cfg, "best", ["generator"]),
        _run(cfg, "pc", ["generator_class0", "generator_class1"]),
    )
    pool = [
        Candidate(worse, "fid", 9.0, "worse", 0),
        Candidate(best, "fid", 2.0, "best", 0),
        Candidate(several, "fid", 1.0, "pc", 0),  # no single generator: never the champion
    ]
    first = register_champion(cfg, "reg", pool)
    assert first.candidate.run_id == best and first.changed and first.version == "1"
    again = register_champion(cfg, "reg", pool)
    assert not again.changed and again.version == "1"
    G = mlflow.pytorch.load_model(first.uri)
    assert G(torch.randn(3, 2)).shape == (3, 1, 2, 2)
    changed = register_champion(cfg, "reg", [Candidate(worse, "fid", 0.5, "worse", 0)])
    assert changed.changed and changed.version == "2"
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("ganstudy-reg", "champion").run_id == worse
