"""Parent and child runs, their tags, and the flow's contract (begin/end_study_run)."""

import subprocess
import sys
import threading
from pathlib import Path

import mlflow
import pytest
import yaml

from ganstudy import execution
from ganstudy.config import TrackingConfig
from ganstudy.tracking import PARENT_TAG, begin_study_run, end_study_run, start_run
from tests.conftest import ROOT, tiny_params


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> mlflow.MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
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
    assert "dvc.stage_hash" not in tags  # not a DVC repository: the tag is skipped


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
