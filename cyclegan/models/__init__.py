"""CycleGAN networks: generators, discriminators, weight init and reference-checkpoint loading.

Example::

    G = build_generator("resnet_9blocks", ngf=64)     # state dict identical to the reference's
    D = build_discriminator("basic")                   # 70x70 PatchGAN
    load_reference_weights(G, "latest_net_G_A.pth")    # official CycleGAN checkpoint
"""

from .discriminators import (
    DISCRIMINATOR_NAMES,
    KerasDiscriminator,
    NLayerDiscriminator,
    PixelDiscriminator,
    build_discriminator,
)
from .generators import (
    GENERATOR_NAMES,
    ImageGenerator,
    KerasUnetGenerator,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    UnetSkipConnectionBlock,
    build_generator,
)
from .layers import INIT_TYPES, NORM_TYPES, count_parameters, get_norm_layer, init_weights
from .reference import load_reference_weights

__all__ = [
    "DISCRIMINATOR_NAMES",
    "GENERATOR_NAMES",
    "INIT_TYPES",
    "NORM_TYPES",
    "ImageGenerator",
    "KerasDiscriminator",
    "KerasUnetGenerator",
    "NLayerDiscriminator",
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
]
