"""Atomic file output (temporary file in the same folder, then rename), hashing, and the
readers of every file a stage reads back: a missing, corrupt or truncated one is one line
naming the file and what to do, never a traceback."""

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganstudy.errors import GanstudyError

if TYPE_CHECKING:
    import pandas as pd

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


# What to do about a corrupt file a stage wrote: DVC keeps a copy of each cached output.
REBUILD = "restore it with `dvc checkout` or rebuild it with `dvc repro`"
# Everything numpy, zipfile and zlib raise for a truncated or overwritten .npz / .npy.
_ARRAY_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _missing(path: Path) -> GanstudyError:
    return GanstudyError(f"{path}: missing; run the stage that produces it (dvc repro)")


def _reason(err: BaseException) -> str:
    """An exception as a short single-line reason."""
    text = " ".join(str(err).split())[:120]
    if isinstance(err, ValueError) and "pickle" in text:  # numpy's advice to unpickle: never
        return "not a NumPy array file"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def read_json(path: str | Path, hint: str = REBUILD) -> dict[str, Any]:
    """A JSON file's object; a missing, corrupt or truncated file, or one that holds something
    else than an object, is one clear error naming the file and ``hint`` (what to do)."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GanstudyError(f"{path}: not readable JSON ({_reason(err)}); {hint}") from None
    if not isinstance(data, dict):
        raise GanstudyError(f"{path}: a JSON {type(data).__name__}, not an object; {hint}")
    return data


def read_npz(
    path: str | Path, keys: Sequence[str] | None = None, hint: str = REBUILD
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (default all) of an .npz, read in full here so that a truncated or
    corrupt file (bad zip, bad CRC, cut-off data) is one clear error, not a traceback later."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            absent = [k for k in keys or () if k not in npz.files]
            if absent:
                raise GanstudyError(f"{path}: no array {', '.join(absent)} in it; {hint}")
            return {k: npz[k] for k in (npz.files if keys is None else keys)}
    except _ARRAY_ERRORS as err:
        raise GanstudyError(f"{path}: corrupt or truncated .npz ({_reason(err)}); {hint}") from None


def read_npy(path: str | Path, hint: str = REBUILD) -> np.ndarray:
    """An .npy array; a missing, corrupt or truncated file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        return np.load(path, allow_pickle=False)
    except _ARRAY_ERRORS as err:
        raise GanstudyError(f"{path}: corrupt or truncated .npy ({_reason(err)}); {hint}") from None


def read_csv(path: str | Path, hint: str = REBUILD) -> "pd.DataFrame":
    """A CSV table (training history); a missing, empty or corrupt file is one clear error."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
        # pandas' EmptyDataError is a ValueError
        raise GanstudyError(f"{path}: not a readable CSV table ({_reason(err)}); {hint}") from None


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
