"""Bad input anywhere in the pipeline: a corrupt or truncated file a stage reads (npz, npy,
JSON, CSV, checkpoint, image) is one line naming the file and what to do, and a non-zero exit
from the stage; never a traceback."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ganstudy.data.arrays import load_split, read_manifest, save_split, write_manifest
from ganstudy.data.formats import read_medmnist
from ganstudy.errors import GanstudyError, run_stage
from ganstudy.io import read_csv, read_json, read_npy, read_npz, save_torch, write_npy
from ganstudy.metrics.domain import load_classifier
from ganstudy.metrics.fid import load_stats, save_stats
from ganstudy.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _split(folder: Path) -> Path:
    """A valid train split (and manifest) in ``folder``; the npz's path."""
    x = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 1), dtype=np.uint8)
    y = np.arange(40) % 2
    save_split(folder / "train.npz", (x, y))
    write_manifest(folder, "digits", ["0", "1"], {"train": (x, y)}, {})
    return folder / "train.npz"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip_middle(path: Path) -> None:
    """Damage a byte inside the compressed data: the zip still opens, the CRC fails."""
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


def _one_line(err: pytest.ExceptionInfo, path: Path, todo: str) -> str:
    message = str(err.value)
    assert "\n" not in message and str(path) in message and todo in message, message
    return message


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _flip_middle,
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b"not an npz at all"),
    ],
    ids=["truncated", "bad-crc", "empty", "garbage"],
)
def test_corrupt_split_npz(tmp_path, damage):
    path = _split(tmp_path)
    damage(path)
    with pytest.raises(GanstudyError) as err:
        load_split(tmp_path, "train")
    _one_line(err, path, "dvc checkout")


def test_npz_without_an_array_it_needs(tmp_path):
    path = tmp_path / "train.npz"
    np.savez(path, images=np.zeros((2, 4, 4, 1), np.uint8))
    with pytest.raises(GanstudyError, match="no array labels") as err:
        read_npz(path, ["images", "labels"])
    _one_line(err, path, "dvc repro")


def test_corrupt_reference_statistics_and_features(tmp_path):
    stats = save_stats(tmp_path / "stats.npz", np.random.default_rng(0).normal(size=(20, 3)))
    _truncate(stats)
    with pytest.raises(GanstudyError) as err:
        load_stats(stats)
    _one_line(err, stats, "dvc repro")
    feats = write_npy(tmp_path / "feats.npy", np.ones((20, 3)))
    _truncate(feats, 0.9)
    with pytest.raises(GanstudyError) as err:
        read_npy(feats)
    _one_line(err, feats, "dvc checkout")


def test_truncated_medmnist_download(tmp_path):
    path = tmp_path / "pathmnist.npz"
    arrays = {
        f"{s}_{k}": np.zeros((4, 8, 8), np.uint8)
        for s in ("train", "val", "test")
        for k in ("images",)
    }
    arrays |= {f"{s}_labels": np.zeros((4, 1), np.int64) for s in ("train", "val", "test")}
    np.savez_compressed(path, **arrays)
    _truncate(path)
    with pytest.raises(GanstudyError) as err:
        read_medmnist(path)
    _one_line(err, path, "dvc repro download")


@pytest.mark.parametrize(
    ("text", "why"),
    [('{"dataset": "digits", "clas', "not readable JSON"), ("[1, 2]", "a JSON list")],
    ids=["truncated", "not-an-object"],
)
def test_corrupt_json(tmp_path, text, why):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(GanstudyError, match=why) as err:
        read_json(path)
    _one_line(err, path, "dvc checkout")


def test_manifest_truncated_or_without_its_keys(tmp_path):
    _split(tmp_path)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"dataset": "digits"}))
    with pytest.raises(GanstudyError, match="no classes") as err:
        read_manifest(tmp_path)
    _one_line(err, manifest, "dvc repro")
    _truncate(manifest)
    with pytest.raises(GanstudyError, match="not readable JSON"):
        read_manifest(tmp_path)


def test_empty_or_corrupt_history_csv(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("")
    with pytest.raises(GanstudyError, match="not a readable CSV") as err:
        read_csv(path)
    _one_line(err, path, "dvc repro")
    path.write_bytes(b"step,Loss/D\n1,0.5\n\xff\xfe\x00,1,2,3\n")
    with pytest.raises(GanstudyError, match="not a readable CSV"):
        read_csv(path)


@pytest.mark.parametrize(
    "damage",
    [_truncate, lambda p: p.write_bytes(b"garbage"), lambda p: save_torch(p, [1, 2])],
    ids=["truncated", "garbage", "not-a-checkpoint"],
)
def test_corrupt_checkpoint_says_how_to_restart(tmp_path, damage):
    run = tmp_path / "models" / "dcgan" / "0"
    path = run / CHECKPOINT_NAME
    save_checkpoint(path, {"step": 2, "G": {"w": torch.ones(100)}})
    load_checkpoint(path)  # the good one loads
    damage(path)
    with pytest.raises(GanstudyError) as err:
        load_checkpoint(path)
    _one_line(err, path, f"delete the run folder {run} to train it from the start")


def test_corrupt_domain_classifier(tmp_path):
    path = tmp_path / "classifier.pt"
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(GanstudyError) as err:
        load_classifier(path, torch.device("cpu"))
    _one_line(err, path, "dvc checkout")


def test_truncated_image_in_a_dataset_zip(tmp_path):
    from PIL import Image

    from ganstudy.data import formats

    png = tmp_path / "x.png"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(png)
    archive = tmp_path / "pair.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pair/trainA/0.png", png.read_bytes()[:40])  # cut inside the pixel data
    with zipfile.ZipFile(archive) as zf, pytest.raises(GanstudyError) as err:
        formats._decode(zf, "pair/trainA/0.png", archive)
    _one_line(err, archive, "fetch it again")


def test_stage_exits_with_one_line_and_status_2(tmp_path, capsys):
    path = _split(tmp_path)
    _truncate(path)
    with pytest.raises(SystemExit) as exit_:
        run_stage(lambda argv: load_split(tmp_path, "train"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: corrupt or truncated .npz")


def test_train_stage_on_a_truncated_train_npz(tmp_path, params_file):
    """The command DVC runs: one line on stderr, status 2 (was a BadZipFile traceback)."""
    data = tmp_path / "augmented"
    path = _split(data)
    _truncate(path)
    params = yaml.safe_load(params_file.read_text())
    variant = params["study"]["variants"][0]
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/train.py"),
            "--variant",
            variant,
            "--seed",
            "0",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "run"),
            "--params",
            str(params_file),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: corrupt or truncated .npz")
    assert "dvc checkout" in lines[0]


def test_unknown_arch_args_key_stops_train_before_it_writes_or_tracks(tmp_path, params_file):
    """A misspelt arch_args key is one line naming the variant and the accepted keys, before
    the run folder or an MLflow run exists (was: run.json written, a run started)."""
    from ganstudy.training.run import train_variant

    data = tmp_path / "augmented"
    _split(data)
    params = yaml.safe_load(params_file.read_text())
    variant = params["study"]["variants"][0]
    params["variants"][variant]["arch_args"]["zdim"] = 3
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(GanstudyError, match=rf"variant '{variant}': arch_args .*'zdim'; accepted"):
        train_variant(variant, 0, data, tmp_path / "run", params_file)
    assert not (tmp_path / "run").exists()
