"""Results pages: a size published later joins the sections published before (whose run folders
may be gone), in the study's order of sizes; `--only` drops them; a failing size replaces
nothing. The sections themselves come from run outputs (tests/integration/test_study_run.py)."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ganstudy.errors import GanstudyError
from ganstudy.study import publish as publish_module
from ganstudy.study.publish import LENGTHS_FILE, SECTION_FILE, publish
from tests.conftest import ROOT


def _fake_size_part(study, name, size, out, root):
    """A section without run outputs: what `_size_part` returns for a size that ran."""
    if size == "quick":
        raise GanstudyError(f"{name} size {size}: 4 run folders lack timing.json")
    (out / size / "figures").mkdir(parents=True)
    (out / size / "figures" / "validation.png").write_bytes(b"png")
    choices = pd.DataFrame([{"size": size, "variant": "sgan-book", "length": 100}])
    part = [f"## section of {size}", "", f"![validation]({size}/figures/validation.png)", ""]
    return part, choices


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    shutil.copytree(ROOT / "studies", tmp_path / "studies")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setattr(publish_module, "_size_part", _fake_size_part)
    return tmp_path


def test_a_later_size_joins_the_sections_published_before(project):
    out = publish("sgan", ["full"], project)
    assert (out / "full" / SECTION_FILE).is_file() and (out / "full" / "figures").is_dir()
    publish("sgan", ["pilot"], project)  # full's run folders need not exist any more
    page = (out / "index.md").read_text()
    assert page.index("## section of pilot") < page.index("## section of full")  # study order
    assert "ganstudy study publish sgan --size full`" in page  # each section says its command
    assert (out / "full" / "figures" / "validation.png").is_file()
    lengths = pd.read_csv(out / LENGTHS_FILE)
    assert list(lengths["size"]) == ["pilot", "full"]
    publish("sgan", ["full"], project, only=True)
    page = (out / "index.md").read_text()
    assert "section of pilot" not in page and not (out / "pilot").exists()


def test_a_failing_size_replaces_nothing(project):
    out = publish("sgan", ["full"], project)
    before = (out / "index.md").read_text()
    with pytest.raises(GanstudyError, match="run folders lack"):
        publish("sgan", ["pilot", "quick"], project)
    assert (out / "index.md").read_text() == before and not (out / "pilot").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_an_unknown_size_is_one_clear_error(project):
    with pytest.raises(GanstudyError, match="no size 'huge'"):
        publish("sgan", ["huge"], project)
