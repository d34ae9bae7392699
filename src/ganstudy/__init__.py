"""ganstudy: reproducible GAN studies.

The package root imports nothing (no torch): the Prefect flow imports ``ganstudy.names`` and
``ganstudy.tracking`` without loading PyTorch. Modules that import torchvision or pytorch-fid call
``ganstudy._torchvision.ensure_torchvision_imports()`` first.
"""
