"""One module per network; each class declares its options as keyword arguments (``models/options.py``)
and is registered by name in ``models/registry.py``."""

from .antialias import BlurDownsample, BlurUpsample
from .base import ImageGenerator
from .patchgan import NLayerDiscriminator
from .patchgan_keras import KerasDiscriminator
from .pixel import PixelDiscriminator
from .resnet import ResizeConv, ResnetBlock, ResnetGenerator
from .unet import UnetGenerator, UnetSkipConnectionBlock
from .unet_keras import KerasUnetGenerator

__all__ = [
    "BlurDownsample", "BlurUpsample", "ImageGenerator", "KerasDiscriminator", "KerasUnetGenerator",
    "NLayerDiscriminator", "PixelDiscriminator", "ResizeConv", "ResnetBlock", "ResnetGenerator",
    "UnetGenerator", "UnetSkipConnectionBlock",
]
