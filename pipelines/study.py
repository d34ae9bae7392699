"""Prefect flow for a study: runs the DVC pipeline stage by stage, with retries and logs.

DVC owns the graph, the cache and the lock: the flow asks DVC for the stages and runs each with
``dvc repro <stage>``, so it never re-defines a stage or decides freshness itself, and it leaves
the same end state as ``dvc repro`` (checked with ``dvc status`` at the end). No torch here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task

PROJECT_DIR = Path(__file__).resolve().parents[1]


def dvc(args: list[str], project_dir: str | Path) -> subprocess.CompletedProcess:
    """Run ``dvc ARGS`` with this interpreter's environment first on PATH (for stage cmds)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
    )


def _check(result: subprocess.CompletedProcess, what: str) -> str:
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


@task
def list_stages(project_dir: str) -> list[str]:
    """The pipeline's stages in dvc.yaml order, matrix items expanded (train@dcgan-0, ...)."""
    out = _check(dvc(["stage", "list", "--name-only"], project_dir), "dvc stage list")
    return [line.strip() for line in out.splitlines() if line.strip()]


@task(retries=2, retry_delay_seconds=5)
def repro_stage(stage: str, project_dir: str) -> str:
    """``dvc repro STAGE``: runs it (and anything upstream) only if its inputs changed.

    A retried training stage resumes from its last checkpoint (its output persists)."""
    out = _check(dvc(["repro", stage], project_dir), f"dvc repro {stage}")
    ran = "Running stage" in out
    get_run_logger().info("%s: %s", stage, "ran" if ran else "up to date")
    return "ran" if ran else "cached"


@task
def dvc_status(project_dir: str) -> dict:
    return json.loads(_check(dvc(["status", "--json"], project_dir), "dvc status") or "{}")


@flow(name="ganstudy-study")
def study(project_dir: str = str(PROJECT_DIR), stages: list[str] | None = None) -> dict[str, str]:
    """Bring the study's DVC pipeline up to date; returns what ran and what was cached."""
    names = stages or list_stages(project_dir)
    outcome = {name: repro_stage(name, project_dir) for name in names}
    if stages is None and (status := dvc_status(project_dir)):
        raise RuntimeError(f"dvc status is not clean after the flow: {sorted(status)}")
    return outcome


if __name__ == "__main__":
    study()
