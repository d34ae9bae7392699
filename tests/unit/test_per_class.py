"""Per-class runs (``VariantConfig.per_class``): one unconditional model per class, trained on
that class alone (Frid-Adar et al. 2018's DCGAN per liver-lesion class), and evaluate sampling
the classes evenly, each image from its class's generator."""

import shutil
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
import yaml

import ganstudy.training.run as run_module
from ganstudy.data.arrays import to_model_range, write_manifest
from ganstudy.errors import GanstudyError
from ganstudy.io import read_json, write_npz
from ganstudy.losses import GAMES, NonSaturating
from ganstudy.metrics.evaluate import generate
from ganstudy.report import run_histories
from ganstudy.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    save_checkpoint,
    tensor_digest,
)
from ganstudy.training.loop import train_gan as real_train_gan
from ganstudy.training.run import class_seed, read_per_class, train_variant
from tests.conftest import tiny_params

LEVELS = (20, 128, 235)  # class k's images are the constant uint8 LEVELS[k]
PER_CLASS = 5  # training images a class
VARIANT = {
    "arch": "gan",
    "arch_args": {"z_dim": 4, "hidden": 16},
    "game": "nonsaturating",
    "optimizer": {"lr_g": 2e-3, "lr_d": 2e-3},
    "per_class": True,
}


def data_folder(path: Path) -> Path:
    """3 classes of constant 8x8 grey images, interleaved (5 a class) so a subset must be picked."""
    path.mkdir(parents=True, exist_ok=True)
    y = np.arange(len(LEVELS) * PER_CLASS) % len(LEVELS)  # (15,): 0, 1, 2, 0, ...
    x = np.asarray(LEVELS, np.uint8)[y][:, None, None, None] * np.ones((1, 8, 8, 1), np.uint8)
    write_npz(path / "train.npz", images=x, labels=y)
    write_manifest(path, "toy", ["cyst", "metastasis", "hemangioma"], {"train": (x, y)}, {})
    return path


def params_file(path: Path, **variants: dict) -> Path:
    params = tiny_params()
    params["train"].update(device="cpu")  # iterations 4, batch 8, checkpoints at 2 and 4
    params["variants"] = {"pc": VARIANT, **variants}
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Data, params and an uninterrupted per-class run of seed 3 in ``full``."""
    work = tmp_path_factory.mktemp("per_class_run")
    data_folder(work / "data")
    params_file(work / "params.yaml")
    train_variant("pc", 3, work / "data", work / "full", work / "params.yaml")
    return work


def class_weights(run_dir: Path, k: int) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / f"class_{k}" / CHECKPOINT_NAME)["G"]


def same_weights(a: Path, b: Path, k: int) -> bool:
    wa, wb = class_weights(a, k), class_weights(b, k)
    return wa.keys() == wb.keys() and all(torch.equal(wa[n], wb[n]) for n in wa)


def spy(monkeypatch: pytest.MonkeyPatch, crash_class: int | None = None) -> list[tuple]:
    """Records (class folder, resumed_from, step) of every train_gan call of train_variant;
    with ``crash_class``, that class's training fails right after its step-2 checkpoint."""
    calls: list[tuple] = []

    def train_gan(images, image, name, variant, cfg, seed, out_dir, sink, on_samples, **kw):
        if Path(out_dir).name == f"class_{crash_class}":

            def on_samples(step, samples, on_samples=on_samples):
                raise RuntimeError(f"crash at step {step}")

        result = real_train_gan(
            images, image, name, variant, cfg, seed, out_dir, sink, on_samples, **kw
        )
        calls.append((Path(out_dir).name, result.resumed_from, result.step))
        return result

    monkeypatch.setattr(run_module, "train_gan", train_gan)
    return calls


def test_each_class_has_a_complete_run_folder_trained_on_its_class_alone(work):
    run, images = work / "full", to_model_range(np.load(work / "data" / "train.npz")["images"])
    info = read_per_class(run)
    assert info == {
        "seed": 3,
        "classes": [0, 1, 2],
        "names": ["cyst", "metastasis", "hemangioma"],
        "folders": ["class_0", "class_1", "class_2"],
        "class_seeds": [3000, 3001, 3002],
        "n_train": [PER_CLASS] * 3,
    }
    for k in range(3):
        folder = run / f"class_{k}"
        state = load_checkpoint(folder / CHECKPOINT_NAME)
        assert state["step"] == 4 and state["config"]["seed"] == class_seed(3, k)
        # The class's images alone: rows k, k + 3, ... of the interleaved split.
        assert state["config"]["data_digest"] == tensor_digest(images[k :: len(LEVELS)])
        assert (folder / "history.csv").is_file() and (folder / "samples.png").is_file()
        assert (folder / "samples" / "step_000004.png").is_file()
    assert not (run / CHECKPOINT_NAME).exists()  # no model of the whole split
    for name in ("samples.png", "loss.png", "config.json", "run.json"):
        assert (run / name).is_file()
    config = read_json(run / "config.json")
    assert config["seed"] == 3 and [c["n_train"] for c in config["per_class"]] == [5, 5, 5]
    histories = run_histories(run, 3)  # what the report plots
    assert list(histories) == ["seed 3, class 0", "seed 3, class 1", "seed 3, class 2"]
    assert all(list(h["step"]) == [1, 2, 3, 4] for h in histories.values())


