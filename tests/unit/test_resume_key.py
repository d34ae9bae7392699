"""The training resume key covers the code a run executes, and only that: editing its
architecture, game or the loop restarts it; a new or edited unrelated model file does not."""

import shutil
from pathlib import Path

import pytest

from ganstudy import codebase
from ganstudy.training import checkpoint
from ganstudy.training.checkpoint import code_files, resume_key

RESOLVED = {"variant": {"arch": "dcgan", "game": "nonsaturating"}, "seed": 0}


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the package's source that the key is computed from."""
    copy = tmp_path / "ganstudy"
    shutil.copytree(codebase.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codebase, "PACKAGE_DIR", copy)
    monkeypatch.setattr(checkpoint, "PACKAGE_DIR", copy)
    return copy


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_code_files_are_the_loop_architecture_and_game() -> None:
    files = {p.relative_to(codebase.PACKAGE_DIR).as_posix() for p in code_files("sgan", "sgan")}
    assert {"training/loop.py", "models/sgan.py", "losses/sgan.py", "config.py"} <= files
    assert {"models/progan.py", "losses/cyclegan.py", "tracking.py"}.isdisjoint(files)


@pytest.mark.parametrize(
    ("edit", "restarts"),
    [
        ("models/newarch.py", False),  # a new model file: every training used to restart
        ("models/progan.py", False),  # another architecture's module
        ("losses/vae.py", False),  # another game's module
        ("training/run.py", False),  # the stage around the loop (MLflow, pictures)
        ("models/dcgan.py", True),  # the run's architecture
        ("losses/__init__.py", True),  # its game (nonsaturating is defined there)
        ("training/loop.py", True),
        ("config.py", True),  # imported by the loop: optimizer defaults
    ],
)
def test_resume_key_follows_the_code_the_run_loads(
    package: Path, edit: str, restarts: bool
) -> None:
    before = resume_key(RESOLVED)
    path = package / edit
    if path.exists():
        _append(path, "\n# edited\n")
    else:
        path.write_text('"""A new architecture."""\n', encoding="utf-8")
    assert (resume_key(RESOLVED) != before) is restarts


def test_resume_key_follows_the_config() -> None:
    other = {**RESOLVED, "seed": 1}
    assert resume_key(RESOLVED) == resume_key(dict(RESOLVED))
    assert resume_key(RESOLVED) != resume_key(other)
    sgan = {**RESOLVED, "variant": {"arch": "sgan", "game": "sgan"}}
    assert resume_key(sgan) != resume_key(RESOLVED)
