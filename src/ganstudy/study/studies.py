"""Study files: a paper table as params overrides per size, plus the published numbers.

A study is ``studies/<name>.yaml``. Running it at a size means running the one DVC pipeline
with that size's params (``dvc exp run -S key=value ...``), in folders of its own
(``<paths.*>/<name>-<size>``), so studies never overwrite each other's data, models or
metrics, and DVC's cache serves a study again without retraining. The report stage reads the
same file (``report.study``) to print the published numbers beside ours. A study file may start
from another with ``extends: <name>`` (the augmentation study on a MedMNIST set).
"""

import json
import shlex
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ganstudy.config import Params, _validate, read_yaml
from ganstudy.errors import GanstudyError
from ganstudy.names import PARAMS_FILE, study_run_name

STUDIES_DIR = "studies"
SIZES = ("tiny", "quick", "full")  # tests, 2 CPU cores in minutes, a GPU
SHARED_FOLDERS = ("raw",)  # paths every study run shares: downloads are the same data


def study_folders(root: str | Path = ".") -> dict[str, str]:
    """The ``paths`` of the committed params.yaml a study run gets a folder under
    (``<top>/<name>-<size>/...``): all but the shared ones (raw downloads)."""
    paths = committed_params(root).get("paths")
    if not isinstance(paths, dict):
        raise GanstudyError("params.yaml at git HEAD has no `paths` section")
    return {key: str(top) for key, top in paths.items() if key not in SHARED_FOLDERS}


class Published(BaseModel):
    """One number of the source, as printed there."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    row: str  # what it measures, in our terms: a variant, an arm, an arm at a count
    metric: str  # our metric name, e.g. accuracy, sensitivity_macro, fid
    value: float
    dataset: str  # the source's dataset, e.g. MNIST, Fashion-MNIST, 182 CT liver lesions
    source: str  # paper / book and table or page
    note: str = ""  # protocol differences that matter when comparing


class Study(BaseModel):
    """The schema of ``studies/<name>.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str
    kind: Literal["augmentation", "classifier", "variants"]  # which report page it gets
    description: str
    # The design a reviewer checks, one bullet each (arms, data, length, selection, scoring,
    # seeds); printed at the top of the results page (`ganstudy study publish`).
    design: list[str] = []
    baseline: str | None = None  # the variant or arm others are tested against
    params: dict[str, Any] = {}  # dotted params.yaml keys -> values, every size
    sizes: dict[str, dict[str, Any]]  # size -> dotted keys -> values, over ``params``
    published: list[Published] = Field(default_factory=list)

    @model_validator(mode="after")
    def _all_sizes(self) -> "Study":
        missing = [s for s in SIZES if s not in self.sizes]
        if missing:
            raise ValueError(f"sizes {missing} missing (every study has {list(SIZES)})")
        return self


def study_names(root: str | Path = ".") -> list[str]:
    return sorted(p.stem for p in (Path(root) / STUDIES_DIR).glob("*.yaml"))


def load_study(name: str, root: str | Path = ".") -> Study:
    path = Path(root) / STUDIES_DIR / f"{name}.yaml"
    if not path.is_file():
        valid = ", ".join(study_names(root)) or "none"
        raise GanstudyError(f"unknown study {name!r} ({path} not found); valid: {valid}")
    return _validate(Study, _extended(read_yaml(path), root, [name]), str(path))


def _extended(data: Any, root: str | Path, chain: list[str]) -> Any:
    """A study file with ``extends: <study>`` (the same question on other data, e.g. a MedMNIST
    set): the parent's fields, then its own; ``params`` and each size's values merged key by
    key, its own winning; the parent's published numbers unless it lists its own."""
    if not isinstance(data, dict) or "extends" not in data:
        return data
    parent = data["extends"]
    if parent in chain:
        raise GanstudyError(f"studies extend each other in a loop: {' -> '.join([*chain, parent])}")
    path = Path(root) / STUDIES_DIR / f"{parent}.yaml"
    if not path.is_file():
        raise GanstudyError(f"study {chain[-1]!r} extends {parent!r}, but {path} does not exist")
    base = _extended(read_yaml(path), root, [*chain, parent])
    own = {k: v for k, v in data.items() if k != "extends"}
    sizes, mine = base.get("sizes") or {}, own.get("sizes") or {}
    return {
        **base,
        **own,
        "params": {**(base.get("params") or {}), **(own.get("params") or {})},
        "sizes": {s: {**(sizes.get(s) or {}), **(mine.get(s) or {})} for s in {*sizes, *mine}},
    }


def overrides(name: str, size: str, root: str | Path = ".") -> dict[str, Any]:
    """Every params.yaml key the study sets at ``size``, including its own folders."""
    study = load_study(name, root)
    if size not in study.sizes:
        raise GanstudyError(f"study {name!r} has no size {size!r}; sizes: {list(study.sizes)}")
    run = study_run_name(name, size)
    folders = {f"paths.{key}": f"{top}/{run}" for key, top in study_folders(root).items()}
    return {**study.params, **study.sizes[size], "study.name": run, "report.study": name, **folders}


