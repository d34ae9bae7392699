"""Make ``import torchvision`` work with the CPU build of torch.

PyPI has no CPU torchvision; its CUDA wheel's C++ ops cannot load against the CPU torch, and
torchvision then fails registering fake kernels for ``torchvision::nms``. When the ops library
does not load, defining the two op schemas first lets torchvision import; nms itself stays
unavailable, which no GAN code needs. Every module that imports torchvision or pytorch-fid (which
imports torchvision) calls ``ensure_torchvision_imports()`` before that import; calling it again
does nothing.
"""

import importlib.util
from pathlib import Path

import torch

_LIBS: list[torch.library.Library] = []  # op schemas live as long as their Library object
_DONE: list[bool] = []  # set once the ops are loaded or defined: later calls return at once


def ensure_torchvision_imports() -> None:
    if _DONE:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        _DONE.append(True)
        return
    ops_lib = next(Path(spec.submodule_search_locations[0]).glob("_C*.so"), None)
    if ops_lib is not None:
        try:
            torch.ops.load_library(str(ops_lib))  # what torchvision does; registers nms
            _DONE.append(True)
            return
        except OSError:  # e.g. libc10_cuda.so missing under the CPU torch
            pass
    lib = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBS.append(lib)
    _DONE.append(True)
