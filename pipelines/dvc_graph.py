"""Print the DVC stage graph as JSON: each item (stage or matrix item) with the items it needs.

Run with the project as working directory (DVC resolves targets against it):
``python pipelines/dvc_graph.py [TARGET ...]``. With targets, only they and their upstream
items are printed, as ``dvc repro TARGET`` would run them. Items come in the index's order
(dvc.yaml order). The flow runs this in a subprocess so that it never resolves a stage itself.
"""

import json
import sys
from collections.abc import Sequence

from dvc.repo import Repo
from dvc.repo.reproduce import get_active_graph


def upstream_items(repo: Repo, targets: Sequence[str]) -> dict[str, list[str]]:
    """``{item: [items it depends on]}`` for ``targets`` (all items when empty)."""
    # Frozen stages are cut from their upstream, as `dvc repro` does.
    graph = get_active_graph(repo.index.graph)
    wanted = {s for t in targets for s in repo.stage.collect(t, with_deps=True, graph=graph)}
    # Edges point from a stage to the stages producing its dependencies.
    return {
        stage.addressing: sorted(up.addressing for up in graph.successors(stage))
        for stage in repo.index.stages
        if not targets or stage in wanted
    }


def main(argv: Sequence[str] | None = None) -> None:
    with Repo() as repo:
        print(json.dumps(upstream_items(repo, list(sys.argv[1:] if argv is None else argv))))


if __name__ == "__main__":
    main()
