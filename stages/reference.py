"""DVC stage `reference`: train the domain classifier; cache real-split features and statistics
(also in evaluate's Inception backbone's space when it uses one)."""

import argparse
from collections.abc import Sequence

from ganstudy.config import load_section
from ganstudy.errors import run_stage
from ganstudy.metrics.reference import build_reference
from ganstudy.names import PARAMS_FILE


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processed", required=True, help="processed folder (preprocess's output)")
    parser.add_argument("--out", required=True, help="reference folder to write")
    parser.add_argument("--metrics", required=True, help="real-data metrics JSON to write")
    parser.add_argument("--params", default=PARAMS_FILE)
    args = parser.parse_args(argv)
    build_reference(
        args.processed,
        args.out,
        args.metrics,
        load_section("reference", args.params),
        load_section("evaluate", args.params),  # its backbone's real features are cached too
    )


if __name__ == "__main__":
    run_stage(main)
