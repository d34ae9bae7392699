"""DVC stage deps are proven, not hand-kept: every file of ``ganstudy`` a stage's script can
execute is a dep of that stage in dvc.yaml (a folder dep covers the files under it), so editing
any of them re-runs the stage. Read statically: nothing here imports torch."""

import re
from pathlib import Path

import pytest
import yaml

from ganstudy.codebase import PACKAGE_DIR, closure

ROOT = Path(__file__).resolve().parents[2]
SRC = PACKAGE_DIR.relative_to(ROOT).as_posix()  # "src/ganstudy"


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _script(stage: dict) -> str:
    found = re.findall(r"stages/\w+\.py", stage["cmd"])
    assert len(found) == 1, f"one stage script per command: {stage['cmd']!r}"
    return found[0]


def _deps(stage: dict) -> list[str]:
    """The stage's deps inside the package (others are data, templated with ${...})."""
    names = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    return [d.rstrip("/") for d in names if d == SRC or d.startswith(f"{SRC}/")]


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(f"{d}/") for d in deps)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


STAGES = _stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_its_import_closure(name: str) -> None:
    stage = STAGES[name]
    script = _script(stage)
    deps = [d.rstrip("/") for d in stage["deps"] if isinstance(d, str)]
    assert script in deps, f"{name}: its script {script} is not a dep"
    needed = sorted(_rel(p) for p in closure([ROOT / script]))
    missing = [f for f in needed if not _covered(f, _deps(stage))]
    assert not missing, f"dvc.yaml stage {name!r} runs {script}, which loads {missing}: add them"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_not_stale(name: str) -> None:
    """A listed package dep exists and holds code the stage loads: no dep re-runs it for
    nothing (a renamed module would otherwise linger)."""
    stage = STAGES[name]
    needed = {_rel(p) for p in closure([ROOT / _script(stage)])}
    for dep in _deps(stage):
        assert (ROOT / dep).exists(), f"stage {name!r}: dep {dep} does not exist"
        assert any(_covered(f, [dep]) for f in needed), f"stage {name!r}: {dep} is not loaded"


def test_closure_follows_lazy_imports_plugins_and_data_files(tmp_path: Path) -> None:
    """What the closure must see for the test above to mean anything."""
    tracking = _rel(PACKAGE_DIR / "tracking.py")
    files = {_rel(p) for p in closure([ROOT / "stages/train.py"])}
    # A plugin registry imports every module of its folder; package __init__s run first.
    assert {f"{SRC}/models/dcgan.py", f"{SRC}/losses/sgan.py", f"{SRC}/__init__.py"} <= files
    assert tracking in files  # imported at module level by training/run.py
    # A data file read beside a module is part of it.
    assert f"{SRC}/data/medmnist.json" in {_rel(p) for p in closure(["ganstudy.data.datasets"])}
    # A lazy import inside a function counts: it runs whenever the function does.
    assert f"{SRC}/study/studies.py" in {_rel(p) for p in closure(["ganstudy.cli"])}
    # Without plugins only what is imported by name.
    bare = {_rel(p) for p in closure(["ganstudy.models"], follow_plugins=False)}
    assert f"{SRC}/models/__init__.py" in bare and f"{SRC}/models/dcgan.py" not in bare


def test_closure_of_a_script_outside_the_package(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text(
        "import os\nfrom ganstudy.data import arrays\ndef f():\n    import ganstudy.stats\n",
        encoding="utf-8",
    )
    files = {_rel(p) for p in closure([script])}
    assert {f"{SRC}/data/arrays.py", f"{SRC}/stats.py", f"{SRC}/data/__init__.py"} <= files
    assert f"{SRC}/report.py" not in files
