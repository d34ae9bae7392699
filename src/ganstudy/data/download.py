"""Fetching files: an installed offline copy, the user cache, or a verified download.

Every file is checked against known MD5 sums before use; a download is streamed to a temporary
file with a progress bar and renamed only after its checksum matches.
"""

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ganstudy.errors import GanstudyError
from ganstudy.io import atomic_path, copy_into, file_digest
from ganstudy.names import DATA_HOME_ENV

TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it is published and the checksums it may carry."""

    name: str  # file name inside the raw folder
    url: str
    md5: str  # checksum of the published file
    alt_md5: tuple[str, ...] = field(default=())  # other known-good copies (e.g. Debian's)

    def accepts(self, path: Path) -> bool:
        return path.is_file() and file_digest(path, "md5") in (self.md5, *self.alt_md5)


def cache_home() -> Path:
    """Where downloads are kept between runs, and where users can place files by hand."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganstudy"
    return Path(os.environ.get(DATA_HOME_ENV, default))


def download(url: str, dest: Path, md5: str | None = None) -> Path:
    """Stream ``url`` to ``dest`` with a progress bar; verify ``md5``; atomic."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, atomic_path(dest) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(tmp, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar,
            ):
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
            if md5 is not None and (got := file_digest(tmp, "md5")) != md5:
                raise GanstudyError(f"{url}: checksum mismatch (md5 {got}, expected {md5})")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise GanstudyError(f"could not download {url}: {reason}") from None
    return dest


def fetch(
    files: list[RemoteFile],
    out_dir: Path,
    cache_dir: Path,
    offline_dirs: list[Path],
    allow_download: bool,
) -> list[Path]:
    """Put each file into ``out_dir``: from an offline folder, the cache, or the network."""
    out_dir.mkdir(parents=True, exist_ok=True)
    placed = []
    for f in files:
        source = next((d / f.name for d in offline_dirs if f.accepts(d / f.name)), None)
        if source is None and f.accepts(cache_dir / f.name):
            source = cache_dir / f.name
        if source is None:
            if not allow_download:
                raise GanstudyError(
                    f"{f.name} not found offline; place it (md5 {f.md5}, from {f.url}) "
                    f"in {cache_dir}/ or set download.source to auto"
                )
            try:
                source = download(f.url, cache_dir / f.name, f.md5)
            except GanstudyError as err:
                raise GanstudyError(
                    f"{err}. To work offline, place {f.name} (md5 {f.md5}) in {cache_dir}/"
                ) from None
        placed.append(copy_into(source, out_dir / f.name))
    return placed
