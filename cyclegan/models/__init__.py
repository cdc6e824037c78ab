"""CycleGAN / CUT networks: one module per network (``networks/``), the registry that names them,
weight init and reference-checkpoint loading.

Example::

    G = build_generator("resnet_9blocks", ngf=64)     # state dict identical to the reference's
    G = build_generator("resnet", antialias=True)     # the official CUT generator
    D = build_discriminator("basic")                   # 70x70 PatchGAN
    load_reference_weights(G, "latest_net_G_A.pth")    # official CycleGAN checkpoint
"""

from .layers import INIT_TYPES, count_parameters, get_norm_layer, init_weights
from .networks import (
    ImageGenerator,
    KerasDiscriminator,
    KerasUnetGenerator,
    NLayerDiscriminator,
    PixelDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    UnetSkipConnectionBlock,
)
from .options import NORM_TYPES
from .reference import load_reference_weights
from .registry import DISCRIMINATORS, GENERATORS, Network, build_discriminator, build_generator, network_spec

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "INIT_TYPES",
    "NORM_TYPES",
    "ImageGenerator",
    "KerasDiscriminator",
    "KerasUnetGenerator",
    "NLayerDiscriminator",
    "Network",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "build_discriminator",
    "build_generator",
    "count_parameters",
    "get_norm_layer",
    "init_weights",
    "load_reference_weights",
    "network_spec",
]
