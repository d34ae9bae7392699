"""What identifies a study execution and the stage running now: git commit, params digest, the
DVC stage and its hash, the Prefect flow run. Torch-free and MLflow-free (flows import it).

``dvc.stage_hash`` is DVC's run-cache key formula (``dvc.stage.cache._get_cache_hash(...,
key=True)``: the sha256 of the stage's lock entry, cmd + deps with their hashes + params, outs by
path only) applied to the stage as it starts. DVC itself keeps no run-cache entry for stages
with ``persist`` outputs (ours), so the same value is recomputed from ``dvc.lock`` after the
run by ``lock_stage_hash``: equal values mean the run was made from exactly that lock entry.
"""

import copy
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from ganstudy.names import DVC_ROOT_ENV as DVC_ROOT_ENV
from ganstudy.names import DVC_STAGE_ENV as DVC_STAGE_ENV
from ganstudy.names import FLOW_RUN_ENV as FLOW_RUN_ENV
from ganstudy.names import PARENT_RUN_ENV as PARENT_RUN_ENV


def git_commit(root: str | Path = ".") -> str | None:
    """The checked-out commit of ``root``'s git repository; None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def machine() -> str:
    """This machine in words, for results pages: CPU model, cores, OS, Python."""
    import platform

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text(errors="replace").splitlines()
            if line.startswith("model name")
        ]
        model = names[0] if names else model
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def params_digest(params_path: str | Path) -> str:
    """sha256 of the params file's bytes (``dvc exp run -S`` changes it; a resume does not)."""
    return hashlib.sha256(Path(params_path).read_bytes()).hexdigest()


def execution_key(study: str, commit: str | None, params_sha256: str) -> str:
    """The key of one study execution under plain ``dvc repro``: study, commit and params."""
    text = f"{study}\n{commit or 'no-git'}\n{params_sha256}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dvc_stage() -> str | None:
    """The DVC stage running this process (``train@dcgan-0``); None outside DVC."""
    return os.environ.get(DVC_STAGE_ENV) or None


class StageHashError(RuntimeError):
    """DVC could not give the running stage's hash (its internals failed or changed)."""


def dvc_stage_hash(root: str | Path | None = None) -> str | None:
    """The running stage's hash (see the module docstring); None outside DVC. Raises
    StageHashError when DVC cannot tell: the caller reports it (tracking warns and tags the
    run) rather than losing the tag unnoticed or failing the stage over a tag."""
    name = dvc_stage()
    if name is None:
        return None
    root = root or os.environ.get(DVC_ROOT_ENV) or "."
    try:
        from dvc.repo import Repo
        from dvc.stage.serialize import to_single_stage_lockfile

        with Repo(str(root)) as repo:
            stage = repo.stage.collect_granular(name)[0].stage
            stage.save_deps()  # hashes from DVC's state database: DVC just computed them
            return _lock_entry_hash(to_single_stage_lockfile(stage))
    except Exception as err:  # noqa: BLE001 (DVC internals: any failure, reported as one)
        raise StageHashError(f"{type(err).__name__}: {str(err).strip()[:200]}") from err


def lock_stage_hash(lock_path: str | Path, name: str) -> str:
    """``dvc_stage_hash`` of stage ``name`` recomputed from its ``dvc.lock`` entry."""
    from dvc.utils.serialize import load_yaml

    # DVC's own YAML reader: PyYAML would read e.g. 1e-08 as a string, not as DVC's float.
    return _lock_entry_hash(load_yaml(lock_path)["stages"][name])


def _lock_entry_hash(entry: dict[str, Any]) -> str:
    from dvc.stage.cache import _get_cache_hash

    return _get_cache_hash(copy.deepcopy(entry), key=True)
