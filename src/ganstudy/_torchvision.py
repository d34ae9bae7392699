"""Make ``import torchvision`` work with the CPU build of torch.

PyPI has no CPU torchvision; its CUDA wheel cannot load its C++ ops against CPU torch, then fails
registering fake kernels for ``torchvision::nms``. Defining the two op schemas first lets it import;
nms itself stays unavailable, which no GAN code needs. Import this module before torchvision
(and before pytorch_fid, which imports torchvision).
"""

import torch


def _define_missing_ops() -> None:
    try:
        torch.ops.torchvision.nms  # noqa: B018 (present when torchvision's _C loads)
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TID251
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBS.append(lib)  # the schemas live as long as the Library object


_LIBS: list = []
if not torch.cuda.is_available() or torch.version.cuda is None:
    _define_missing_ops()

import torchvision  # noqa: E402,F401
