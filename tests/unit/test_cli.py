import subprocess
import sys

import pytest

from ganstudy.cli import main
from tests.conftest import ROOT


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_variants_lists_architectures_and_games(capsys):
    code, out, _ = run(capsys, "variants")
    assert code == 0
    assert "dcgan" in out and "nonsaturating" in out


def test_datasets_lists_registry(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    for name in ("fashion-mnist", "mnist", "cifar10", "digits", "pneumoniamnist", "breastmnist"):
        assert name in out


def test_metrics_lists_registry_with_protocols(capsys):
    code, out, _ = run(capsys, "metrics")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {
        "fid",
        "fid_per_class",
        "is",
        "kid",
        "memorisation",
        "precision_recall",
        "head_accuracy",  # scored on D itself, not features: its protocol is listed too
    }
    assert "BatchNorm running statistics are re-estimated" in lines["head_accuracy"]
    assert "Heusel" in lines["fid"] and "Binkowski" in lines["kid"]
    assert "fig. 5.3" in lines["memorisation"] and "all 1008 TF classes" in lines["is"]
    assert "inception-ts: skipped" in lines["is"]
    assert "k=3" in lines["precision_recall"]
    assert run(capsys, "metrics", "kid")[0] == 0


@pytest.mark.parametrize("command", ["variants", "datasets", "metrics"])
def test_unknown_name_is_one_line_with_choices(capsys, command):
    code, _, err = run(capsys, command, "no-such-thing")
    assert code == 2
    assert err.count("\n") == 1 and "valid choices" in err and "no-such-thing" in err


def test_check_validates_params(capsys):
    code, out, _ = run(capsys, "check", "--params", str(ROOT / "params.yaml"))
    assert code == 0 and "valid" in out


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "ganstudy.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert all(c in result.stdout for c in ("variants", "datasets", "metrics"))


def test_check_rejects_bad_game_options(capsys, tmp_path):
    import yaml

    from tests.conftest import tiny_params

    params = tiny_params()
    params["variants"]["dcgan"].update(game="wasserstein", game_args={"clip": -1})
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    code, _, err = run(capsys, "check", "--params", str(tmp_path / "p.yaml"))
    assert code == 2 and "wasserstein" in err and "clip" in err


def test_check_builds_the_study_variants_for_the_data(capsys, tmp_path):
    import yaml

    from tests.conftest import tiny_params

    params = tiny_params()
    params["preprocess"]["image_size"] = 48  # no dcgan configuration for 48 px
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    code, _, err = run(capsys, "check", "--params", str(tmp_path / "p.yaml"))
    assert code == 2 and "48" in err and "image_size" in err
