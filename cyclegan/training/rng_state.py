"""The random state that decides the next step of training, as plain tensors and Python types.

Checkpoints are loaded with ``torch.load(weights_only=True)``, which refuses numpy arrays: every
state here is made of tensors, ints, floats, tuples and lists (see :mod:`cyclegan.training.resume`).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- global generators
def global_rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached_gauss)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        # a run resumed on fewer GPUs restores the ones it has
        for device, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, device)


# ----------------------------------------------------------------------------- dataset streams
def _albumentations_nodes(transform) -> list:
    """The transform and its children, depth first: each keeps its own generators (albumentations 2)."""
    nodes = [transform]
    for child in getattr(transform, "transforms", None) or []:
        nodes.extend(_albumentations_nodes(child))
    return nodes


def _seeded_nodes(transform) -> list:
    return [n for n in _albumentations_nodes(transform) if hasattr(n, "random_generator") and hasattr(n, "py_random")]


def dataset_rng_state(dataset) -> dict[str, Any] | None:
    """Random streams of a dataset drawing in the main process (UnpairedDataset), or None."""
    make_generator = getattr(dataset, "generator", None)
    if not callable(make_generator):
        return None
    generator = make_generator()  # created (and the transform seeded) on first use
    if not isinstance(generator, torch.Generator):
        return None
    transforms = [[node.random_generator.bit_generator.state, node.py_random.getstate()]
                  for node in _seeded_nodes(getattr(dataset, "transform", None))]
    return {"generator": generator.get_state(), "transforms": transforms}


def set_dataset_rng_state(dataset, state: dict[str, Any]) -> None:
    generator = dataset.generator()  # seeds everything the dataset's way first, then we overwrite
    generator.set_state(state["generator"])
    nodes = _seeded_nodes(getattr(dataset, "transform", None))
    if len(nodes) != len(state["transforms"]):
        log.warning("the training transforms changed since the checkpoint; their random streams restart")
        return
    for node, (numpy_state, python_state) in zip(nodes, state["transforms"]):
        node.random_generator.bit_generator.state = numpy_state
        version, internal, gauss_next = python_state
        node.py_random.setstate((version, tuple(internal), gauss_next))
