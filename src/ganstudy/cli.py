"""The ``ganstudy`` command: what exists (variants, games, datasets, metrics), config checks."""

import argparse
import sys
from collections.abc import Callable, Sequence

from ganstudy.errors import GanstudyError


def run_stage(
    main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None
) -> None:
    """Run a command; a user error becomes one line on stderr and exit status 2."""
    try:
        main(argv)
    except GanstudyError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def _variants(args: argparse.Namespace) -> None:
    from ganstudy.losses import GAMES
    from ganstudy.models import ARCHITECTURES

    if args.name is not None:
        ARCHITECTURES.get(args.name)  # unknown names fail with the valid choices
    print("architectures (variants.<name>.arch in params.yaml):")
    for name in ARCHITECTURES:
        print(f"  {name:16} {ARCHITECTURES.get(name).description}")
    print("games (variants.<name>.game):")
    for name in GAMES:
        print(f"  {name:16} {GAMES.get(name).description}")


def _datasets(args: argparse.Namespace) -> None:
    from ganstudy.data.datasets import DATASETS

    if args.name is not None:
        DATASETS.get(args.name)
    print("datasets (download.dataset in params.yaml):")
    for name in DATASETS:
        print(f"  {name:16} {DATASETS.get(name).description}")


def _metrics(args: argparse.Namespace) -> None:
    from ganstudy.metrics.registry import METRICS

    if args.name is not None:
        METRICS.get(args.name)
    print("metrics (the evaluate stage computes all of them; names carry the protocol):")
    for name in METRICS:
        print(f"  {name:16} {METRICS.get(name).protocol}")


def _check(args: argparse.Namespace) -> None:
    from ganstudy.config import load_params
    from ganstudy.data.datasets import DATASETS
    from ganstudy.losses import build_game
    from ganstudy.models import ARCHITECTURES, ImageSpec, build_gan

    params = load_params(args.params)
    dataset = DATASETS.get(params.download.dataset)
    for variant in params.variants.values():
        ARCHITECTURES.get(variant.arch)
        build_game(variant.game, variant.game_args)  # names and options
    # The study's variants must also build for the data they will see (arch_args, image size).
    classes = params.preprocess.classes or dataset.classes
    image = ImageSpec(dataset.channels, params.preprocess.image_size, len(classes))
    for name in params.study.variants:
        build_gan(params.variants[name].arch, image, params.variants[name].arch_args)
    print(
        f"{args.params}: valid (study {params.study.name!r}: "
        f"{len(params.study.variants)} variant(s) x {len(params.study.seeds)} seed(s))"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganstudy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("variants", help="list GAN architectures and games")
    p.add_argument("name", nargs="?", help="check that this architecture exists")
    p.set_defaults(func=_variants)
    p = sub.add_parser("datasets", help="list datasets")
    p.add_argument("name", nargs="?", help="check that this dataset exists")
    p.set_defaults(func=_datasets)
    p = sub.add_parser("metrics", help="list evaluation metrics and their protocols")
    p.add_argument("name", nargs="?", help="check that this metric exists")
    p.set_defaults(func=_metrics)
    p = sub.add_parser("check", help="validate params.yaml (names, types, ranges)")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_check)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    def dispatch(argv: Sequence[str] | None) -> None:
        args = build_parser().parse_args(argv)
        args.func(args)

    run_stage(dispatch, argv)


if __name__ == "__main__":
    main()
