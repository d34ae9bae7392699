"""Parent and child runs, their tags, and the flow's contract (begin/end_study_run)."""

import subprocess
import sys
import threading
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from ganstudy import execution
from ganstudy.config import TrackingConfig
from ganstudy.tracking import PARENT_TAG, begin_study_run, end_study_run, start_run
from tests.conftest import ROOT, fresh_mlflow_uri, tiny_params


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> mlflow.MlflowClient:
    uri = fresh_mlflow_uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for var in (execution.PARENT_RUN_ENV, execution.FLOW_RUN_ENV, "DVC_STAGE", "DVC_ROOT"):
        monkeypatch.delenv(var, raising=False)
    return mlflow.MlflowClient(uri)


@pytest.fixture
def cfg(tmp_path: Path) -> TrackingConfig:
    return TrackingConfig(uri="sqlite:///unused.db", artifacts=str(tmp_path / "artifacts"))


def _params(folder: Path, **study) -> Path:
    params = tiny_params()
    params["study"].update(study)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _child(cfg, params: Path, name: str = "dcgan-seed0", run_id=None, **tags) -> str:
    base = {"variant": "dcgan", "seed": "0", "dataset": "digits", **tags}
    with start_run(cfg, "tiny", name, base, run_id, root=params.parent, params_path=params) as run:
        run.log_metrics({"Loss/G": 1.0}, step=1)
        return run.run_id


