"""Where tensors run: the device a config names, the precision it trains in, and deterministic
kernels on it.

A service of the layers above (the loop, evaluate, the reference stage, the studies'
classifiers), so none of them imports another just to pick a device.
"""

import os

import torch

from ganstudy.errors import GanstudyError
from ganstudy.names import CUBLAS_WORKSPACE_ENV

# torch.cpu's checks for the instructions that make bf16 convolutions and matmuls fast on a CPU.
CPU_BF16_CHECKS = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GanstudyError(
            f"device {name!r} requested but CUDA is not available (use auto or cpu)"
        )
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto``: bf16 where ``device`` computes it natively (a CUDA GPU with bf16 units; a CPU
    with AVX512-BF16 or AMX, whose oneDNN kernels run bf16 faster than fp32), else fp32; ``fp32``
    and ``bf16`` as named. Elsewhere oneDNN emulates bf16, slower than fp32."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    if device.type != "cpu":
        return "fp32"
    native = [getattr(torch.cpu, f, None) for f in CPU_BF16_CHECKS]  # private: may move
    return "bf16" if any(check is not None and check() for check in native) else "fp32"


def make_deterministic(device: torch.device) -> None:
    """Same seed, same device, same numbers on CUDA too: deterministic cuDNN/cuBLAS kernels
    (ops without a deterministic kernel warn instead of failing)."""
    if device.type != "cuda":
        return
    os.environ.setdefault(CUBLAS_WORKSPACE_ENV, ":4096:8")  # read when cuBLAS starts
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