def apply(params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with dotted ``values`` set; the top-level section must exist."""
    out = json.loads(json.dumps(params))  # a deep copy of plain YAML data
    for dotted, value in values.items():
        section, *middle, leaf = dotted.split(".") if "." in dotted else (dotted, "")
        if section not in out or not leaf:
            raise GanstudyError(f"{dotted!r}: not a key of a params.yaml section")
        node = out[section]
        for part in middle:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def committed_params(root: str | Path = ".") -> dict[str, Any]:
    """params.yaml as last committed (git HEAD): what every study run starts from, so values
    a previous study left in the workspace do not leak into the next one; the workspace file
    when there is no commit to read."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "show", f"HEAD:{PARAMS_FILE}"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        out = None
    if out is None or out.returncode != 0:
        return read_yaml(Path(root) / PARAMS_FILE)
    data = yaml.safe_load(out.stdout)
    if not isinstance(data, dict):
        raise GanstudyError("params.yaml at git HEAD is not a mapping of sections")
    return data


def target_params(name: str, size: str, root: str | Path = ".") -> dict[str, Any]:
    """The committed params with the study's values at ``size``."""
    return apply(committed_params(root), overrides(name, size, root))


def resolved_params(name: str, size: str, root: str | Path = ".") -> Params:
    """The validated params a study run will use (checked before DVC starts anything)."""
    return _validate(Params, target_params(name, size, root), f"study {name} ({size})")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def experiment_name(name: str, size: str, taken: set[str]) -> str:
    """``<name>-<size>``, or with ``-2``, ``-3``... when DVC already holds that experiment
    for this commit (DVC refuses to reuse a name)."""
    base = study_run_name(name, size)
    n = 1
    while (candidate := base if n == 1 else f"{base}-{n}") in taken:
        n += 1
    return candidate


def latest_experiment(name: str, size: str, taken: set[str]) -> str | None:
    """The newest ``<name>-<size>[-n]`` experiment DVC holds for this commit, if any."""
    base = study_run_name(name, size)
    runs = [base] if base in taken else []
    runs += sorted(
        (t for t in taken if t.startswith(f"{base}-") and t[len(base) + 1 :].isdigit()),
        key=lambda t: int(t[len(base) + 1 :]),
    )
    return runs[-1] if runs else None


def dvc_experiments(root: str | Path = ".") -> set[str]:
    """Names of the DVC experiments of the current commit (none when DVC cannot say)."""
    import subprocess

    cmd = ["dvc", "exp", "list", "--name-only"]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    return set(out.stdout.split()) if out.returncode == 0 else set()


def set_values(name: str, size: str, root: str | Path = ".") -> list[str]:
    """The ``-S`` values of a study run at ``size``: the study's values, then every workspace
    value that differs from the committed params (left by an earlier study), set back.
    Values are JSON, which DVC parses as YAML."""
    resolved_params(name, size, root)  # fail here, with our message, not inside a stage
    values = overrides(name, size, root)
    workspace = flatten(read_yaml(Path(root) / PARAMS_FILE))
    target = flatten(target_params(name, size, root))
    for key, value in target.items():
        if key not in values and workspace.get(key, value) != value:
            values[key] = value
    # Hydra's override grammar, which DVC's -S speaks: '++' adds a key params.yaml lacks (e.g.
    # one variant's own train.iterations), '~' deletes one an earlier study added.
    sets = [f"{'' if _holds(workspace, k) else '++'}{k}={json.dumps(v)}" for k, v in values.items()]
    return sets + [f"~{key}" for key in workspace if not _holds(target, key)]


def _holds(flat: dict[str, Any], key: str) -> bool:
    """Whether the flattened params have ``key`` as a leaf or as a section above leaves."""
    return key in flat or any(k.startswith(f"{key}.") for k in flat)


def dvc_command(
    name: str, size: str, root: str | Path = ".", taken: set[str] = frozenset()
) -> list[str]:
    """``dvc exp run`` of the study at ``size`` in the workspace, as an experiment named
    ``<name>-<size>`` (see ``experiment_name``), with ``set_values``."""
    args = ["dvc", "exp", "run", "--name", experiment_name(name, size, set(taken))]
    for value in set_values(name, size, root):
        args += ["-S", value]
    return args


def write_params(name: str, size: str, root: str | Path = ".") -> None:
    """Put the study's values at ``size`` into the workspace's params.yaml with DVC's own code
    for ``dvc exp run -S`` (comments and key order stay): what the study flow runs on."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    values = set_values(name, size, root)
    try:
        apply_overrides(Path(root) / PARAMS_FILE, values)
    except InvalidArgumentError as err:  # DVC's message alone does not name the value
        raise GanstudyError(f"study {name} ({size}): params.yaml refused {values}: {err}") from err


def shell_line(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
