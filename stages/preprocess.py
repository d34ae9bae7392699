"""DVC stage `preprocess`: uint8 arrays, class selection, stratified splits, resize, manifest."""

import argparse
from collections.abc import Sequence

from ganstudy.config import load_section
from ganstudy.data.preprocess import preprocess
from ganstudy.errors import run_stage
from ganstudy.names import PARAMS_FILE


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", required=True, help="raw data folder (download's output)")
    parser.add_argument("--out", required=True, help="processed folder to write")
    parser.add_argument("--params", default=PARAMS_FILE)
    args = parser.parse_args(argv)
    dataset = load_section("download", args.params).dataset
    preprocess(dataset, args.raw, args.out, load_section("preprocess", args.params))


if __name__ == "__main__":
    run_stage(main)
