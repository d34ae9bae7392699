"""The concurrent study flow under Prefect's test harness.

Default suite: DVC, tracking and GPUs faked (the flow's scheduling, pinning, failure handling
and only-if-changed mode). Slow: the real tiny pipeline in a throw-away repo with two workers,
an item killed mid-training and resumed, a failing item, and a shared DVC remote.
"""

import fcntl
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

import pipelines.study as study_module
from pipelines.study import GRAPH_SCRIPT, StudyFailed, study
from tests.conftest import ROOT, tiny_params
from tests.integration.test_dvc_prefect import dvc, ran, sh
from tests.unit.test_scheduling import STUDY


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


class FakeProject:
    """Stands in for ``pipelines.study.run``: DVC's graph is STUDY, an item takes ``seconds``
    (items in ``failing`` fail each time), ``dvc status`` prints ``status`` until an item runs;
    and for the flow's ``begin_study_run`` / ``end_study_run`` (``patch``), recorded in
    ``tracking``.
    Records each attempt's item and environment and the peak number of items at once."""

    def __init__(self, failing: tuple[str, ...] = (), status: dict | None = None):
        self.failing, self.status, self.seconds = failing, status or {}, 0.3
        self.attempts: list[tuple[str, dict[str, str]]] = []
        self.tracking: list[list[str]] = []
        self.running = self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, cmd: list[str], project_dir, env=None) -> subprocess.CompletedProcess:
        if cmd[1] == str(GRAPH_SCRIPT):
            return self._done(json.dumps(STUDY))
        if "status" in cmd:
            return self._done(json.dumps(self.status))
        return self._repro(cmd[-1], env or {})

    def _repro(self, item: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        with self._lock:
            self.status = {}
            self.attempts.append((item, env))
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1
        if item in self.failing:
            return subprocess.CompletedProcess([], 1, "Running stage\n", f"{item}: loss is NaN\n")
        return self._done(f"Running stage '{item}':\n")

    def patch(self, monkeypatch) -> None:
        """Fake the project's commands and the flow's MLflow parent run."""
        monkeypatch.setattr(study_module, "run", self)
        monkeypatch.setattr(study_module, "begin_study_run", self.begin_study_run)
        monkeypatch.setattr(study_module, "end_study_run", self.end_study_run)

    def begin_study_run(self, *args: object) -> str:
        self.tracking.append(["begin_study_run", *args])
        return "parent-1"

    def end_study_run(self, *args: object) -> None:
        self.tracking.append(["end_study_run", *args])

    @staticmethod
    def _done(stdout: str) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess([], 0, stdout, "")

    def items(self) -> list[str]:
        return [item for item, _ in self.attempts]


@pytest.fixture
def fake(monkeypatch) -> FakeProject:
    fake = FakeProject()
    fake.patch(monkeypatch)
    no_delay = study_module.repro_item.with_options(retry_delay_seconds=0)
    monkeypatch.setattr(study_module, "repro_item", no_delay)
    return fake


def test_the_flow_imports_neither_torch_nor_dvc():
    code = "import sys, pipelines.study; print(sorted({'torch', 'dvc'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_items_run_concurrently_each_pinned_to_a_gpu(harness, fake, monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # two GPUs, without GPUs
    outcome = study(project_dir=str(tmp_path), per_gpu=1)
    assert outcome == dict.fromkeys(STUDY, "ran")
    assert fake.peak == 2  # one item per GPU
    trains = {env["CUDA_VISIBLE_DEVICES"] for item, env in fake.attempts if "train" in item}
    assert trains == {"0", "1"}  # the two seeds side by side, one on each GPU
    assert all(env["GANSTUDY_PARENT_RUN_ID"] == "parent-1" for _, env in fake.attempts)
    assert all(env["GANSTUDY_PREFECT_FLOW_RUN_ID"] for _, env in fake.attempts)
    assert [call[0] for call in fake.tracking] == ["begin_study_run", "end_study_run"]
    assert fake.tracking[-1] == [
        "end_study_run",
        "parent-1",
        str(tmp_path),
        "params.yaml",
        "FINISHED",
    ]


def test_cpu_workers_bound_the_items_at_once(harness, fake, monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU
    study(project_dir=str(tmp_path), workers=1, threads_per_item=1)
    assert fake.peak == 1
    assert fake.items() == list(STUDY)  # one at a time, in DVC's order
    assert all(env["OMP_NUM_THREADS"] == "1" for _, env in fake.attempts)


def test_a_failed_item_is_retried_and_fails_the_flow_naming_it(
    harness, fake, monkeypatch, tmp_path
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    fake.failing = ("train@a",)
    state = study(project_dir=str(tmp_path), workers=2, retries=1, return_state=True)
    assert state.is_failed()
    assert "1 of 6 items failed" in state.message and "train@a" in state.message
    assert "loss is NaN" in state.message  # the last lines of its output
    outcome = state.result(raise_on_failure=False).outcome
    assert outcome["train@a"].startswith("failed: ")
    assert outcome["eval@a"] == outcome["report"] == "skipped: upstream train@a failed"
    assert outcome["train@b"] == outcome["eval@b"] == "ran"  # the rest of the study goes on
    assert fake.items().count("train@a") == 2  # retried once
    assert fake.tracking[-1][-1] == "FAILED"
    with pytest.raises(StudyFailed, match="train@a"):
        study(project_dir=str(tmp_path), retries=0)


def test_a_flow_run_waits_for_another_one_on_the_same_checkout(harness, fake, tmp_path):
    lock = tmp_path / ".dvc" / "tmp" / "ganstudy-flow.lock"
    lock.parent.mkdir(parents=True)
    outcome: dict = {}
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a flow run working in this checkout
        waiting = threading.Thread(target=lambda: outcome.update(study(str(tmp_path))))
        waiting.start()
        time.sleep(3)
        assert fake.attempts == []
    waiting.join(timeout=60)
    assert outcome == dict.fromkeys(STUDY, "ran")


def test_only_if_changed_starts_nothing_when_dvc_status_is_clean(harness, fake, tmp_path):
    assert study(project_dir=str(tmp_path), only_if_changed=True) == {}
    assert fake.attempts == [] and fake.tracking == []
    fake.status = {"train@a": [{"changed deps": {"params.yaml": "modified"}}]}
    assert study(project_dir=str(tmp_path), only_if_changed=True) == dict.fromkeys(STUDY, "ran")


# The real tiny pipeline (slow): two CPU workers of one thread each.

KILLED_SEED = 0  # its training is killed once, after its first checkpoint
ITERATIONS, CHECKPOINT_EVERY = 160, 40


def make_project(path: Path, **train: int) -> Path:
    """A copy of this project with tiny params (``train`` values on top) as a git + DVC repo."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("stages", "src", "pipelines", "studies", "data/images"):  # images: a dvc dep
        shutil.copytree(ROOT / folder, path / folder, ignore=ignore)
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    params = tiny_params()
    params["train"].update(train)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=path)
    dvc("init", "-q", cwd=path)
    dvc("config", "core.analytics", "false", cwd=path)
    commit(path, "init")
    return path


def commit(path: Path, message: str) -> None:
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-qm", message, cwd=path)


def train_process(project: Path, seed: int) -> psutil.Process | None:
    """The running ``stages/train.py --seed SEED`` of ``project``, if any."""
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmd = proc.info["cmdline"] or []
        mine = proc.info["cwd"] == str(project) and "stages/train.py" in cmd
        if mine and cmd[cmd.index("--seed") + 1] == str(seed):
            return proc
    return None


def kill_after_first_checkpoint(project: Path, seed: int, seen: dict) -> threading.Thread:
    """Watch the run folder of ``seed``; once its first checkpoint is there, note the MLflow
    run and the first sample grid's time, then kill the training process (once)."""
    run_dir = project / "models" / "dcgan" / str(seed)
    first_grid = run_dir / "samples" / f"step_{CHECKPOINT_EVERY:06d}.png"

    def watch() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and "killed_at" not in seen:
            proc = train_process(project, seed)
            if proc and (run_dir / "checkpoint.pt").is_file() and first_grid.is_file():
                seen["run_id"] = json.loads((run_dir / "run.json").read_text())["run_id"]
                seen["first_grid_mtime"] = first_grid.stat().st_mtime_ns
                proc.kill()
                seen["killed_at"] = time.monotonic()
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def parallel_run(harness, tmp_path_factory) -> tuple[Path, object, dict]:
    """The tiny study through the flow with two workers; one training killed and retried."""
    project = make_project(
        tmp_path_factory.mktemp("parallel"),
        iterations=ITERATIONS,
        checkpoint_every=CHECKPOINT_EVERY,
        sample_every=CHECKPOINT_EVERY,
    )
    seen: dict = {}
    watcher = kill_after_first_checkpoint(project, KILLED_SEED, seen)
    state = study(project_dir=str(project), workers=2, threads_per_item=1, return_state=True)
    watcher.join(timeout=1)
    return project, state, seen


@pytest.mark.slow
def test_two_workers_leave_what_dvc_repro_leaves(parallel_run):
    project, state, _ = parallel_run
    assert state.is_completed(), state.message
    outcome = state.result()
    assert outcome == dict.fromkeys(outcome, "ran") and len(outcome) == 9
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(outcome)
    assert json.loads(dvc("status", "--json", cwd=project)) == {}
    assert ran(dvc("repro", cwd=project)) == set()


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_checkpoint(parallel_run):
    project, state, seen = parallel_run
    assert "killed_at" in seen, "the training ended before it could be killed"
    run_dir = project / "models" / "dcgan" / str(KILLED_SEED)
    # Same MLflow run, and the grid drawn before the kill was not drawn again: no restart.
    assert json.loads((run_dir / "run.json").read_text())["run_id"] == seen["run_id"]
    first_grid = run_dir / "samples" / f"step_{CHECKPOINT_EVERY:06d}.png"
    assert first_grid.stat().st_mtime_ns == seen["first_grid_mtime"]
    history = (run_dir / "history.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in history] == list(range(1, ITERATIONS + 1))


@pytest.mark.slow
def test_item_runs_nest_under_the_flow_runs_parent(parallel_run):
    from mlflow import MlflowClient

    _, state, _ = parallel_run
    flow_run_id = str(state.state_details.flow_run_id)
    client = MlflowClient()
    experiment = client.get_experiment_by_name("ganstudy/tiny")
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`prefect.flow_run_id` = '{flow_run_id}'"
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert {r.data.tags["seed"] for r in children} == {"0", "1"}


@pytest.mark.slow
def test_a_shared_dvc_remote_restores_the_study_elsewhere(parallel_run, tmp_path):
    project, _, _ = parallel_run
    commit(project, "study results")  # dvc.lock and the small uncached outputs go to git
    dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"), cwd=project)
    commit(project, "shared DVC remote")
    dvc("push", cwd=project)
    clone = tmp_path / "clone"  # another host
    sh("git", "clone", "-q", str(project), str(clone), cwd=tmp_path)
    dvc("pull", cwd=clone)
    assert json.loads(dvc("status", "--json", cwd=clone)) == {}
    assert study(project_dir=str(clone), only_if_changed=True) == {}
    assert ran(dvc("repro", cwd=clone)) == set()


@pytest.mark.slow
def test_a_failing_item_fails_the_flow_and_the_rest_goes_on(parallel_run):
    project, _, _ = parallel_run
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["iterations"] = 4  # both seeds must train again
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    blocked = project / "models" / "dcgan" / "1"
    shutil.rmtree(blocked)
    blocked.write_text("not a run folder")  # seed 1 cannot write its checkpoint
    state = study(project_dir=str(project), workers=2, retries=0, return_state=True)
    assert state.is_failed() and "train@dcgan-1" in state.message
    outcome = state.result(raise_on_failure=False).outcome
    assert outcome["train@dcgan-1"].startswith("failed: ")
    assert (
        outcome["evaluate@dcgan-1"]
        == outcome["report"]
        == ("skipped: upstream train@dcgan-1 failed")
    )
    assert outcome["train@dcgan-0"] == outcome["evaluate@dcgan-0"] == "ran"
    assert outcome["download"] == "cached"
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert lock["train@dcgan-0"]["params"]["params.yaml"]["train"]["iterations"] == 4
