"""A real tracking server: ``mlflow server`` on 127.0.0.1 with a PostgreSQL backend store (Debian's
PostgreSQL, started here and stopped after) and a local artifact root. The study flow runs a
tiny study with two items at once against it; every item's run, metrics and artifacts must
arrive. Then, with the server down, a stage fails with one clear message and keeps its outputs.
"""

import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pandas as pd
import pytest
import yaml

from ganstudy.execution import lock_stage_hash
from tests.conftest import ROOT, tiny_params
from tests.integration.test_dvc_prefect import ENV, dvc, sh

pytestmark = pytest.mark.slow

VARIANTS, SEEDS = ["dcgan", "lsgan"], [0]  # two games (metric names must line up) at once
STUDY = "server"


def _pg_bin() -> Path | None:
    """Debian's PostgreSQL binaries (``/usr/lib/postgresql/<v>/bin``), or initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*cmd: str) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _skip(reason: str) -> NoReturn:
    """Skip, unless CI (``.ci/run``: GANSTUDY_REQUIRE_POSTGRES=1) has to run this test."""
    if os.environ.get("GANSTUDY_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason}; GANSTUDY_REQUIRE_POSTGRES=1 requires this test to run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port; yields the store URI."""
    try:
        import psycopg2  # noqa: F401  (the server's driver for postgresql:// stores)
    except ImportError:
        _skip("psycopg2-binary (a pyproject dependency) is not installed")
    bindir = _pg_bin()
    if bindir is None:
        _skip("PostgreSQL binaries not found (apt-get install postgresql)")
    if os.geteuid() == 0 and not (shutil.which("runuser") and _has_user("postgres")):
        _skip("running as root without runuser or a postgres user to run PostgreSQL as")
    # Outside pytest's 0700 tmp tree: the postgres user must reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="ganstudy-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(_as_postgres(*initdb, "--no-sync"), check=True, capture_output=True)
    options = f"-p {port} -h 127.0.0.1 -k {folder} -c fsync=off"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data)]
    start = [*pg_ctl, "-l", str(folder / "postgres.log"), "-o", options, "-w", "start"]
    subprocess.run(_as_postgres(*start), check=True, capture_output=True)
    try:
        createdb = [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        subprocess.run(_as_postgres(*createdb, "mlflow"), check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(_as_postgres(*pg_ctl, "-m", "fast", "stop"), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


class Server:
    """``mlflow server`` in its own process group, so that stopping it stops its workers."""

    def __init__(self, store: str, artifacts: Path, log: Path) -> None:
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", "1", "--backend-store-uri", store]
        cmd += ["--artifacts-destination", str(artifacts)]  # served: clients upload through it
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=ENV
            )

    def wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"mlflow server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"mlflow server not up after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def server(postgres: str, tmp_path_factory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    srv = Server(postgres, folder / "artifacts", folder / "server.log")
    try:
        yield srv  # started, not yet up: it comes up while the study's project is made
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def study_run(server: Server, tmp_path_factory) -> dict:
    """The tiny study, two items at a time, through the Prefect flow, tracked by the server."""
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.study import study

    proj = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("stages", "src", "pipelines", "studies", "data/images"):  # images: a dvc dep
        shutil.copytree(ROOT / folder, proj / folder, ignore=ignore)
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    params = tiny_params()
    params["study"].update(name=STUDY, variants=VARIANTS, seeds=SEEDS)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=proj)
    dvc("init", "-q", cwd=proj)
    sh("git", "add", "-A", cwd=proj)
    sh("git", "commit", "-qm", "init", cwd=proj)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = server.uri  # the stages inherit it
    try:
        started = time.monotonic()
        with prefect_test_harness(server_startup_timeout=120):
            server.wait()
            outcome = study(project_dir=str(proj), workers=2)
        seconds = time.monotonic() - started
    finally:
        os.environ["MLFLOW_TRACKING_URI"] = previous or ""
    return {"project": proj, "outcome": outcome, "seconds": seconds}


def _client(server: Server):
    import mlflow

    return mlflow.MlflowClient(server.uri)


def _items(client) -> dict[tuple[str, int], object]:
    experiment = client.get_experiment_by_name(f"ganstudy/{STUDY}")
    runs = client.search_runs([experiment.experiment_id])
    return {
        (r.data.tags["variant"], int(r.data.tags["seed"])): r for r in runs if "seed" in r.data.tags
    }


def _artifact_files(client, run_id: str, path: str | None = None) -> list[str]:
    files = []
    for entry in client.list_artifacts(run_id, path):
        files += _artifact_files(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return files


def test_every_item_arrived_with_its_metrics_and_artifacts(study_run, server):
    proj, client = study_run["project"], _client(server)
    items = _items(client)
    assert sorted(items) == [(v, s) for v in VARIANTS for s in SEEDS]
    parents = {run.data.tags["mlflow.parentRunId"] for run in items.values()}
    assert len(parents) == 1  # one study execution
    parent = client.get_run(parents.pop())
    assert parent.info.status == "FINISHED" and parent.data.tags["ganstudy.role"] == "study"
    figures = {"items": len(items), "metric keys": 0, "metric values": 0, "run files": 0}
    figures |= {"models": 0, "model files": 0}
    eval_keys = {}
    for (variant, seed), run in items.items():
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert tags["dataset"] == "digits" and tags["git_commit"] == parent.data.tags["git_commit"]
        assert tags["prefect.flow_run_id"] == parent.data.tags["prefect.flow_run_id"]
        # The stage hashes are those of the items' dvc.lock entries.
        for kind in ("train", "evaluate"):
            prefix = "dvc." if kind == "train" else "dvc.evaluate."
            assert tags[f"{prefix}stage"] == f"{kind}@{variant}-{seed}"
            lock = lock_stage_hash(proj / "dvc.lock", f"{kind}@{variant}-{seed}")
            assert tags[f"{prefix}stage_hash"] == lock

        # Metrics: every step of every training scalar in history.csv, every value of the
        # metrics JSON.
        run_dir = proj / "models" / variant / str(seed)
        history = pd.read_csv(run_dir / "history.csv").set_index("step")
        train_keys = {k for k in run.data.metrics if "/" in k}
        assert {"Loss/G", "Loss/D"} <= train_keys == set(history.columns)
        for key in history.columns:
            logged = client.get_metric_history(run.info.run_id, key)
            assert {m.step: m.value for m in logged} == pytest.approx(history[key].to_dict()), key
            figures["metric values"] += len(logged)
        local = json.loads((proj / "metrics" / variant / f"{seed}.json").read_text())
        scores = {k: v for k, v in local.items() if k not in ("step", "seed")}
        assert {k: run.data.metrics[k] for k in scores} == pytest.approx(scores)
        figures["metric values"] += len(scores)
        figures["metric keys"] += len(run.data.metrics)
        eval_keys[variant] = set(scores)

        # Artifacts: every sample grid on disk, the pictures (byte for byte), the generator.
        files = set(_artifact_files(client, run.info.run_id))
        grids = {f"samples/{p.name}" for p in (run_dir / "samples").glob("*.png")}
        assert grids and grids | {"samples.png", "loss.png"} <= files
        copy = Path(client.download_artifacts(run.info.run_id, "samples.png", str(proj / "dl")))
        assert copy.read_bytes() == (run_dir / "samples.png").read_bytes()
        figures["run files"] += len(files)
        models = client.search_logged_models(
            [run.info.experiment_id], f"source_run_id = '{run.info.run_id}'"
        )
        assert [(m.name, str(m.status)) for m in models] == [("generator", "READY")]
        figures["models"] += 1
        figures["model files"] += len(_model_files(client, models[0].model_id))
    # The UI's compare view lines variants up: the same evaluate metrics for every variant.
    assert eval_keys["dcgan"] == eval_keys["lsgan"]
    print(f"\nmlflow server + PostgreSQL, 2 workers, {study_run['seconds']:.0f} s: {figures}")


def _model_files(client, model_id: str, path: str | None = None) -> list[str]:
    files = []
    for entry in client.list_logged_model_artifacts(model_id, path):
        files += _model_files(client, model_id, entry.path) if entry.is_dir else [entry.path]
    return files


def test_the_champion_loads_from_the_server_and_samples(study_run, server):
    import mlflow.pytorch
    import torch

    mlflow.set_tracking_uri(server.uri)
    try:
        G = mlflow.pytorch.load_model(f"models:/ganstudy-{STUDY}@champion")
    finally:
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    with torch.no_grad():
        images = G.eval()(torch.randn(4, G.z_dim))
    assert images.shape == (4, 1, 28, 28)
    md = (study_run["project"] / "report" / "index.md").read_text()
    assert f"models:/ganstudy-{STUDY}@champion" in md


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("item", ["train@dcgan-0", "evaluate@dcgan-0"])
def test_server_down_fails_the_stage_clearly_and_keeps_outputs(study_run, server, item):
    server.stop()  # PostgreSQL stays up; the tracking server is gone
    proj = study_run["project"]
    kept = _digest(proj / "models") | _digest(proj / "metrics")
    env = {**ENV, "MLFLOW_TRACKING_URI": server.uri}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", item],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert f"error: MLflow tracking at {server.uri} is unavailable" in out
    assert "Traceback" not in out
    assert seconds < 90, f"{seconds:.0f} s: retries are not bounded"
    assert _digest(proj / "models") | _digest(proj / "metrics") == kept
    print(f"\n{item} with the server down: failed in {seconds:.0f} s, outputs intact")
