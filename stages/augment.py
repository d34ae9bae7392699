"""DVC stage `augment`: classic, seeded augmentation of the processed training split."""

import argparse
from collections.abc import Sequence

from ganstudy.config import load_section
from ganstudy.data.augment import augment
from ganstudy.errors import run_stage
from ganstudy.names import PARAMS_FILE


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processed", required=True, help="processed folder (preprocess's output)")
    parser.add_argument("--out", required=True, help="augmented folder to write")
    parser.add_argument("--params", default=PARAMS_FILE)
    args = parser.parse_args(argv)
    augment(args.processed, args.out, load_section("augment", args.params))


if __name__ == "__main__":
    run_stage(main)
