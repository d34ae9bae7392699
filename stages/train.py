"""DVC stage `train`: train one variant with one seed; resumes from its last checkpoint."""

import argparse
from collections.abc import Sequence

from ganstudy.errors import run_stage
from ganstudy.names import PARAMS_FILE
from ganstudy.training.run import train_variant


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="a key of the `variants` section")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--data", required=True, help="folder with train.npz (augment's output)")
    parser.add_argument("--out", required=True, help="run folder to write")
    parser.add_argument(
        "--val", help="folder with val.npz (preprocess's output): a class head's held-out curve"
    )
    parser.add_argument("--params", default=PARAMS_FILE)
    args = parser.parse_args(argv)
    train_variant(args.variant, args.seed, args.data, args.out, args.params, args.val)


if __name__ == "__main__":
    run_stage(main)
