"""ganstudy: reproducible GAN studies."""

from ganstudy._torchvision import ensure_torchvision_imports

ensure_torchvision_imports()  # before any module here (or pytorch_fid) imports torchvision
