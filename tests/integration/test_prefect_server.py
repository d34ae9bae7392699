"""prefect.yaml's deployments on a real local Prefect server with two process workers on one
work pool (as if on two hosts), running the tiny study on schedule. Slow; bounded in time; the
server and workers are always stopped."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ROOT
from tests.integration.test_dvc_prefect import ENV, dvc
from tests.integration.test_flow_parallel import commit, make_project

DEPLOYMENT = "ganstudy-study/default-study-on-change"  # only_if_changed: true
WORKERS = ("host-a", "host-b")
TIMEOUT_S = 300  # for the whole scheduled study on 2 shared CPU cores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Long-running commands started by the test, each in its own process group, with logs."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.procs = env, logs, []

    def start(self, name: str, *cmd: str, cwd: Path) -> Path:
        log = self.logs / f"{name}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env={**self.env, "PWD": str(cwd)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return log

    def stop(self, project: Path) -> None:
        """Stop the server and workers, then any flow run process still in the project."""
        for proc in self.procs:
            with_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for proc in psutil.process_iter(["cwd"]):
            if (proc.info["cwd"] or "").startswith(str(project)):
                proc.kill()


def with_group(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the session leader's group: the command and its children


def wait_for(what: str, check: Callable[[], object], timeout: float, logs: Path) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(1)
    tails = {log.name: log.read_text()[-3000:] for log in sorted(logs.glob("*.log"))}
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; logs: {tails}")


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, Processes, Path]]:
    """A Prefect server on a free loopback port with a fresh PREFECT_HOME; fast scheduling."""
    api = f"http://127.0.0.1:{free_port()}/api"
    env = {
        **ENV,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(env, logs)
    project = make_project(tmp_path / "project")
    shutil.copy(ROOT / "prefect.yaml", project / "prefect.yaml")
    commit(project, "prefect.yaml")
    try:
        port = api.split(":")[2].split("/")[0]
        procs.start(
            "server",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            cwd=tmp_path,
        )
        wait_for("the server", lambda: healthy(api), 180, logs)
        yield api, procs, project
    finally:
        procs.stop(project)


def healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def prefect(*args: str, procs: Processes, cwd: Path) -> str:
    # PWD too: prefect.yaml's pull step is the folder deployed from, "{{ $PWD }}".
    env = {**procs.env, "PWD": str(cwd)}
    result = subprocess.run(
        ["prefect", "--no-prompt", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"prefect {args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def api_post(api: str, path: str, body: dict) -> list[dict]:
    # A generous timeout: the server's SQLite store is slow on 2 busy cores.
    return httpx.post(f"{api}/{path}", json=body, timeout=60).json()


def flow_runs(api: str) -> list[dict]:
    try:
        return api_post(api, "flow_runs/filter", {})
    except httpx.TimeoutException:
        return []  # polled again


def run_logs(api: str, flow_run_id: str) -> str:
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
    return "\n".join(log["message"] for log in api_post(api, "logs/filter", body))


@pytest.mark.slow
def test_scheduled_study_on_a_server_with_two_workers(server):
    api, procs, project = server
    # The repository's prefect.yaml, deployed as a user does (`make deploy`).
    prefect("work-pool", "create", "ganstudy-local", "--type", "process", procs=procs, cwd=project)
    prefect("deploy", "--all", procs=procs, cwd=project)
    for deployment in api_post(api, "deployments/filter", {}):
        pull = deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
        assert pull["directory"] == str(project)  # runs work in the throw-away copy only
    # Its cron is every 15 minutes; add a 5-second schedule so the test need not wait.
    prefect(
        "deployment", "schedule", "create", DEPLOYMENT, "--interval", "5", procs=procs, cwd=project
    )
    worker_logs = [
        procs.start(
            name,
            "prefect",
            "worker",
            "start",
            "--pool",
            "ganstudy-local",
            "--type",
            "process",
            "--name",
            name,
            cwd=project,
        )
        for name in WORKERS
    ]

    def two_completed() -> list[dict]:
        runs = [r for r in flow_runs(api) if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
        return sorted(runs, key=lambda r: r["start_time"]) if len(runs) >= 2 else []

    first, second = wait_for("two finished scheduled runs", two_completed, TIMEOUT_S, procs.logs)[
        :2
    ]
    assert first["state_type"] == "COMPLETED", run_logs(api, first["id"])
    assert "Items: 9 ran" in run_logs(api, first["id"])
    assert json.loads(dvc("status", "--json", cwd=project)) == {}
    # The next scheduled run finds nothing changed and starts nothing.
    assert second["state_type"] == "COMPLETED", run_logs(api, second["id"])
    assert "Nothing changed" in run_logs(api, second["id"])
    # Both workers poll the pool; each run was started by one of them, never by both.
    started = "\n".join(log.read_text() for log in worker_logs)
    for run in (first, second):
        assert started.count(f"Flow run '{run['name']}' submitted to infrastructure") == 1


@pytest.mark.slow
def test_a_paper_table_study_through_the_study_deployment(server):
    """prefect.yaml's on-demand `study` deployment, run by a worker with the study and size as
    parameters: the study's values, its items, its MLflow experiment and its DVC experiment."""
    import mlflow

    api, procs, project = server
    prefect("work-pool", "create", "ganstudy-local", "--type", "process", procs=procs, cwd=project)
    prefect("deploy", "--all", procs=procs, cwd=project)
    procs.start(
        "worker", "prefect", "worker", "start", "--pool", "ganstudy-local", "--type", "process",
        cwd=project,
    )  # fmt: skip
    prefect(
        "deployment", "run", "ganstudy-study/study", "-p", "study=variants", "-p", "size=tiny",
        procs=procs, cwd=project,
    )  # fmt: skip

    def finished() -> list[dict]:
        done = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        return [r for r in flow_runs(api) if r["state_type"] in done]

    # 13 items (two variants x two seeds) one after another: about twice the scheduled study.
    run = wait_for("the study's flow run", finished, 2 * TIMEOUT_S, procs.logs)[0]
    assert run["state_type"] == "COMPLETED", run_logs(api, run["id"])
    assert run["parameters"]["study"] == "variants" and run["parameters"]["size"] == "tiny"
    # The run's state can reach the server before the worker's last batch of logs (the save
    # step's line, the flow's own end): poll for them rather than read once.
    saved = "DVC experiment variants-tiny saved"

    def saved_logs() -> str | None:
        text = run_logs(api, run["id"])
        return text if saved in text else None

    logs = wait_for("the flow run's last logs", saved_logs, 60, procs.logs)
    assert "params.yaml holds study variants (tiny)" in logs
    assert (project / "report" / "variants-tiny" / "index.html").is_file()
    assert json.loads(dvc("status", "--json", cwd=project)) == {}
    assert "variants-tiny" in dvc("exp", "list", "--name-only", cwd=project).split()
    # Its own MLflow experiment; the flow run's parent carries the study's means.
    client = mlflow.MlflowClient(procs.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("ganstudy/variants-tiny")
    parents = client.search_runs(
        [experiment.experiment_id], f"tags.`prefect.flow_run_id` = '{run['id']}'"
    )
    parent = next(p for p in parents if p.data.tags.get("ganstudy.role") == "study")
    assert parent.info.status == "FINISHED"
    assert {"dcgan", "wgan-gp"} == {
        key.split("/")[1] for key in parent.data.metrics if key.startswith("fid_")
    }
