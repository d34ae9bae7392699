"""The ``ganstudy`` command: what exists (variants, games, datasets, metrics), config checks."""

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from ganstudy.errors import GanstudyError, run_stage  # run_stage: re-exported
from ganstudy.names import PARAMS_FILE
from ganstudy.registry import Registry


def _listing(
    title: str, registry: Registry, describe: Callable[[object], str], name: str | None
) -> None:
    """Print one registry as ``name  description`` lines; an unknown ``name`` is an error."""
    if name is not None:
        registry.get(name)  # unknown names fail with the valid choices
    print(title)
    for entry in registry:
        print(f"  {entry:16} {describe(registry.get(entry))}")


def _variants(args: argparse.Namespace) -> None:
    from ganstudy.losses import GAMES
    from ganstudy.models import ARCHITECTURES

    _listing(
        "architectures (variants.<name>.arch in params.yaml):",
        ARCHITECTURES,
        lambda a: a.description,
        args.name,
    )
    _listing("games (variants.<name>.game):", GAMES, lambda g: g.description, None)
    if Path(args.params).is_file():  # the named presets a study picks from
        _presets(args.params)


def _presets(params_path: str) -> None:
    from ganstudy.config import load_params

    variants = load_params(params_path).variants
    print(f"variants defined in {params_path} (study.variants picks from them):")
    width = max(16, *(len(name) for name in variants))
    for name, v in variants.items():
        extra = [f"{k} {val}" for k, val in v.train.items()]
        extra += [] if v.labelled is None else [f"{v.labelled} labels"]
        suffix = f" ({', '.join(extra)})" if extra else ""
        what = f"{v.arch} + {v.game}, {v.optimizer.name} lr {v.optimizer.lr_g:g}"
        print(f"  {name:{width}} {what}{suffix}")


def _datasets(args: argparse.Namespace) -> None:
    from ganstudy.data.datasets import DATASETS

    _listing(
        "datasets (download.dataset in params.yaml):", DATASETS, lambda d: d.description, args.name
    )


def _metrics(args: argparse.Namespace) -> None:
    from ganstudy.metrics.registry import METRICS

    _listing(
        "metrics (the evaluate stage computes all of them; names carry the protocol):",
        METRICS,
        lambda m: m.protocol,
        args.name,
    )
    if args.name is None:  # not from features: scored on D itself, for a D with a class head
        from ganstudy.models.sgan import HEAD_PROTOCOL

        what = "test accuracy of D's class head (SGAN, AC-GAN)"
        print(f"  {'head_accuracy':16} {what}: {HEAD_PROTOCOL}")


def _check(args: argparse.Namespace) -> None:
    from ganstudy.config import load_params
    from ganstudy.data.datasets import DATASETS
    from ganstudy.models import ImageSpec
    from ganstudy.training.loop import check_variant_args, variant_game, variant_networks

    params = load_params(args.params)
    dataset = DATASETS.get(params.download.dataset)
    for name, variant in params.variants.items():
        check_variant_args(name, variant)  # names and keys
        variant_game(name, variant)  # the game's options
    # The study's variants must also build for the data they will see (arch_args, image size).
    all_classes, channels = dataset.classes, dataset.channels
    if dataset.probe is not None:  # `folder`: read (and check) the user's images now
        all_classes, channels = dataset.probe(params.download)
    classes = params.preprocess.classes or all_classes
    image = ImageSpec(channels, params.preprocess.image_size, len(classes))
    for name in params.study.variants:
        variant_networks(name, params.variants[name], image)
    print(
        f"{args.params}: valid (study {params.study.name!r}: "
        f"{len(params.study.variants)} variant(s) x {len(params.study.seeds)} seed(s))"
    )


def _studies(args: argparse.Namespace) -> None:
    from ganstudy.study.studies import load_study, study_names

    names = study_names()
    if not names:
        raise GanstudyError("no studies/*.yaml here (run from the project root)")
    print("studies (ganstudy study run <name> --size <size>):")
    for name in names:
        study = load_study(name)
        print(f"  {name:14} {study.title} [sizes: {', '.join(study.sizes)}]")


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    import subprocess

    from ganstudy.study.studies import shell_line

    status = subprocess.run(command, env=env).returncode
    if status != 0:
        raise GanstudyError(f"`{shell_line(command)}` exited with status {status}")


