"""Any paper-table study as the Prefect flow (``ganstudy study run NAME --flow``) under the
test harness, DVC and ganstudy's subprocesses faked: the study's values are set before
anything reads params.yaml, a successful whole run is saved as its DVC experiment, a failed
one is not, and a bad study name fails the flow with ganstudy's own line."""

import shutil
import subprocess

import pytest
import yaml

import pipelines.study as study_module
from ganstudy.cli import main
from ganstudy.study.studies import write_params
from pipelines.study import StudyFailed, study
from tests.conftest import ROOT
from tests.integration.test_flow_parallel import FakeProject, harness  # noqa: F401 (fixture)
from tests.unit.test_scheduling import STUDY


class FakeStudyProject(FakeProject):
    """FakeProject that also answers ``python -m ganstudy.cli ...`` (recorded in ``calls``
    beside the flow's other subprocesses, in order); ``bad_study`` fails ``study apply``."""

    def __init__(self, bad_study: str | None = None):
        super().__init__()
        self.bad_study = bad_study
        self.calls: list[str] = []

    def __call__(self, cmd: list[str], project_dir, env=None) -> subprocess.CompletedProcess:
        if cmd[1:3] == ["-m", "ganstudy.cli"]:
            args = cmd[3:]
            self.calls.append(" ".join(args))
            if args[:2] == ["study", "apply"] and args[2] == self.bad_study:
                line = f"error: unknown study {self.bad_study!r} (studies/x.yaml not found)\n"
                return subprocess.CompletedProcess(cmd, 2, "", line)
            return self._done(f"params.yaml holds study {args[2]}\n")
        self.calls.append("status" if "status" in cmd else cmd[-1])
        return super().__call__(cmd, project_dir, env)


@pytest.fixture
def fake(monkeypatch) -> FakeStudyProject:
    fake = FakeStudyProject(bad_study="nope")
    fake.patch(monkeypatch)
    no_delay = study_module.repro_item.with_options(retry_delay_seconds=0)
    monkeypatch.setattr(study_module, "repro_item", no_delay)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    return fake


def test_a_study_runs_as_the_flow_and_is_saved_as_its_experiment(harness, fake, tmp_path):  # noqa: F811
    outcome = study(project_dir=str(tmp_path), study="variants", size="tiny", workers=2)
    assert outcome == dict.fromkeys(STUDY, "ran")
    assert fake.calls[0] == "study apply variants --size tiny"  # before the graph, the parent
    assert fake.calls[-1] == "study save variants --size tiny"  # after every item and status
    assert fake.peak == 2
    assert [call[0] for call in fake.tracking] == ["begin_study_run", "end_study_run"]
    study(project_dir=str(tmp_path), study="variants", size="quick", fresh=True)
    assert "study apply variants --size quick --fresh" in fake.calls


def test_a_failed_study_run_is_not_saved(harness, fake, tmp_path):  # noqa: F811
    fake.failing = ("train@b",)
    with pytest.raises(StudyFailed, match="train@b"):
        study(project_dir=str(tmp_path), study="sgan", size="tiny", retries=0)
    assert fake.calls[0] == "study apply sgan --size tiny"
    assert not any(call.startswith("study save") for call in fake.calls)
    # Only some targets: their items ran, but the study's experiment is not the whole study.
    fake.failing = ()
    study(project_dir=str(tmp_path), stages=["train@a"], study="sgan", size="tiny")
    assert not any(call.startswith("study save") for call in fake.calls)


def test_a_bad_study_fails_the_flow_with_one_line_and_starts_nothing(harness, fake, tmp_path):  # noqa: F811
    state = study(project_dir=str(tmp_path), study="nope", size="tiny", return_state=True)
    assert state.is_failed()
    assert "error: unknown study 'nope'" in state.message
    assert fake.attempts == [] and fake.tracking == []


def test_cli_runs_a_study_as_the_flow(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    main(["study", "run", "variants", "--size", "tiny", "--flow", "--workers", "2", "--dry-run"])
    assert capsys.readouterr().out.strip() == (
        "python -m pipelines.study --study variants --size tiny --workers 2 --per-gpu 1 --retries 2"
    )
    for bad in (["nope", "--flow"], ["sgan", "--size", "huge", "--flow"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["study", "run", *bad, "--dry-run"])
        assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 2  # one line each


def test_study_values_go_into_params_yaml_as_dvc_sets_them(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "studies", tmp_path / "studies")
    before = (tmp_path / "params.yaml").read_text()
    write_params("variants", "tiny", tmp_path)  # no git here: from the workspace file
    after = (tmp_path / "params.yaml").read_text()
    params = yaml.safe_load(after)
    assert params["study"]["name"] == "variants-tiny"
    assert params["study"]["variants"] == ["dcgan", "wgan-gp"]
    assert params["paths"]["models"] == "models/variants-tiny"
    assert params["download"]["dataset"] == "digits"
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(line in after for line in comments)  # DVC's round trip keeps them


def test_dvc_arguments_after_a_double_dash_reach_dvc_exp_run(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    main(["study", "run", "variants", "--size", "tiny", "--dry-run", "--", "-S", "a=1", "--temp"])
    assert capsys.readouterr().out.strip().endswith(" -S a=1 --temp")
    with pytest.raises(SystemExit) as exit_info:  # --flow runs no `dvc exp run`
        main(["study", "run", "variants", "--flow", "--dry-run", "--", "--temp"])
    assert exit_info.value.code == 2
    assert "takes no `dvc exp run` arguments" in capsys.readouterr().err


def test_cli_starts_the_flow_offline(capsys, monkeypatch):
    started, real_run = [], subprocess.run

    def fake_run(command, env=None, **kwargs):
        if command[1:3] != ["-m", "pipelines.study"]:  # git show HEAD:params.yaml
            return real_run(command, env=env, **kwargs)
        started.append((command, env))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    main(["study", "run", "sgan", "--size", "tiny", "--flow", "--per-gpu", "2"])
    ((command, env),) = started
    assert command[1:] == ["-m", "pipelines.study", "--study", "sgan", "--size", "tiny",
                           "--workers", "1", "--per-gpu", "2", "--retries", "2"]  # fmt: skip
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"  # as the Makefile sets it
    assert "done by the flow: report/sgan-tiny/index.html" in capsys.readouterr().out
