"""Prefect flow for a study: runs the DVC pipeline's items concurrently, each on a device slot.

DVC owns the graph, the cache and the lock: the flow asks DVC which items there are and what
each needs (``dvc_graph.py``), starts an item once all its upstream items are done, and runs it
with ``dvc repro --single-item ITEM``. So it never re-defines a stage or decides freshness, and
it leaves the same end state as ``dvc repro`` (checked with ``dvc status`` at the end). No torch:
the MLflow parent run comes from ``ganstudy.tracking`` and the names from ``ganstudy.names``,
both torch-free, as is the package root.

Concurrent items in one workspace are DVC's own design: ``dvc repro`` releases the repository
lock while a stage command runs and takes it back to hash outputs and update dvc.lock (re-read
under the lock), so commits are serialised by DVC; ``--wait-for-lock`` makes an item wait for
the lock instead of failing. Outputs are guarded by DVC's per-path read/write locks.
"""

import argparse
import fcntl
import json
import os
import queue
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from prefect import flow, get_run_logger, runtime, task
from prefect.futures import PrefectFuture
from prefect.states import Failed, State

from ganstudy.names import FLOW_RUN_ENV, PARAMS_FILE, PARENT_RUN_ENV
from ganstudy.tracking import begin_study_run, end_study_run
from pipelines.scheduling import Plan, Slot, make_slots, visible_gpus

PROJECT_DIR = Path(__file__).resolve().parents[1]
GRAPH_SCRIPT = Path(__file__).with_name("dvc_graph.py")
TAIL_LINES = 6  # lines of a failed item's output kept in its outcome and the flow's message


class StudyFailed(RuntimeError):
    """Some items failed; ``outcome`` says what became of every item."""

    def __init__(self, message: str, outcome: dict[str, str]):
        super().__init__(message)
        self.outcome = outcome

    def __reduce__(self):  # pickled into the flow run's result with its outcome
        return type(self), (self.args[0], self.outcome)


def run(
    cmd: list[str], project_dir: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in the project with this interpreter's environment first on PATH (for the
    stage commands) and ``env`` on top of ours."""
    full = {**os.environ, **(env or {})}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    return subprocess.run(cmd, cwd=project_dir, env=full, capture_output=True, text=True)


def dvc(
    args: list[str], project_dir: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], project_dir, env)


def _check(result: subprocess.CompletedProcess, what: str) -> str:
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(lines[-TAIL_LINES:])
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


@task
def stage_graph(project_dir: str, targets: Sequence[str] = ()) -> dict[str, list[str]]:
    """DVC's items (all, or ``targets`` and their upstream) with the items each needs."""
    cmd = [sys.executable, str(GRAPH_SCRIPT), *targets]
    return json.loads(_check(run(cmd, project_dir), "reading DVC's stage graph"))


@task
def dvc_status(project_dir: str, targets: Sequence[str] = ()) -> dict:
    """``dvc status`` as a dict: empty when every item (of ``targets``) is up to date."""
    args = ["status", "--json", *(["--with-deps", *targets] if targets else [])]
    return json.loads(_check(dvc(args, project_dir), "dvc status") or "{}")


@task(task_run_name="{item} on {slot}", retries=2, retry_delay_seconds=5)
def repro_item(item: str, project_dir: str, slot: str, env: dict[str, str]) -> str:
    """``dvc repro --single-item ITEM``: runs it if DVC finds it changed ("ran"), else
    "cached". A retried training item resumes from its last checkpoint (its output persists)."""
    result = dvc(["--wait-for-lock", "repro", "--single-item", item], project_dir, env)
    outcome = "ran" if "Running stage" in _check(result, f"dvc repro {item}") else "cached"
    get_run_logger().info("%s: %s (slot %s)", item, outcome, slot)
    return outcome