def _study_run(args: argparse.Namespace) -> None:
    from ganstudy.study.studies import (
        dvc_command,
        dvc_experiments,
        latest_experiment,
        shell_line,
    )

    if args.flow:
        _study_flow(args)
        return
    taken = set() if args.dry_run else dvc_experiments()
    previous = None if args.fresh else latest_experiment(args.name, args.size, taken)
    if previous is not None:  # its outputs come back from DVC's cache: nothing retrains
        _run(["dvc", "exp", "apply", previous])
    command = dvc_command(args.name, args.size, taken=taken) + list(args.dvc_args)
    print(shell_line(command), flush=True)
    if args.dry_run:
        return
    _run(command)
    print(
        f"study {args.name} ({args.size}) done: "
        f"{_study_page(args)}; "
        "params.yaml now holds its values (`dvc exp show` compares studies; "
        "`git checkout params.yaml dvc.lock && dvc checkout` returns to the default study)"
    )


def _study_page(args: argparse.Namespace) -> str:
    """Where a study run's report page lands: ``<paths.report>/<name>-<size>/index.html``."""
    from ganstudy.names import study_run_name
    from ganstudy.study.studies import study_folders

    return f"{study_folders()['report']}/{study_run_name(args.name, args.size)}/index.html"


def _study_flow(args: argparse.Namespace) -> None:
    """``study run --flow``: the study's items as the Prefect flow (``pipelines/study.py``),
    which sets the study's params (``study apply``), runs the items on device slots with
    retries under one MLflow parent run, and records the DVC experiment (``study save``)."""
    import sys

    from ganstudy.study.studies import resolved_params, shell_line

    if args.dvc_args:
        raise GanstudyError("--flow runs `dvc repro` per item; it takes no `dvc exp run` arguments")
    if not Path("pipelines/study.py").is_file():
        raise GanstudyError("pipelines/study.py not found: run from the project root")
    resolved_params(args.name, args.size)  # a bad study or size fails before Prefect starts
    flow = ["-m", "pipelines.study", "--study", args.name, "--size", args.size]
    flow += ["--workers", str(args.workers), "--per-gpu", str(args.per_gpu)]
    flow += ["--retries", str(args.retries)] + (["--fresh"] if args.fresh else [])
    if args.threads_per_item is not None:
        flow += ["--threads-per-item", str(args.threads_per_item)]
    print(shell_line(["python", *flow]), flush=True)
    if args.dry_run:
        return
    import os

    # Offline as under `make` (the Makefile's defaults): the flow's temporary Prefect server
    # would otherwise try to send telemetry and log an error for each attempt.
    quiet = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    _run([sys.executable, *flow], env={**quiet, **os.environ})
    print(
        f"study {args.name} ({args.size}) done by the flow: "
        f"{_study_page(args)}; params.yaml holds its "
        "values and DVC its experiment (`dvc exp show`)"
    )


def _study_apply(args: argparse.Namespace) -> None:
    """Restore the study's last DVC experiment (unless --fresh) and set its values in
    params.yaml, as ``dvc exp run -S`` would: then ``dvc repro`` or the flow runs it."""
    from ganstudy.study.studies import dvc_experiments, latest_experiment, write_params

    previous = None if args.fresh else latest_experiment(args.name, args.size, dvc_experiments())
    if previous is not None:  # its outputs come back from DVC's cache: nothing retrains
        _run(["dvc", "exp", "apply", previous])
    write_params(args.name, args.size)
    restored = f"; experiment {previous} restored" if previous else ""
    print(f"params.yaml holds study {args.name} ({args.size}){restored}", flush=True)


def _study_save(args: argparse.Namespace) -> None:
    """Record the workspace (params.yaml, dvc.lock, outputs in DVC's cache) as the study's
    next DVC experiment, ``<name>-<size>[-n]``, as ``study run`` leaves one."""
    import subprocess

    from ganstudy.study.studies import dvc_experiments, experiment_name

    name = experiment_name(args.name, args.size, dvc_experiments())
    # The .gitignore files DVC wrote for new output folders, as `dvc exp run` keeps them.
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], capture_output=True, text=True
    ).stdout.splitlines()
    ignores = [arg for p in untracked if Path(p).name == ".gitignore" for arg in ("-I", p)]
    _run(["dvc", "exp", "save", "--name", name, *ignores])
    print(f"DVC experiment {name} saved", flush=True)


def _study_report(args: argparse.Namespace) -> None:
    """Rebuild a study's page from its metrics and models on disk: no training, no DVC."""
    from ganstudy.names import reference_metrics_path
    from ganstudy.report import build_report
    from ganstudy.study.studies import resolved_params

    params = resolved_params(args.name, args.size)
    paths, dataset = params.paths, params.download.dataset
    out = build_report(
        paths.metrics,
        paths.models,
        reference_metrics_path(paths.reference, dataset),
        paths.report,
        params.report,
        params.study,
        params.tracking,
    )
    print(f"{out}/index.html")