def test_module_imports_no_torch():
    # The flow imports ganstudy.tracking; the package __init__ (torchvision shim) is left out
    # here, as this checks tracking's own imports.
    code = (
        "import importlib.util, sys, types\n"
        "spec = importlib.util.find_spec('ganstudy')\n"
        "pkg = types.ModuleType('ganstudy'); pkg.__path__ = spec.submodule_search_locations\n"
        "sys.modules['ganstudy'] = pkg\n"
        "import ganstudy.tracking\n"
        "assert 'torch' not in sys.modules, 'tracking imports torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_flow_parent_nests_children_and_carries_flow_run(store, cfg, tmp_path, monkeypatch):
    params = _params(tmp_path)
    parent = begin_study_run(str(tmp_path), "params.yaml", {"prefect.flow_run_id": "f-1"})
    monkeypatch.setenv(execution.PARENT_RUN_ENV, parent)
    monkeypatch.setenv(execution.FLOW_RUN_ENV, "f-1")
    child = store.get_run(_child(cfg, params))
    assert child.data.tags[PARENT_TAG] == parent
    assert child.data.tags["prefect.flow_run_id"] == "f-1"
    assert {"variant", "seed", "dataset"} <= set(child.data.tags)
    assert child.info.status == "FINISHED"
    end_study_run(parent, str(tmp_path), "params.yaml", "FAILED")
    run = store.get_run(parent)
    assert run.info.status == "FAILED"
    assert run.data.tags["ganstudy.role"] == "study"
    assert run.data.params["study.name"] == "tiny"


def test_one_parent_per_revision_and_params(store, cfg, tmp_path):
    same = _params(tmp_path / "a")
    first, second = _child(cfg, same, "dcgan-seed0"), _child(cfg, same, "dcgan-seed1")
    other = _params(tmp_path / "b", seeds=[5])  # `dvc exp run -S study.seeds=[5]`
    third = _child(cfg, other, "dcgan-seed5")
    parents = [store.get_run(r).data.tags[PARENT_TAG] for r in (first, second, third)]
    assert parents[0] == parents[1] != parents[2]


def test_parallel_items_share_one_parent_and_keep_their_metrics(store, cfg, tmp_path):
    params = _params(tmp_path)
    runs: dict[int, str] = {}

    def item(seed: int) -> None:
        name = f"dcgan-seed{seed}"
        with start_run(cfg, "tiny", name, {"seed": str(seed)}, params_path=params) as run:
            for step in range(20):
                run.log_metrics({"Loss/G": seed + step / 100}, step=step)
            runs[seed] = run.run_id

    threads = [threading.Thread(target=item, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({store.get_run(r).data.tags[PARENT_TAG] for r in runs.values()}) == 1
    for seed, run_id in runs.items():
        history = store.get_metric_history(run_id, "Loss/G")
        assert sorted(m.value for m in history) == [seed + s / 100 for s in range(20)]


def test_resumed_run_joins_the_current_parent_and_stage_tags(store, cfg, tmp_path, monkeypatch):
    params = _params(tmp_path)
    monkeypatch.setenv("DVC_STAGE", "train@dcgan-0")
    run_id = _child(cfg, params)
    monkeypatch.setenv("DVC_STAGE", "evaluate@dcgan-0")
    parent = begin_study_run(str(tmp_path), "params.yaml", {})
    monkeypatch.setenv(execution.PARENT_RUN_ENV, parent)
    assert _child(cfg, params, run_id=run_id) == run_id
    tags = store.get_run(run_id).data.tags
    assert tags[PARENT_TAG] == parent
    assert tags["dvc.stage"] == "train@dcgan-0"
    assert tags["dvc.evaluate.stage"] == "evaluate@dcgan-0"
    # DVC_STAGE says DVC runs this, but tmp_path is no DVC repository: DVC's call fails, and
    # the run says why instead of the hash (test_a_failing_stage_hash_is_a_warning...).
    assert "dvc.stage_hash" not in tags and "NotDvcRepoError" in tags["dvc.stage_hash_error"]


def test_parent_of_another_store_is_a_clear_error(store, cfg, tmp_path, monkeypatch):
    from ganstudy.errors import GanstudyError

    monkeypatch.setenv(execution.PARENT_RUN_ENV, "0" * 32)
    with pytest.raises(GanstudyError, match="GANSTUDY_PARENT_RUN_ID=0+ is not a run"):
        _child(cfg, _params(tmp_path))


def test_the_last_stage_closes_the_parent_and_makes_none_when_no_item_ran(store, cfg, tmp_path):
    from ganstudy.tracking import finish_study_run

    params = _params(tmp_path)
    assert finish_study_run(cfg, "tiny", tmp_path, params) is None  # everything was cached
    parent = store.get_run(_child(cfg, params)).data.tags[PARENT_TAG]
    assert store.get_run(parent).info.status == "RUNNING"
    assert finish_study_run(cfg, "tiny", tmp_path, params) == parent
    assert store.get_run(parent).info.status == "FINISHED"


def test_experiments_open_on_training_runs(store, cfg, tmp_path):
    from ganstudy.tracking import KIND, KIND_TAG

    _child(cfg, _params(tmp_path))
    assert store.get_experiment_by_name("ganstudy/tiny").tags[KIND_TAG] == KIND
    # An experiment made before the tag existed (or by hand) gets it on its next run.
    old = store.create_experiment("ganstudy/old")
    with start_run(cfg, "old", "r", {}, params_path=tmp_path / "params.yaml"):
        pass
    assert store.get_experiment(old).tags[KIND_TAG] == "custom_model_development"


def test_the_parent_carries_the_study_summary_and_report(store, cfg, tmp_path, monkeypatch):
    import pandas as pd

    from ganstudy.config import StudyConfig
    from ganstudy.study.registry import close_execution, summary_metrics

    params = _params(tmp_path)
    parent = store.get_run(_child(cfg, params)).data.tags[PARENT_TAG]
    summary = pd.DataFrame(
        {
            "variant": ["dcgan", "dcgan", "wgan", "wgan"],
            "metric": ["fid_domain_10k_test", "fid_domain_10k_test_class3"] * 2,
            "mean": [12.5, 30.0, float("nan"), 40.0],
        }
    )
    assert summary_metrics(summary) == {"fid_domain_10k_test/dcgan": 12.5}  # per-class, NaN: no
    report = tmp_path / "report"
    (report / "figures").mkdir(parents=True)
    (report / "index.html").write_text("<html>study</html>")
    (report / "figures" / "dcgan_loss.png").write_bytes(b"png")
    study = StudyConfig.model_validate({**yaml.safe_load(params.read_text())["study"]})
    monkeypatch.chdir(tmp_path)  # the report stage runs in the project
    assert close_execution(summary, study, cfg, report, params) == parent
    run = store.get_run(parent)
    assert run.data.metrics == {"fid_domain_10k_test/dcgan": 12.5}
    assert run.info.status == "FINISHED"
    paths = {a.path for a in store.list_artifacts(parent, "report")}
    assert paths == {"report/index.html", "report/figures"}
    page = Path(store.download_artifacts(parent, "report/index.html", str(tmp_path / "dl")))
    assert page.read_text() == "<html>study</html>"


def test_a_resumed_run_does_not_log_its_steps_twice(store, cfg, tmp_path):
    from ganstudy.training.loop import train_gan
    from tests.unit.test_training import IMAGE, VARIANT
    from tests.unit.test_training import cfg as train_cfg

    images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    params, out = _params(tmp_path), tmp_path / "run"
    train = train_cfg(6, checkpoint_every=2, sample_every=1)  # logs every step

    def killed_at_3(step: int, _) -> None:
        if step == 3:  # steps 1-3 are logged, the last checkpoint is step 2
            raise KeyboardInterrupt

    def attempt(run_id, on_samples=None) -> str:
        with start_run(cfg, "tiny", "r", {}, run_id, params_path=params) as run:
            sink = run.history_sink(resumed=run.run_id == run_id)
            train_gan(images, IMAGE, "dcgan", VARIANT, train, 3, out, sink, on_samples)
            return run.run_id

    with pytest.raises(KeyboardInterrupt):
        attempt(None, killed_at_3)
    first = store.search_runs([store.get_experiment_by_name("ganstudy/tiny").experiment_id])[0]
    assert first.info.status == "FAILED"
    assert attempt(first.info.run_id) == first.info.run_id
    history = store.get_metric_history(first.info.run_id, "Loss/G")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]  # step 3 once, not twice


def test_only_a_missing_run_starts_a_new_one(store, cfg, tmp_path, monkeypatch, capsys):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

    from ganstudy.errors import GanstudyError

    params = _params(tmp_path)
    run_id = _child(cfg, params)
    # The store lost the run (reset, deleted): a new run, and stderr says so.
    gone = "0" * 32
    assert _child(cfg, params, run_id=gone) != gone
    assert f"MLflow run {gone} is not in" in capsys.readouterr().err
    # Any other error looking the run up fails the stage with one line; no new run appears.
    experiment = store.get_experiment_by_name("ganstudy/tiny").experiment_id
    before = len(store.search_runs([experiment]))
    real_get_run = mlflow.MlflowClient.get_run

    def broken(self, rid):
        if rid == run_id:
            raise MlflowException("permission denied for run", INTERNAL_ERROR)
        return real_get_run(self, rid)

    monkeypatch.setattr(mlflow.MlflowClient, "get_run", broken)
    with pytest.raises(GanstudyError, match="permission denied for run") as err:
        _child(cfg, params, run_id=run_id)
    assert "\n" not in str(err.value)
    assert len(store.search_runs([experiment])) == before


def test_a_failed_close_is_not_silent(store, cfg, tmp_path, monkeypatch, capsys):
    from mlflow.exceptions import MlflowException

    from ganstudy.errors import GanstudyError

    params = _params(tmp_path)
    _child(cfg, params)  # the experiment and parent exist

    def refuse(self, run_id, status=None, end_time=None):
        raise MlflowException(f"cannot set {status}")

    monkeypatch.setattr(mlflow.MlflowClient, "set_terminated", refuse)
    # The item's work succeeded: the stage fails, naming the run it could not close.
    with pytest.raises(GanstudyError, match="could not mark run [0-9a-f]{32} FINISHED"):
        _child(cfg, params, "dcgan-seed1")
    # The item's work failed: its own error stays the one raised; the close is a warning.
    with (
        pytest.raises(ValueError, match="loss is NaN"),
        start_run(cfg, "tiny", "r", {}, params_path=params),
    ):
        raise ValueError("loss is NaN")
    assert "could not mark MLflow run" in capsys.readouterr().err


def test_a_failing_stage_hash_is_a_warning_and_a_tag(store, cfg, tmp_path, monkeypatch, capsys):
    params = _params(tmp_path)
    monkeypatch.setenv("DVC_STAGE", "train@dcgan-0")

    def broken(root=None):
        raise execution.StageHashError("KeyError: 'md5'")

    monkeypatch.setattr(execution, "dvc_stage_hash", broken)
    tags = store.get_run(_child(cfg, params)).data.tags
    assert tags["dvc.stage_hash_error"] == "KeyError: 'md5'" and "dvc.stage_hash" not in tags
    err = capsys.readouterr().err
    assert "warning: no dvc.stage_hash tag for DVC stage train@dcgan-0: KeyError: 'md5'" in err
