"""Load weights saved by the official CycleGAN code (or our reference fixtures) into our networks.

Accepted: a path to a ``.pth``/``.pt`` file or an in-memory mapping holding either a plain state
dict (the reference's ``latest_net_G_A.pth`` etc.) or a ``{"state_dict": ..., ...}`` dict.
Files are read with ``torch.load(weights_only=True)``: nothing but tensors and plain
containers is ever unpickled. ``module.`` prefixes (DataParallel) are stripped, and the stale
InstanceNorm ``running_mean``/``running_var``/``num_batches_tracked`` entries that old PyTorch
versions wrote are dropped. Everything else must match the network exactly (keys and shapes);
otherwise a one-line ValueError names the source, the first offending key and the likely cause.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping

import torch
from torch import nn

from cyclegan.common.errors import MissingFileError
from cyclegan.common.serialization import safe_load

from .registry import DISCRIMINATORS, GENERATORS

_STALE_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
# Where such files come from, for the error that a missing one raises.
OFFICIAL_WEIGHTS = ("the official CycleGAN code (github.com/junyanz/pytorch-CycleGAN-and-pix2pix) writes "
                    "latest_net_G_A.pth and latest_net_G_B.pth into checkpoints/<name>/ as it trains, and its released "
                    "generators (horse2zebra, style_monet, ...) download with its scripts/download_cyclegan_model.sh "
                    "<name> from http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/<name>.pth")
_Shapes = dict[str, tuple[int, ...]]


def _read_state_dict(source: str | os.PathLike | Mapping) -> tuple[Mapping, str]:
    if isinstance(source, (str, os.PathLike)):
        label = os.fspath(source)
        if not os.path.isfile(label):
            raise MissingFileError(f"reference weights not found: {label}; {OFFICIAL_WEIGHTS}")
        obj = safe_load(label)  # weights_only=True; CheckpointError (a ValueError) names the file
    elif isinstance(source, Mapping):
        obj, label = source, "<state dict>"
    else:
        raise TypeError(f"source must be a path or a state dict, not {type(source).__name__}")
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{label}: expected a state dict (str -> tensor) or a dict with a 'state_dict' entry")
    return obj, label


def _clean(state: Mapping, net: nn.Module) -> dict[str, torch.Tensor]:
    """Strip ``module.`` prefixes and drop stale stats of InstanceNorm layers that track none."""
    modules = dict(net.named_modules())
    expected = net.state_dict().keys()
    cleaned = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        owner, _, leaf = key.rpartition(".")
        if (leaf in _STALE_NORM_STATS and key not in expected
                and isinstance(modules.get(owner), nn.modules.instancenorm._InstanceNorm)):
            continue
        cleaned[key] = value
    return cleaned


# --------------------------------------------------------------------------------------------
# diagnosis of mismatches
# --------------------------------------------------------------------------------------------
def _pattern(keys) -> set[str]:
    return {re.sub(r"\d+", "#", k) for k in keys}


@functools.lru_cache(maxsize=None)
def _default_keys(cls: type) -> frozenset[str]:
    with torch.device("meta"):  # shapes only: no memory, no init
        return frozenset(cls().state_dict())


def _family(keys) -> str:
    """The registered network whose default state-dict keys look most like ``keys`` ("resnet generator"):
    the key patterns (indices as #) first, the exact keys to break ties (a PatchGAN and the Keras one
    differ only in which convs carry a bias)."""
    keys = set(keys)

    def overlap(a: set, b: set) -> float:
        return len(a & b) / max(1, len(a | b))

    candidates = [(name, what, set(_default_keys(network.cls)))
                  for table, what in ((GENERATORS, "generator"), (DISCRIMINATORS, "discriminator"))
                  for name, network in table.items() if not network.fixed]
    if not keys or not candidates:
        return "unknown network"
    score, name, what = max(((overlap(_pattern(keys), _pattern(k)), overlap(keys, k)), name, what)
                            for name, what, k in candidates)
    return f"{name} {what}" if score[0] > 0 else "unknown network"


def _n_blocks(keys) -> int:
    return len({m.group(1) for k in keys if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})


def _unet_depth(keys) -> int:
    return max((k.count("model.") for k in keys), default=1) - 1


def _likely_cause(expected: _Shapes, given: _Shapes) -> str:
    fam_net, fam_ckpt = _family(expected), _family(given)
    if fam_net != fam_ckpt:
        return f"wrong network type: the weights look like a {fam_ckpt}, the network is a {fam_net}"
    if fam_net == "resnet generator" and _n_blocks(expected) != _n_blocks(given):
        return f"wrong n_blocks: the weights have {_n_blocks(given)} residual blocks, the network {_n_blocks(expected)}"
    if fam_net == "unet generator" and _unet_depth(expected) != _unet_depth(given):
        return f"wrong depth: the weights have unet depth {_unet_depth(given)}, the network {_unet_depth(expected)}"
    convs_net = [k for k, s in expected.items() if len(s) == 4]
    convs_ckpt = [k for k, s in given.items() if len(s) == 4]
    if len(convs_net) != len(convs_ckpt):
        return f"wrong n_layers: the weights have {len(convs_ckpt)} conv layers, the network {len(convs_net)}"
    stats_net = any(k.endswith("running_mean") for k in expected)
    stats_ckpt = any(k.endswith("running_mean") for k in given)
    if stats_net != stats_ckpt:
        return (f"wrong norm: the weights {'use' if stats_ckpt else 'do not use'} batch norm, "
                f"the network {'does' if stats_net else 'does not'}")
    if any(".conv_block.6." in k for k in given) != any(".conv_block.6." in k for k in expected):
        return "wrong dropout: it shifts the second conv of each residual block from index 5 to 6"
    if {k for k in expected if k.endswith(".bias")} != {k for k in given if k.endswith(".bias")}:
        return "wrong norm: the reference gives convs a bias only in instance-norm networks"
    first, last = convs_net[0], convs_net[-1]
    net_shape, ckpt_shape = expected[first], given.get(first, expected[first])
    if net_shape[0] != ckpt_shape[0]:
        return f"wrong ngf/ndf: the weights have {ckpt_shape[0]} first-layer filters, the network {net_shape[0]}"
    if net_shape[1] != ckpt_shape[1]:
        return f"wrong in_channels: the weights take {ckpt_shape[1]} input channels, the network {net_shape[1]}"
    wrong = {k for k in expected if k in given and expected[k] != given[k]}
    if wrong <= {last, last.removesuffix("weight") + "bias"}:
        return "wrong out_channels: only the last layer differs"
    return "wrong architecture options (ngf/ndf, n_blocks/depth/n_layers, norm, dropout or channels)"


def load_reference_weights(net: nn.Module, source: str | os.PathLike | Mapping) -> nn.Module:
    """Load reference-format weights from ``source`` into ``net`` (strictly) and return ``net``."""
    state, label = _read_state_dict(source)
    state = _clean(state, net)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong_shape = [k for k in expected if k in given and expected[k] != given[k]]
    if missing or unexpected or wrong_shape:
        def first(keys: list[str], what: str) -> str:
            return f"{what} {keys[0]!r}" + (f" (+{len(keys) - 1} more)" if len(keys) > 1 else "")

        problems = [first(keys, what) for keys, what in ((missing, "missing key"), (unexpected, "unexpected key"),
                                                         (wrong_shape, "shape mismatch at key")) if keys]
        if wrong_shape:
            k = wrong_shape[0]
            problems[-1] += f": weights {list(given[k])} vs network {list(expected[k])}"
        raise ValueError(f"{label}: cannot load into {type(net).__name__}: {'; '.join(problems)}; "
                         f"likely cause: {_likely_cause(expected, given)}")
    net.load_state_dict(state, strict=True)
    return net
