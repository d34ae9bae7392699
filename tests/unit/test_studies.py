"""Study files: every size of every study resolves to valid params; the dvc command they make."""

import pytest
import yaml

from ganstudy.cli import main
from ganstudy.errors import GanstudyError
from ganstudy.study.studies import (
    SIZES,
    apply,
    committed_params,
    dvc_command,
    experiment_name,
    load_study,
    overrides,
    resolved_params,
    set_values,
    study_folders,
    study_names,
)
from tests.conftest import ROOT

STUDIES = study_names(ROOT)


def test_the_three_paper_tables_exist():
    assert {"augmentation", "sgan", "variants"} <= set(STUDIES)


@pytest.mark.parametrize("name", STUDIES)
def test_every_size_is_valid_params(name):
    study = load_study(name, ROOT)
    assert set(SIZES) <= set(study.sizes)
    run = set()
    for size in study.sizes:
        params = resolved_params(name, size, ROOT)  # validates every section and cross-check
        assert params.study.name == f"{name}-{size}"
        assert params.report.study == name
        assert params.paths.models == f"models/{name}-{size}"
        run |= set(params.study.variants)
    if study.kind != "augmentation":  # its rows name arms (classic, classic+synthetic)
        assert {row.row for row in study.published} <= run  # what some size runs


def test_tiny_sizes_stay_offline_and_small():
    for name in STUDIES:
        params = resolved_params(name, "tiny", ROOT)
        assert params.download.dataset == "digits"
        trains = [params.variants[v].train_config(params.train) for v in params.study.variants]
        assert max(t.iterations for t in trains) <= 10 and len(params.study.seeds) >= 2


def test_each_study_run_has_its_own_folders():
    a, b = overrides("variants", "quick", ROOT), overrides("variants", "full", ROOT)
    for key, top in study_folders(ROOT).items():
        assert a[f"paths.{key}"] == f"{top}/variants-quick" != b[f"paths.{key}"]


def test_study_folders_are_params_yaml_paths_but_raw():
    folders = study_folders(ROOT)
    paths = committed_params(ROOT)["paths"]  # a study run may have changed the workspace's
    assert folders == {k: v for k, v in paths.items() if k != "raw"}
    assert set(folders) == {"processed", "augmented", "reference", "models", "metrics", "report"}


def test_dvc_command_sets_every_override_as_yaml():
    args = dvc_command("variants", "tiny", ROOT)
    assert args[:5] == ["dvc", "exp", "run", "--name", "variants-tiny"]
    values = dict(a.split("=", 1) for a in args[6::2])
    assert yaml.safe_load(values["study.seeds"]) == [0, 1]
    assert yaml.safe_load(values["paths.report"]) == "report/variants-tiny"


def test_a_key_params_yaml_lacks_is_added_then_removed_by_the_next_study(tmp_path):
    """A size may set one variant's own train.iterations, a key params.yaml does not hold:
    DVC's -S gets '++key' (add), and the next study run gets '~key' (delete) to undo it."""
    import shutil
    import subprocess

    from ganstudy.study.studies import write_params

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "params"], check=True)
    (tmp_path / "studies").mkdir()
    for name, values in (("longer", {"variants.acgan.train.iterations": 7}), ("plain", {})):
        study = {"kind": "variants", "title": name, "description": name, "params": values}
        study["sizes"] = {size: {"train.iterations": 5} for size in SIZES}
        (tmp_path / "studies" / f"{name}.yaml").write_text(yaml.safe_dump(study))
    assert "++variants.acgan.train.iterations=7" in set_values("longer", "tiny", tmp_path)
    write_params("longer", "tiny", tmp_path)
    written = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert written["variants"]["acgan"]["train"] == {"iterations": 7}
    assert "~variants.acgan.train.iterations" in set_values("plain", "tiny", tmp_path)
    write_params("plain", "tiny", tmp_path)
    written = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert "iterations" not in written["variants"]["acgan"].get("train", {})


def test_experiment_names_never_collide():
    assert experiment_name("sgan", "quick", set()) == "sgan-quick"
    assert experiment_name("sgan", "quick", {"sgan-quick", "sgan-quick-2"}) == "sgan-quick-3"
    args = dvc_command("sgan", "tiny", ROOT, taken={"sgan-tiny"})
    assert args[4] == "sgan-tiny-2"