def run_plan(
    plan: Plan, slots: list[Slot], project_dir: str, env: dict[str, str], retries: int
) -> None:
    """Run the plan's items, each on a free slot as soon as its upstream items are done."""
    free = list(slots)
    running: dict[str, tuple[PrefectFuture, Slot]] = {}
    done: queue.SimpleQueue[str] = queue.SimpleQueue()
    item_task = repro_item.with_options(retries=retries)
    while plan.open:
        for item in plan.ready()[: len(free)]:
            slot = free.pop(0)
            future = item_task.submit(item, project_dir, slot.name, {**env, **slot.env})
            future.add_done_callback(lambda _, item=item: done.put(item))
            running[item] = (future, slot)
            plan.start(item)
        if not running:  # cannot happen for a DAG: failures skip what they block
            raise RuntimeError(f"items left that cannot start: {plan.ready()}")
        item = done.get()
        future, slot = running.pop(item)
        free = sorted([*free, slot], key=slots.index)  # lowest first: spreads over the GPUs
        result = future.result(raise_on_failure=False)
        plan.finish(item, f"failed: {result}" if isinstance(result, BaseException) else result)


def ganstudy(project_dir: str, *args: str) -> str:
    """``ganstudy ARGS`` in a subprocess in the project (it imports torch; the flow does not)."""
    cmd = [sys.executable, "-m", "ganstudy.cli", *args]
    return _check(run(cmd, project_dir), f"ganstudy {' '.join(args)}")


def _item_env(parent_run_id: str) -> dict[str, str]:
    """What every item is started with besides its slot's variables: the MLflow parent run its
    child runs nest under, the flow run they are tagged with."""
    return {
        PARENT_RUN_ENV: parent_run_id,
        FLOW_RUN_ENV: str(runtime.flow_run.id),
    }


@contextmanager
def workspace_lock(project_dir: str) -> Iterator[None]:
    """Hold the checkout for this flow run: another flow run on it (a second deployment's
    schedule, a manual run) waits here instead of racing this one for DVC's output locks."""
    path = Path(project_dir) / ".dvc" / "tmp" / "ganstudy-flow.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            get_run_logger().info("Another flow run is working in %s: waiting for it", project_dir)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # released when the file closes


def _final_state(outcome: dict[str, str], project_dir: str, whole: bool) -> dict | State:
    """Failed, naming each failed item and its last lines, if an item failed or (for the
    whole study) ``dvc status`` is not clean; else the outcome."""
    failed = {item: o for item, o in outcome.items() if o.startswith("failed: ")}
    skipped = [item for item, o in outcome.items() if o.startswith("skipped: ")]
    if failed:
        lines = [f"{len(failed)} of {len(outcome)} items failed"]
        lines += [f"- {item}: {o.removeprefix('failed: ')}" for item, o in failed.items()]
        lines += [f"skipped (upstream failed): {', '.join(skipped)}"] if skipped else []
        message = "\n".join(lines)
    elif whole and (status := dvc_status(project_dir)):
        message = f"dvc status is not clean after the flow: {sorted(status)}"
    else:
        return outcome
    return Failed(message=message, data=StudyFailed(message, outcome))


