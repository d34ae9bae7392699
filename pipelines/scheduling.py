"""Where and when a study's items run: device slots, and which items are ready (no torch).

A slot is one place an item can run: a GPU (``per_gpu`` slots each) or, without GPUs, one of
``workers`` CPU slots. An item is pinned to its slot's GPU by the ``CUDA_VISIBLE_DEVICES`` it
is started with. The plan only orders items by the graph DVC gives; freshness stays DVC's.
"""

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from ganstudy.names import THREADS_ENV, VISIBLE_GPUS_ENV

OK = ("ran", "cached")  # outcomes after which downstream items may start


@dataclass(frozen=True)
class Slot:
    name: str  # shown in logs and task names: "gpu0", "gpu1.1" (2nd slot of GPU 1), "cpu0"
    env: dict[str, str] = field(default_factory=dict)  # variables the item is started with


def visible_gpus(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The GPUs items may use: CUDA_VISIBLE_DEVICES when set (ids or UUIDs), else nvidia-smi's
    list; none without an NVIDIA driver."""
    if (visible := environ.get(VISIBLE_GPUS_ENV)) is not None:
        gpus = []
        for gpu in (g.strip() for g in visible.split(",")):
            if not gpu or gpu.startswith("-"):  # CUDA stops at the first invalid id ("-1")
                break
            gpus.append(gpu)
        return gpus
    if (smi := shutil.which("nvidia-smi")) is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:  # a driver without a GPU, or a broken one: run on the CPU
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def make_slots(
    gpus: list[str], per_gpu: int = 1, workers: int = 1, threads_per_item: int | None = None
) -> list[Slot]:
    """``per_gpu`` slots on each GPU (GPUs interleaved, so that few items spread over all
    GPUs), or ``workers`` CPU slots without GPUs. ``threads_per_item`` sets the items'
    OMP_NUM_THREADS (None: torch's default, all cores; results depend on the thread count)."""
    for name, value in (("per_gpu", per_gpu), ("workers", workers), ("threads", threads_per_item)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    threads = {} if threads_per_item is None else {THREADS_ENV: str(threads_per_item)}
    if not gpus:
        return [Slot(f"cpu{i}", dict(threads)) for i in range(workers)]
    return [
        Slot(f"gpu{gpu}" + (f".{j}" if j else ""), {VISIBLE_GPUS_ENV: gpu, **threads})
        for j in range(per_gpu)
        for gpu in gpus
    ]


class Plan:
    """Which items may start: those whose upstream items all ran or were cached. An item
    downstream of a failure is skipped, naming the failed item."""

    def __init__(self, upstream: Mapping[str, list[str]]):
        unknown = {u for ups in upstream.values() for u in ups} - set(upstream)
        if unknown:
            raise ValueError(f"upstream items missing from the plan: {sorted(unknown)}")
        self.upstream = dict(upstream)
        self.outcome: dict[str, str] = {}
        self._started: set[str] = set()
        self._cause: dict[str, str] = {}  # failed or skipped item -> the failed item behind it

    @property
    def open(self) -> bool:
        """Whether some item has no outcome yet."""
        return len(self.outcome) < len(self.upstream)

    def ready(self) -> list[str]:
        """Items not started whose upstream items all succeeded, in the plan's order."""
        return [
            item
            for item, ups in self.upstream.items()
            if item not in self._started and all(self.outcome.get(u) in OK for u in ups)
        ]

    def start(self, item: str) -> None:
        self._started.add(item)

    def finish(self, item: str, outcome: str) -> None:
        """Record ``outcome`` ("ran", "cached" or "failed: why"); skip what it blocks."""
        self.outcome[item] = outcome
        if outcome not in OK:
            self._cause[item] = item
            self._skip_downstream()

    def _skip_downstream(self) -> None:
        changed = True
        while changed:  # to a fixed point: skips propagate down chains
            changed = False
            for item, ups in self.upstream.items():
                blocked = [u for u in ups if u in self._cause]
                if item in self._started or item in self.outcome or not blocked:
                    continue
                self._cause[item] = self._cause[blocked[0]]
                self.outcome[item] = f"skipped: upstream {self._cause[item]} failed"
                changed = True