def test_apply_sets_dotted_keys_and_refuses_unknown_sections():
    params = {"train": {"iterations": 5}, "variants": {"a": {"arch": "gan"}}}
    out = apply(params, {"train.iterations": 7, "variants.a.train.batch_size": 3})
    assert out == {
        "train": {"iterations": 7},
        "variants": {"a": {"arch": "gan", "train": {"batch_size": 3}}},
    }
    assert params["train"]["iterations"] == 5  # a copy
    with pytest.raises(GanstudyError, match="not a key"):
        apply(params, {"trian.iterations": 7})


def test_unknown_study_and_size_are_one_clear_error(capsys):
    with pytest.raises(GanstudyError, match="valid: augmentation"):
        load_study("nope", ROOT)
    with pytest.raises(GanstudyError, match="no size 'huge'"):
        overrides("sgan", "huge", ROOT)


def test_cli_lists_studies_and_prints_the_command(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    main(["studies"])
    out = capsys.readouterr().out
    assert all(name in out for name in STUDIES)
    main(["study", "run", "sgan", "--size", "tiny", "--dry-run"])
    assert capsys.readouterr().out.startswith("dvc exp run --name sgan-tiny")
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "run", "nope", "--dry-run"])
    assert exit_info.value.code == 2


def test_a_study_extends_another_key_by_key(tmp_path):
    """A MedMNIST study starts from the augmentation study: the parent's fields, params and
    sizes merged key by key (the child's win), the parent's published numbers."""
    (tmp_path / "studies").mkdir()
    parent = yaml.safe_load((ROOT / "studies" / "augmentation.yaml").read_text())
    (tmp_path / "studies" / "augmentation.yaml").write_text(yaml.safe_dump(parent))
    child = {
        "extends": "augmentation",
        "title": "on another set",
        "params": {"download.dataset": "breastmnist", "preprocess.classes": None},
        "sizes": {"quick": {"augment.copies": 30}},
    }
    (tmp_path / "studies" / "child.yaml").write_text(yaml.safe_dump(child))
    study = load_study("child", tmp_path)
    assert study.title == "on another set" and study.kind == "augmentation"
    assert study.published == load_study("augmentation", tmp_path).published
    assert study.params["download.dataset"] == "breastmnist"
    assert study.params["preprocess.n_per_class"] == parent["params"]["preprocess.n_per_class"]
    assert study.sizes["quick"]["augment.copies"] == 30
    assert study.sizes["quick"]["downstream.steps"] == parent["sizes"]["quick"]["downstream.steps"]
    assert study.sizes["tiny"] == parent["sizes"]["tiny"]
    (tmp_path / "studies" / "loop.yaml").write_text(yaml.safe_dump({"extends": "loop"}))
    with pytest.raises(GanstudyError, match="in a loop: loop -> loop"):
        load_study("loop", tmp_path)
    (tmp_path / "studies" / "orphan.yaml").write_text(yaml.safe_dump({"extends": "nope"}))
    with pytest.raises(GanstudyError, match="extends 'nope'"):
        load_study("orphan", tmp_path)


@pytest.mark.parametrize("flag", ["pneumoniamnist", "breastmnist"])
def test_medmnist_augmentation_studies_run_from_a_local_npz_in_one_command(
    flag, capsys, monkeypatch
):
    """`ganstudy study run augmentation-<flag> --size quick`: the MedMNIST set from the .npz
    the user placed (download.local_file), both classes, in folders of its own; arguments after
    -- go to `dvc exp run` unchanged."""
    monkeypatch.chdir(ROOT)
    name = f"augmentation-{flag}"
    params = resolved_params(name, "quick", ROOT)
    assert params.download.dataset == flag and params.preprocess.classes is None
    assert params.download.local_file == f"data/medmnist/{flag}.npz"
    assert params.paths.metrics == f"metrics/{name}-quick" and len(params.downstream.seeds) >= 10
    # Enough classic images for every control: 2 classes x 60 x copies >= 2 x max(counts).
    assert 120 * params.augment.copies >= 2 * params.downstream.counts[-1]
    main(["study", "run", name, "--size", "quick", "--dry-run", "--", "-S", "x=1", "--temp"])
    line = capsys.readouterr().out
    assert line.startswith(f"dvc exp run --name {name}-quick")
    assert f'download.dataset="{flag}"' in line and line.rstrip().endswith("-S x=1 --temp")