def _study_publish(args: argparse.Namespace) -> None:
    """The study's results page from its sizes' outputs on disk: no training, no DVC."""
    from ganstudy.study.publish import publish

    print(f"{publish(args.name, args.size, only=args.only)}/index.md")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganstudy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("variants", help="list GAN architectures, games and the params presets")
    p.add_argument("name", nargs="?", help="check that this architecture exists")
    p.add_argument("--params", default=PARAMS_FILE)
    p.set_defaults(func=_variants)
    p = sub.add_parser("datasets", help="list datasets")
    p.add_argument("name", nargs="?", help="check that this dataset exists")
    p.set_defaults(func=_datasets)
    p = sub.add_parser("metrics", help="list evaluation metrics and their protocols")
    p.add_argument("name", nargs="?", help="check that this metric exists")
    p.set_defaults(func=_metrics)
    p = sub.add_parser("studies", help="list the paper-table studies (studies/*.yaml)")
    p.set_defaults(func=_studies)
    p = sub.add_parser("study", help="run a study through DVC (dvc exp run with its params)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("run", help="run (or bring up to date) a study at one size")
    p.add_argument("name", help="a name from `ganstudy studies`")
    p.add_argument("--size", default="quick", help="tiny | quick (2 CPU cores) | full (a GPU)")
    p.add_argument("--dry-run", action="store_true", help="print the dvc command only")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="do not first restore this study's last DVC experiment (dvc exp apply)",
    )
    p.add_argument("dvc_args", nargs="*", help="more `dvc exp run` arguments, after --")
    p.add_argument(
        "--flow",
        action="store_true",
        help="run the items as the Prefect flow (device slots, retries), not `dvc exp run`",
    )
    p.add_argument("--workers", type=int, default=1, help="--flow: items at once without a GPU")
    p.add_argument("--per-gpu", type=int, default=1, help="--flow: items at once per GPU")
    p.add_argument("--threads-per-item", type=int, help="--flow: each item's OMP_NUM_THREADS")
    p.add_argument("--retries", type=int, default=2, help="--flow: retries of a failed item")
    p.set_defaults(func=_study_run)
    p = actions.add_parser("apply", help="set a study's values in params.yaml (for dvc repro)")
    p.add_argument("name", help="a name from `ganstudy studies`")
    p.add_argument("--size", default="quick")
    p.add_argument("--fresh", action="store_true", help="do not restore its last experiment")
    p.set_defaults(func=_study_apply)
    p = actions.add_parser("save", help="record the workspace as the study's DVC experiment")
    p.add_argument("name", help="a name from `ganstudy studies`")
    p.add_argument("--size", default="quick")
    p.set_defaults(func=_study_save)
    p = actions.add_parser("report", help="rebuild a study's page from its results on disk")
    p.add_argument("name", help="a name from `ganstudy studies`")
    p.add_argument("--size", default="quick")
    p.set_defaults(func=_study_report)
    p = actions.add_parser(
        "publish", help="write docs/results/<name>/ from the results of one or more sizes"
    )
    p.add_argument("name", help="a name from `ganstudy studies`")
    p.add_argument(
        "--size", action="append", required=True, help="a size already run; repeat for more"
    )
    p.add_argument(
        "--only",
        action="store_true",
        help="the page holds the named sizes alone (default: sections published before stay)",
    )
    p.set_defaults(func=_study_publish)
    p = sub.add_parser("check", help="validate params.yaml (names, types, ranges)")
    p.add_argument("--params", default=PARAMS_FILE)
    p.set_defaults(func=_check)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    def dispatch(argv: Sequence[str] | None) -> None:
        import sys

        argv = list(sys.argv[1:] if argv is None else argv)
        # argparse refuses a "--" among a sub-command's arguments ("unrecognized arguments"):
        # what follows it is handed to `dvc exp run` untouched.
        cut = argv.index("--") if "--" in argv else len(argv)
        args = build_parser().parse_args(argv[:cut])
        if argv[cut + 1 :]:
            if not hasattr(args, "dvc_args"):
                raise GanstudyError("only `ganstudy study run` takes arguments after --")
            args.dvc_args = [*args.dvc_args, *argv[cut + 1 :]]
        args.func(args)

    run_stage(dispatch, argv)


if __name__ == "__main__":
    main()
