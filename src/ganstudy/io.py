"""Atomic file output (temporary file in the same folder, then rename) and hashing."""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ganstudy.errors import GanstudyError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file's content; a missing or corrupt file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise GanstudyError(f"{path}: missing; run the stage that produces it (dvc repro)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GanstudyError(f"{path}: not readable JSON ({err})") from None


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    # np.savez appends ".npz" to names without it, so write through a file object.
    def save(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez_compressed(f, **arrays)

    return write_with(path, save)


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    # np.save appends ".npy" to names without it, so write through a file object.
    def save(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, array, allow_pickle=False)

    return write_with(path, save)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def copy_into(source: str | Path, dest: str | Path) -> Path:
    """Copy ``source`` to ``dest`` atomically."""
    return write_with(dest, lambda p: shutil.copyfile(source, p))


def save_torch(path: str | Path, obj: Any) -> Path:
    """``torch.save`` atomically and byte-reproducibly.

    Saving to a path names the zip archive's root folder after the (random) temporary file;
    saving through a file object uses a fixed name, so equal content gives equal bytes.
    """
    import torch

    def save(p: Path) -> None:
        with open(p, "wb") as f:
            torch.save(obj, f)

    return write_with(path, save)
