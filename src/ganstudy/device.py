"""Where tensors run: the device a config names, and deterministic kernels on it.

A service of the layers above (the loop, evaluate, the reference stage, the studies'
classifiers), so none of them imports another just to pick a device.
"""

import os

import torch

from ganstudy.errors import GanstudyError
from ganstudy.names import CUBLAS_WORKSPACE_ENV


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GanstudyError(
            f"device {name!r} requested but CUDA is not available (use auto or cpu)"
        )
    return torch.device(name)


def make_deterministic(device: torch.device) -> None:
    """Same seed, same device, same numbers on CUDA too: deterministic cuDNN/cuBLAS kernels
    (ops without a deterministic kernel warn instead of failing)."""
    if device.type != "cuda":
        return
    os.environ.setdefault(CUBLAS_WORKSPACE_ENV, ":4096:8")  # read when cuBLAS starts
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
