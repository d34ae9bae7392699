"""DVC stage `download`: fetch the raw files of `download.dataset` (offline copy, cache or web)."""

import argparse
from collections.abc import Sequence

from ganstudy.config import load_section
from ganstudy.data.datasets import fetch_raw
from ganstudy.errors import run_stage
from ganstudy.names import PARAMS_FILE


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="raw data folder to write")
    parser.add_argument("--params", default=PARAMS_FILE)
    args = parser.parse_args(argv)
    fetch_raw(load_section("download", args.params), args.out)


if __name__ == "__main__":
    run_stage(main)
