"""Wall time of k independent items through the study flow: 1 worker vs k workers (CPU).

Each run gets a fresh throw-away git + DVC repo of the tests' tiny study (sklearn digits) with
k seeds and longer training. The upstream items are brought up to date first (untimed); then
the flow runs the k train items (``stages=["train"]``). Both runs give each item one thread
(OMP_NUM_THREADS=1), so k workers use k cores and the 1-worker run gets no help from intra-op
threads: the comparison is of scheduling on a k-core CPU. The item phase runs from the first
train item's start to the last one's end (Prefect's task runs); ideally k workers take 1/k of
the 1-worker time, i.e. about one item's time.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Importing the tests' conftest also points MLflow, Prefect and data caches at a temp folder.
from tests.conftest import tiny_params  # noqa: E402


def make_repo(path: Path, seeds: int, iterations: int) -> Path:
    """The tiny study with ``seeds`` train items, as a fresh git + DVC repo at ``path``."""
    for folder in ("stages", "src", "pipelines", "studies", "data/images"):  # images: a dvc dep
        shutil.copytree(ROOT / folder, path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    params = tiny_params()
    params["study"]["seeds"] = list(range(seeds))
    params["train"].update(iterations=iterations, log_every=10, sample_every=iterations)
    params["train"].update(checkpoint_every=iterations)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for cmd in (
        ["git", "init", "-q"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [sys.executable, "-m", "dvc", "config", "core.analytics", "false"],
        ["git", "add", "-A"],
        [*git, "commit", "-qm", "init"],
        [sys.executable, "-m", "dvc", "repro", "-q", "augment"],  # upstream of train, untimed
    ):
        subprocess.run(cmd, cwd=path, check=True, capture_output=True)
    return path


def item_times(flow_run_id) -> list[tuple[float, float]]:
    """(start, end) in seconds of each train item's task run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=runs_filter)
    return [
        (run.start_time.timestamp(), run.end_time.timestamp())
        for run in runs
        if run.name.startswith("train@")
    ]


def timed_run(repo: Path, workers: int) -> dict[str, float]:
    from pipelines.study import study

    start = time.perf_counter()
    state = study(
        project_dir=str(repo),
        stages=["train"],
        workers=workers,
        threads_per_item=1,
        return_state=True,
    )
    wall = time.perf_counter() - start
    if not state.is_completed():
        raise SystemExit(f"flow failed: {state.message}")
    times = item_times(state.state_details.flow_run_id)
    phase = max(end for _, end in times) - min(begin for begin, _ in times)
    mean_item = sum(end - begin for begin, end in times) / len(times)
    return {"flow": wall, "phase": phase, "item": mean_item}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", "-k", type=int, default=2, help="train items (seeds)")
    parser.add_argument("--iterations", type=int, default=300, help="per item")
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    results = {}
    with tempfile.TemporaryDirectory(prefix="flow-bench-") as tmp, prefect_test_harness(120):
        for workers in (1, args.items):
            repo = make_repo(Path(tmp) / f"workers{workers}", args.items, args.iterations)
            results[workers] = timed_run(repo, workers)
    k, one, many = args.items, results[1], results[args.items]
    print(f"{k} train items x {args.iterations} iterations, 1 thread each")
    print("| workers | flow wall (s) | item phase (s) | mean item (s) |")
    print("|---|---|---|---|")
    for workers, r in results.items():
        print(f"| {workers} | {r['flow']:.1f} | {r['phase']:.1f} | {r['item']:.1f} |")
    ratio, alone = many["phase"] / one["phase"], many["phase"] / one["item"]
    print(f"item phase, {k} workers / 1 worker: {ratio:.2f} (ideal {1 / k:.2f})")
    print(f"item phase with {k} workers / one item alone: {alone:.2f} (ideal 1)")


if __name__ == "__main__":
    main()
