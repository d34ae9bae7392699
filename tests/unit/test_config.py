from pathlib import Path

import pytest
import yaml

from ganstudy.config import load_params, load_section, load_variant
from ganstudy.errors import GanstudyError
from tests.conftest import ROOT, tiny_params


def write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_shipped_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.download.dataset == "fashion-mnist"
    assert set(params.study.variants) <= set(params.variants)
    assert load_section("train", ROOT / "params.yaml") == params.train


def test_config_is_frozen():
    cfg = load_section("train", ROOT / "params.yaml")
    with pytest.raises(ValueError):
        cfg.batch_size = 3


def test_unknown_key_is_one_line_error_naming_it(tmp_path):
    params = tiny_params()
    params["train"]["batchsize"] = 64
    with pytest.raises(GanstudyError) as err:
        load_section("train", write(tmp_path, params))
    assert "train.batchsize" in str(err.value) and "\n" not in str(err.value)


def test_impossible_value_names_key_and_value(tmp_path):
    params = tiny_params()
    params["train"]["batch_size"] = -1
    with pytest.raises(GanstudyError, match=r"train\.batch_size: .*greater than 0.*got -1"):
        load_section("train", write(tmp_path, params))


def test_bad_augment_scale_range(tmp_path):
    params = tiny_params()
    params["augment"]["scale"] = [1.2, 0.8]
    with pytest.raises(GanstudyError, match="scale"):
        load_section("augment", write(tmp_path, params))


def test_study_variant_must_be_defined(tmp_path):
    params = tiny_params()
    params["study"]["variants"] = ["dcgan", "nope"]
    with pytest.raises(GanstudyError, match="nope"):
        load_params(write(tmp_path, params))


def test_too_few_classic_images_for_the_controls_fail_before_any_stage(tmp_path):
    """The augmentation study's equal-size controls need 2 x max(counts) classic images."""
    params = tiny_params()
    params["study"]["seeds"] = [0]
    params["preprocess"].update(n_per_class=10, classes=[0, 1, 2])  # 30 real images
    params["augment"]["copies"] = 2  # 60 classic images
    params["downstream"].update(seeds=[0], counts=[0, 30])
    load_params(write(tmp_path, params))  # 60 = 2 x 30: enough
    params["downstream"]["counts"] = [0, 31]
    with pytest.raises(GanstudyError, match="60 classic images, but downstream.counts needs 62"):
        load_params(write(tmp_path, params))


def test_unknown_variant_lists_defined_ones(tmp_path):
    with pytest.raises(GanstudyError, match="unknown variant 'wgann'.*dcgan"):
        load_variant("wgann", write(tmp_path, tiny_params()))


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(GanstudyError, match="not found"):
        load_params(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed")
    with pytest.raises(GanstudyError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("instance_noise", -0.1, "greater than or equal to 0"),
        ("instance_noise", float("inf"), "finite"),
        ("ema_beta", 1.0, "less than 1"),
        ("ema_beta", 0.0, "greater than 0"),
    ],
)
def test_training_tricks_are_validated(tmp_path, key, value, message):
    params = tiny_params()
    params["train"][key] = value
    with pytest.raises(GanstudyError, match=rf"train\.{key}: .*{message}"):
        load_section("train", write(tmp_path, params))
    params["train"].update(instance_noise=0.1, ema_beta=0.999)
    assert load_section("train", write(tmp_path, params)).ema_beta == 0.999


def test_every_shipped_variant_builds_its_networks_and_game():
    from ganstudy.losses import build_game
    from ganstudy.models import ARCHITECTURES, build_gan

    params = load_params(ROOT / "params.yaml")
    for name, variant in params.variants.items():
        build_gan(variant.arch, ARCHITECTURES.get(variant.arch).example, variant.arch_args)
        build_game(variant.game, variant.game_args)
        variant.train_config(params.train)  # its own train values are valid
        if name.endswith("-book"):  # a book preset states the book's batch and iterations
            assert {"batch_size", "iterations"} <= set(variant.train), name


def test_unknown_variant_train_key_is_clear(tmp_path):
    params = tiny_params()
    params["variants"]["dcgan"]["train"] = {"iteratons": 5}
    with pytest.raises(GanstudyError, match="unknown train keys.*iteratons"):
        load_params(write(tmp_path, params))
