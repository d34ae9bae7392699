"""DVC stage `evaluate`: FID, IS, KID, precision/recall of one run against the cached reference."""

import argparse
from collections.abc import Sequence

from ganstudy.config import load_section
from ganstudy.errors import run_stage
from ganstudy.metrics.evaluate import evaluate_run
from ganstudy.names import PARAMS_FILE


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="run folder (train's output)")
    parser.add_argument("--reference", required=True, help="reference folder")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    parser.add_argument(
        "--processed", help="processed folder: draw the memorisation picture (nearest pairs)"
    )
    parser.add_argument(
        "--memorisation", help="memorisation picture to write (default <out stem>_memorisation.png)"
    )
    parser.add_argument("--params", default=PARAMS_FILE)
    args = parser.parse_args(argv)
    evaluate_run(
        args.run,
        args.reference,
        args.out,
        load_section("evaluate", args.params),
        load_section("study", args.params),
        load_section("tracking", args.params),
        args.processed,
        args.params,
        args.memorisation,
    )


if __name__ == "__main__":
    run_stage(main)
