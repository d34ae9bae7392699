"""DVC stage `report`: tables (mean ± CI over seeds), sample grids, loss curves; MD and HTML."""

import argparse
from collections.abc import Sequence

from ganstudy.config import load_section
from ganstudy.errors import run_stage
from ganstudy.names import PARAMS_FILE
from ganstudy.report import build_report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, help="metrics folder (evaluate's outputs)")
    parser.add_argument("--models", required=True, help="models folder (train's outputs)")
    parser.add_argument(
        "--reference-metrics", required=True, help="real-data metrics JSON (reference's output)"
    )
    parser.add_argument("--out", required=True, help="report folder to write")
    parser.add_argument("--params", default=PARAMS_FILE)
    args = parser.parse_args(argv)
    build_report(
        args.metrics,
        args.models,
        args.reference_metrics,
        args.out,
        load_section("report", args.params),
        load_section("study", args.params),
        load_section("tracking", args.params),
        args.params,
        load_section("download", args.params).dataset,
    )


if __name__ == "__main__":
    run_stage(main)