def test_mlflow_holds_one_run_with_each_class_prefixed_and_its_generator(work):
    run_id = read_json(work / "full" / "run.json")["run_id"]
    run = mlflow.get_run(run_id)
    assert run.info.run_name == "pc-seed3" and run.data.params["per_class.class1.seed"] == "3001"
    client = mlflow.MlflowClient()
    for k in range(3):
        history = client.get_metric_history(run_id, f"class{k}/Loss/D")
        assert [m.step for m in history] == [1, 2, 3, 4]
    assert not any(name.startswith("Loss/") for name in run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"samples.png", "loss.png", "per_class.json", "class0", "class2"} <= artifacts
    models = mlflow.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    assert sorted(m.name for m in models) == [f"generator_class{k}" for k in range(3)]
    G = mlflow.pytorch.load_model(next(m for m in models if m.name.endswith("2")).model_uri)
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            G.state_dict().values(), class_weights(work / "full", 2).values(), strict=True
        )
    )


def test_each_class_sees_only_its_own_images(tmp_path, monkeypatch):
    seen: list[float] = []  # the distinct value of each real batch D is shown, in order

    class Recording(NonSaturating):
        def d_loss(self, D, real, fake):
            assert real.unique().numel() == 1  # one class's constant, not a mix
            seen.append(real.flatten()[0].item())
            return super().d_loss(D, real, fake)

    monkeypatch.setitem(GAMES._entries, "recording", Recording)
    data = data_folder(tmp_path / "data")
    params = params_file(tmp_path / "params.yaml", rec={**VARIANT, "game": "recording"})
    train_variant("rec", 0, data, tmp_path / "run", params)
    expected = [level / 127.5 - 1 for level in LEVELS]  # classes in order, 4 D steps each
    assert seen == pytest.approx([v for v in expected for _ in range(4)], abs=1e-6)


def test_the_same_seed_gives_the_same_weights_and_classes_differ(work, tmp_path):
    train_variant("pc", 3, work / "data", tmp_path / "again", work / "params.yaml")
    assert all(same_weights(work / "full", tmp_path / "again", k) for k in range(3))
    first = [class_weights(work / "full", k)["net.0.weight"] for k in range(3)]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])


def test_a_crash_in_class_1_resumes_it_and_does_not_retrain_class_0(work, tmp_path, monkeypatch):
    run = tmp_path / "run"
    spy(monkeypatch, crash_class=1)
    with pytest.raises(RuntimeError, match="crash at step 2"):
        train_variant("pc", 3, work / "data", run, work / "params.yaml")
    assert load_checkpoint(run / "class_1" / CHECKPOINT_NAME)["step"] == 2
    assert not (run / "class_2").exists()
    calls = spy(monkeypatch)
    train_variant("pc", 3, work / "data", run, work / "params.yaml")
    assert calls == [("class_0", 4, 4), ("class_1", 2, 4), ("class_2", 0, 4)]
    assert all(same_weights(work / "full", run, k) for k in range(3))


def test_a_deleted_class_checkpoint_retrains_that_class_only(work, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(work / "full", run)
    (run / "class_1" / CHECKPOINT_NAME).unlink()
    calls = spy(monkeypatch)
    train_variant("pc", 3, work / "data", run, work / "params.yaml")
    assert calls == [("class_0", 4, 4), ("class_1", 0, 4), ("class_2", 4, 4)]
    assert all(same_weights(work / "full", run, k) for k in range(3))


def test_generate_samples_the_classes_evenly_each_from_its_generator(work, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(work / "full", run)
    for k in range(3):  # class k's G now draws the constant tanh(k - 1) whatever z is
        path = run / f"class_{k}" / CHECKPOINT_NAME
        state = load_checkpoint(path)
        state["G"]["net.2.weight"].zero_()
        state["G"]["net.2.bias"].fill_(k - 1.0)
        save_checkpoint(path, {k: v for k, v in state.items() if k != "format"})
    images, state = generate(run, 31, 8, torch.device("cpu"))
    labels = state["sample_labels"]
    assert images.shape == (31, 1, 8, 8) and labels.shape == (31,)
    assert torch.bincount(labels).tolist() == [11, 10, 10]  # n // K, the first n % K one more
    assert not torch.equal(labels, labels.sort().values)  # shuffled, not class after class
    for k in range(3):
        assert torch.allclose(images[labels == k], torch.tanh(torch.tensor(k - 1.0)))
    assert state["step"] == 4 and state["variant"] == "pc" and state["config"]["seed"] == 3
    again, state2 = generate(run, 31, 5, torch.device("cpu"))  # seeded; batch size immaterial
    assert torch.equal(state2["sample_labels"], labels) and torch.equal(again, images)


def test_generate_of_the_trained_run_is_deterministic_and_varies_with_z(work):
    a, state = generate(work / "full", 12, 5, torch.device("cpu"))
    b, _ = generate(work / "full", 12, 12, torch.device("cpu"))
    assert torch.allclose(a, b, atol=1e-6)
    first = a[state["sample_labels"] == 0]
    assert not torch.allclose(first[0], first[1])  # each image its own latent code


@pytest.mark.parametrize(
    "changes, why",
    [
        ({"arch": "cgan", "arch_args": {"z_dim": 4}}, "architecture 'cgan' trains on labels"),
        ({"game": "sgan"}, "game 'sgan' needs labelled batches"),
    ],
)
def test_variants_that_need_labels_are_refused_before_training(tmp_path, changes, why):
    data = data_folder(tmp_path / "data")
    params = params_file(tmp_path / "params.yaml", bad={**VARIANT, **changes})
    with pytest.raises(GanstudyError, match=f"variant 'bad': per_class .*{why}"):
        train_variant("bad", 0, data, tmp_path / "run", params)
    assert not (tmp_path / "run").exists()