@flow(name="ganstudy-study")
def study(
    project_dir: str = str(PROJECT_DIR),
    stages: list[str] | None = None,
    workers: int = 1,
    per_gpu: int = 1,
    threads_per_item: int | None = None,
    only_if_changed: bool = False,
    retries: int = 2,
    study: str | None = None,
    size: str = "quick",
    fresh: bool = False,
) -> dict[str, str]:
    """Bring the study's DVC pipeline up to date, independent items concurrently.

    Args:
        project_dir: the DVC project (a git work tree).
        stages: targets as for ``dvc repro`` (with their upstream items); None: all.
        workers: items at once without a GPU (one item already uses every core by default).
        per_gpu: items at once per GPU, each pinned to its GPU; GPUs are those of
            CUDA_VISIBLE_DEVICES if set, else nvidia-smi's.
        threads_per_item: the items' OMP_NUM_THREADS; None keeps torch's default (numbers
            depend on the thread count, see README).
        only_if_changed: ask ``dvc status`` first and start nothing when it is clean.
        retries: retries of a failed item (training resumes from its last checkpoint).
        study: a paper-table study (``ganstudy studies``) to run at ``size`` instead of what
            params.yaml holds: its values are set first (``ganstudy study apply``, restoring
            its last DVC experiment unless ``fresh``), and a whole run that succeeds is saved
            as its next DVC experiment (``ganstudy study save``), as ``ganstudy study run``
            leaves it. None: params.yaml as it is.
        size: the study's size (tiny, quick, full).
        fresh: with ``study``, do not restore its last DVC experiment first.

    Returns:
        ``{item: "ran" | "cached" | "failed: why" | "skipped: upstream X failed"}`` in DVC's
        order. The flow run ends Failed (raising StudyFailed, which carries this dict, when
        called directly) if an item failed; the other items still ran.
    """
    logger = get_run_logger()
    targets = stages or []
    with workspace_lock(project_dir):
        if study is not None:  # before anything reads params.yaml (status, graph, parent run)
            fresh_arg = ["--fresh"] if fresh else []
            said = ganstudy(project_dir, "study", "apply", study, "--size", size, *fresh_arg)
            logger.info("%s", said.strip().splitlines()[-1])
        if only_if_changed and not dvc_status(project_dir, targets):
            logger.info("Nothing changed since the last run (dvc status is clean): nothing started")
            return {}
        slots = make_slots(visible_gpus(), per_gpu, workers, threads_per_item)
        plan = Plan(stage_graph(project_dir, targets))
        names = ", ".join(s.name for s in slots)
        logger.info("%s: %d items on slots %s", project_dir, len(plan.upstream), names)
        final = run_tracked(plan, slots, project_dir, retries, whole=not targets)
        if study is not None and not targets and not isinstance(final, State):
            said = ganstudy(project_dir, "study", "save", study, "--size", size)
            logger.info("%s", said.strip().splitlines()[-1])
        return final


def run_tracked(
    plan: Plan, slots: list[Slot], project_dir: str, retries: int, whole: bool
) -> dict[str, str] | State:
    """Run the plan inside one MLflow parent run (the items' runs nest under it), closed
    FINISHED or FAILED with the flow run's final state."""
    tags = {
        "prefect.flow_run_id": str(runtime.flow_run.id),
        "prefect.flow_run_name": runtime.flow_run.name,
    }
    root = str(Path(project_dir).resolve())
    parent = begin_study_run(root, PARAMS_FILE, tags)
    final: dict | State = Failed(message="the flow stopped before its items finished")
    try:
        run_plan(plan, slots, project_dir, _item_env(parent), retries)
        outcome = {item: plan.outcome[item] for item in plan.upstream}
        counts = Counter(o.split(":")[0] for o in outcome.values())
        get_run_logger().info("Items: %s", ", ".join(f"{n} {k}" for k, n in counts.items()))
        final = _final_state(outcome, project_dir, whole)
    finally:
        status = "FAILED" if isinstance(final, State) else "FINISHED"
        end_study_run(parent, root, PARAMS_FILE, status)
    return final


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pipelines.study [--workers N] ...``: run the flow on this project."""
    parser = argparse.ArgumentParser(description=study.__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", help="dvc repro targets (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="CPU slots without a GPU")
    parser.add_argument("--per-gpu", type=int, default=1, help="slots per GPU")
    parser.add_argument("--threads-per-item", type=int, default=None, help="OMP_NUM_THREADS")
    parser.add_argument("--only-if-changed", action="store_true", help="skip if dvc status clean")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--study", help="a paper-table study to run (ganstudy studies)")
    parser.add_argument("--size", default="quick", help="the study's size: tiny | quick | full")
    parser.add_argument("--fresh", action="store_true", help="do not restore its last experiment")
    args = parser.parse_args(argv)
    study(
        stages=args.stages or None,
        workers=args.workers,
        per_gpu=args.per_gpu,
        threads_per_item=args.threads_per_item,
        only_if_changed=args.only_if_changed,
        retries=args.retries,
        study=args.study,
        size=args.size,
        fresh=args.fresh,
    )


if __name__ == "__main__":
    main()
