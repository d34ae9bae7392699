"""DVC stage `downstream`: the augmentation study's classifier for one arm x seed, every count."""

import argparse
from collections.abc import Sequence

from ganstudy.config import load_section
from ganstudy.errors import run_stage
from ganstudy.names import PARAMS_FILE
from ganstudy.study.augmentation import run_downstream


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arm", required=True, help="classic, or a GAN variant (with --run)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--processed", required=True, help="preprocess stage folder")
    parser.add_argument("--augmented", required=True, help="augment stage folder")
    parser.add_argument("--run", help="the variant's run folder (train's output)")
    parser.add_argument("--out", required=True, help="arm JSON to write")
    parser.add_argument("--metrics", help="the run's evaluate metrics (the quality gate)")
    parser.add_argument(
        "--sources", help="the arm's picture to write (default: <out stem>_sources.png)"
    )
    parser.add_argument("--params", default=PARAMS_FILE)
    args = parser.parse_args(argv)
    run_downstream(
        args.arm,
        args.seed,
        args.processed,
        args.augmented,
        args.out,
        load_section("downstream", args.params),
        load_section("study", args.params),
        load_section("tracking", args.params),
        args.run,
        args.params,
        args.metrics,
        args.sources,
    )


if __name__ == "__main__":
    run_stage(main)
