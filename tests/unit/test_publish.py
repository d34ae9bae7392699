"""Results pages: a size published later joins the sections published before (whose run folders
may be gone), in the study's order of sizes; `--only` drops them; a failing size replaces
nothing; a note written beside the page is kept. The sections themselves come from run outputs
(tests/integration/test_study_run.py)."""

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


def test_a_note_beside_the_page_is_kept(project):
    """A README.md written by hand beside the page (what it answers) survives a new publish,
    even with --only; the files publish owns are rewritten."""
    out = publish("sgan", ["full"], project)
    (out / "README.md").write_text("what the page answers\n")
    (out / "extra").mkdir()
    (out / "extra" / "plot.png").write_bytes(b"png")
    publish("sgan", ["pilot"], project, only=True)
    assert (out / "README.md").read_text() == "what the page answers\n"
    assert (out / "extra" / "plot.png").is_file()
    assert not (out / "full").exists() and "section of pilot" in (out / "index.md").read_text()


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


def test_a_per_class_run_took_its_classes_time_summed(tmp_path):
    """A per-class run (Frid-Adar's DCGAN per class) keeps a timing.json per class folder: the
    page's training time adds them up; a class without its record leaves the run untimed."""
    from ganstudy.io import write_json
    from ganstudy.study.publish import run_timing

    run = tmp_path / "dcgan-perclass" / "0"
    write_json(run / "per_class.json", {"folders": ["class_0", "class_1"]})
    common = {"device": "cpu", "threads": 1, "torch": "2", "machine": "m", "git_commit": "abc"}
    write_json(
        run / "class_0" / "timing.json", {**common, "seconds": 2.0, "sessions": 1, "iterations": 5}
    )
    assert run_timing(run) is None  # class_1 has not trained yet
    write_json(
        run / "class_1" / "timing.json", {**common, "seconds": 3.5, "sessions": 2, "iterations": 5}
    )
    timing = run_timing(run)
    assert (timing["seconds"], timing["sessions"], timing["iterations"]) == (5.5, 2, 10)
    assert timing["git_commit"] == "abc" and timing["machine"] == "m"
    assert run_timing(tmp_path / "acgan" / "0") is None  # no run there
