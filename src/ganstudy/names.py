"""The one home of every output name: files of a run folder and of the reference folder, the
path functions that place stage outputs (``dvc.yaml`` passes the same paths to the stages; a
stage falls back to these functions when a path is not given), MLflow run and metric names,
the environment variables ganstudy reads or sets, and the seed offsets that keep the random
streams of one seed apart.

Torch-free and import-free (the Prefect flow and the lowest layers import it): plain strings,
numbers and ``pathlib`` only. A value here is part of the on-disk and tracking contract: changing
one moves outputs or changes numbers.
"""

from pathlib import Path

# --- the project ---------------------------------------------------------------------------
PARAMS_FILE = "params.yaml"  # every value and path of a study (a stage's --params default)

# --- a run folder: models/<variant>/<seed>/ (train's output) ----------------------------------
CONFIG_FILE = "config.json"  # the run's resolved config (data digest, seed, variant)
CHECKPOINT_NAME = "checkpoint.pt"  # the latest checkpoint (one a folder; replaced atomically)
HISTORY_NAME = "history.csv"  # what the loop logged, one row per logged step
RUN_FILE = "run.json"  # links the run folder to its MLflow run
SAMPLES_NAME = "samples.png"  # the final sample grid
SAMPLES_DIR = "samples"  # every sample grid, ``step_<step>.png``
LOSS_PLOT_NAME = "loss.png"
PER_CLASS_FILE = "per_class.json"  # marks a per-class run folder: classes, names, subfolders
TIMING_FILE = "timing.json"  # the run's training time, machine and code (results pages)


def sample_grid_path(folder: str | Path, step: int) -> Path:
    """The sample grid the loop saved at ``step`` in a run (or class) folder."""
    return Path(folder) / SAMPLES_DIR / f"step_{step:06d}.png"


def class_folder(k: int) -> str:
    """The run folder of class ``k`` (an index of the manifest's classes), inside the run's."""
    return f"class_{k}"


# --- data folders (preprocess, augment) -----------------------------------------------------
MANIFEST_NAME = "manifest.json"  # counts per class and hashes, beside the split files

# --- the reference stage: data/reference/<dataset>/ and <dataset>.json -------------------------
CLASSIFIER_NAME = "classifier.pt"  # the domain classifier (FID feature space, IS)


def reference_metrics_path(reference_dir: str | Path, dataset: str) -> Path:
    """``<paths.reference>/<dataset>.json``: the real-data metrics beside the folder."""
    return Path(reference_dir) / f"{dataset}.json"


# --- evaluate and downstream: metrics/ -------------------------------------------------------
DOWNSTREAM_DIR = "downstream"  # the augmentation study's classifiers, under the metrics folder
MEMORISATION_ARTIFACT = "memorisation.png"  # the picture's name in the item's MLflow run
HEAD_VAL_METRIC = "Head/accuracy_val"  # a class head's validation accuracy, logged while training


def metrics_path(metrics_dir: str | Path, variant: str, seed: int) -> Path:
    """``<metrics>/<variant>/<seed>.json``: evaluate's output for one run (downstream's for one
    arm x seed under ``downstream_dir``)."""
    return Path(metrics_dir) / variant / f"{seed}.json"


def memorisation_path(out_path: str | Path) -> Path:
    """``metrics/<variant>/<seed>.json`` -> ``metrics/<variant>/<seed>_memorisation.png``."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}_memorisation.png")


def downstream_dir(metrics_dir: str | Path) -> Path:
    """``<metrics>/downstream``: one ``<arm>/<seed>.json`` per classifier arm x seed."""
    return Path(metrics_dir) / DOWNSTREAM_DIR


def sources_path(out_path: str | Path) -> Path:
    """``.../<arm>/<seed>.json`` -> ``.../<arm>/<seed>_sources.png`` (the arm's images)."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}_sources.png")


# --- MLflow run names ------------------------------------------------------------------------
def run_name(variant: str, seed: int) -> str:
    """An item's run: train, then evaluate, log into it."""
    return f"{variant}-seed{seed}"


def downstream_run_name(arm: str, seed: int) -> str:
    return f"downstream-{arm}-seed{seed}"


def study_run_name(study: str, size: str) -> str:
    """A study run at a size: its ``study.name`` and the folder under each ``paths`` entry."""
    return f"{study}-{size}"


# --- environment variables -------------------------------------------------------------------
DVC_STAGE_ENV = "DVC_STAGE"  # set by DVC for every stage command (dvc/stage/run.py)
DVC_ROOT_ENV = "DVC_ROOT"  # likewise: the repository root
PARENT_RUN_ENV = "GANSTUDY_PARENT_RUN_ID"  # the flow's parent run of this study execution
FLOW_RUN_ENV = "GANSTUDY_PREFECT_FLOW_RUN_ID"  # the Prefect flow run driving the stages
DATA_HOME_ENV = "GANSTUDY_DATA_HOME"  # downloads kept between runs (default ~/.cache/ganstudy)
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # wins over tracking.uri
THREADS_ENV = "OMP_NUM_THREADS"  # CPU threads of an item (numbers depend on it)
VISIBLE_GPUS_ENV = "CUDA_VISIBLE_DEVICES"  # the GPUs an item may use
CUBLAS_WORKSPACE_ENV = "CUBLAS_WORKSPACE_CONFIG"  # deterministic cuBLAS needs it set

# --- seed offsets: random streams of one seed kept apart (values fixed: they make the numbers) --
SAMPLE_GRID_SEED_OFFSET = 10_000  # the fixed noise of a run's sample grids (CPU-drawn)
EVAL_SEED_OFFSET = 20_000  # evaluate's samples: disjoint from training's draws
# The same value serves two streams that never meet (one in training, one in the downstream
# classifiers); two names, so either may change without the other.
LABELLED_SEED_OFFSET = 30_000  # which training images a semi-supervised run sees labelled
DOWNSTREAM_ORDER_SEED_OFFSET = 30_000  # the nested order of images added to a downstream arm
