"""Generators: ResNet and U-Net (reference-compatible) and the Keras-tutorial U-Net.

``ResnetGenerator`` and ``UnetGenerator`` reproduce the official CycleGAN code's module layout
exactly (attribute names and ``nn.Sequential`` indices), so their state dicts load reference
checkpoints unchanged. All generators map images in [-1, 1] to images in [-1, 1] (tanh).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import INIT_TYPES, NORM_TYPES, check_choice, check_int, conv_bias, get_norm_layer, init_weights

UPSAMPLE_MODES = ("deconv", "resize")
# |x| is clamped to this before atanh in residual_output generators (atanh(1 - 1e-3) = 3.8)
RESIDUAL_CLAMP = 1 - 1e-3
GENERATOR_NAMES = ("resnet", "unet", "resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "unet_keras")
_ALIASES = {
    "resnet_9blocks": ("resnet", "n_blocks", 9),
    "resnet_6blocks": ("resnet", "n_blocks", 6),
    "unet_256": ("unet", "depth", 8),
    "unet_128": ("unet", "depth", 7),
}


def _nearest_sizes(n: int, multiple: int, minimum: int) -> str:
    if n < minimum:
        return str(minimum)
    lower = n // multiple * multiple
    return f"{lower} or {lower + multiple}"


class ImageGenerator(nn.Module):
    """Base class: holds ``size_multiple`` / ``min_size`` and validates input sizes cheaply.

    The check reads two ints from the input's shape, so it costs nothing measurable and, under
    ``torch.compile``, becomes a shape guard rather than a graph break.
    """

    size_multiple: int = 1
    min_size: int = 1

    def check_input_size(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2], x.shape[-1]
        m, lo = self.size_multiple, self.min_size
        if h % m or w % m or h < lo or w < lo:
            bad = [f"{name} {n} -> {_nearest_sizes(n, m, lo)}" for name, n in (("height", h), ("width", w))
                   if n % m or n < lo]
            raise ValueError(
                f"{type(self).__name__}: input size {h}x{w} is not supported; height and width must be "
                f"multiples of {m} and at least {lo} (nearest valid: {'; '.join(bad)})"
            )


# --------------------------------------------------------------------------------------------
# ResNet generator
# --------------------------------------------------------------------------------------------
class ResnetBlock(nn.Module):
    """Residual block ``x + conv_block(x)``: two 3x3 convs with reflection padding and norm.

    The optional dropout sits between the convs, which shifts the second conv's index from 5
    to 6, exactly as in the reference.
    """

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(dim), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(ImageGenerator):
    """Johnson et al.'s transformation network, as used by CycleGAN (Zhu et al., 2017).

    c7s1-ngf, two stride-2 3x3 downsamplings (ngf*2, ngf*4), ``n_blocks`` residual blocks at
    ngf*4, two stride-2 transposed-conv upsamplings, c7s1-out with tanh. Reflection padding
    around the 7x7 convs and inside the blocks. The paper uses 9 blocks at 256x256 and 6 at
    128x128. Inputs must be multiples of 4 (two downsamplings) and at least 8 pixels.
    """

    size_multiple = 4
    min_size = 8

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "instance",
                 dropout: bool = False, n_blocks: int = 9, upsample: str = "deconv",
                 residual_output: bool = False) -> None:
        super().__init__()
        check_choice("upsample", upsample, UPSAMPLE_MODES)
        if residual_output and in_channels != out_channels:
            raise ValueError(f"residual_output needs in_channels == out_channels (got {in_channels} and {out_channels})")
        self.residual_output = bool(residual_output)
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   norm_layer(ngf), nn.ReLU()]
        for i in range(2):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_layer(2 * c), nn.ReLU()]
        layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            up = (nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)
                  if upsample == "deconv" else ResizeConv(c, c // 2, bias))
            layers += [up, norm_layer(c // 2), nn.ReLU()]
        # residual_output: the last conv predicts a change in tanh's argument (no tanh inside the Sequential,
        # so the state-dict keys stay the reference's: Tanh has no parameters)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7),
                   nn.Identity() if residual_output else nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def zero_init_output(self) -> None:
        """Zero the last conv: with ``residual_output`` the generator then starts as the identity."""
        last = self.model[-2]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        if not self.residual_output:
            return self.model(x)
        # tanh(atanh(x) + r): exactly x while r = 0, always inside (-1, 1), smooth everywhere (a clamp of
        # x + r would stop the gradient of saturated pixels). The clamp keeps atanh finite at +-1.
        base = torch.atanh(x.float().clamp(-RESIDUAL_CLAMP, RESIDUAL_CLAMP))
        return torch.tanh(base + self.model(x).float()).to(x.dtype)


class ResizeConv(nn.Module):
    """2x nearest-neighbour upsampling then a 3x3 convolution (Odena et al. 2016, "Deconvolution and
    Checkerboard Artifacts"): every output pixel gets the same number of kernel taps, so unlike a stride-2
    transposed convolution it cannot paint a checkerboard."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(self.up(x)))


# --------------------------------------------------------------------------------------------
# U-Net generator
# --------------------------------------------------------------------------------------------
class UnetSkipConnectionBlock(nn.Module):
    """One level of the recursive pix2pix U-Net: down-conv, inner submodule, up-conv, skip.

    Outermost level: no activation/norm before its down-conv, up path ends in tanh, no skip.
    Innermost level: no norm after its down-conv, no submodule. Others: LeakyReLU(0.2), conv,
    norm, submodule, ReLU, transposed conv, norm (+ dropout). Non-outermost levels return
    ``cat([x, block(x)])``. (The reference's in-place LeakyReLU also rewrites the skip tensor,
    but the parent's ReLU comes first, and ReLU(LeakyReLU(x)) == ReLU(x), so no op here is
    in-place and the results are identical.)
    """

    def __init__(self, outer_nc: int, inner_nc: int, *, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        down = nn.Conv2d(outer_nc if input_nc is None else input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(2 * inner_nc, outer_nc, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(), up, norm_layer(outer_nc)]
        else:
            up = nn.ConvTranspose2d(2 * inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down, norm_layer(inner_nc), submodule, nn.ReLU(), up, norm_layer(outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(ImageGenerator):
    """pix2pix U-Net (Isola et al., 2017) with ``depth`` stride-2 downsamplings.

    Level ``i`` (0 = outermost) has ``ngf * min(2**i, 8)`` inner channels; the levels between
    the 4th and the innermost may use dropout. ``depth=8`` is the reference ``unet_256``,
    ``depth=7`` ``unet_128`` (the reference needs depth >= 5; smaller depths are an extension).
    Inputs must be multiples of ``2**depth``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "instance",
                 dropout: bool = False, depth: int = 8) -> None:
        super().__init__()
        self.size_multiple = self.min_size = 2**depth

        def width(level: int) -> int:
            return ngf * min(2**level, 8)

        block = None
        for level in reversed(range(depth)):
            block = UnetSkipConnectionBlock(
                width(level - 1) if level else out_channels, width(level),
                input_nc=in_channels if level == 0 else None, submodule=block,
                outermost=level == 0, innermost=level == depth - 1, norm=norm,
                dropout=dropout and 4 <= level < depth - 1,
            )
        self.model = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        return self.model(x)


class KerasUnetGenerator(ImageGenerator):
    """U-Net generator of the Kaggle/Keras CycleGAN tutorial (A. Jang, "Monet CycleGAN").

    Down: 8 x (Conv k4 s2 'same', no bias, norm, LeakyReLU) with ngf*[1,2,4,8,8,8,8,8]
    filters (no norm on the first). Up: 7 x (ConvTranspose k4 s2, no bias, norm, dropout 0.5 on
    the first three, ReLU) with ngf*[8,8,8,8,4,2,1] filters, each concatenated with the mirrored
    down output; then ConvTranspose k4 s2 to ``out_channels`` and tanh. Differences from the
    notebook: LeakyReLU keeps Keras' default slope 0.3, norm comes from ``norm`` (instance norm
    is non-affine), and the innermost (1x1 at 256px) down layer has no norm -- instance-norming
    a 1x1 map zeroes it (Keras) or fails (PyTorch). The dropout is part of the architecture.
    Inputs must be multiples of 256.
    """

    size_multiple = min_size = 256
    negative_slope = 0.3  # keras.layers.LeakyReLU default

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "instance") -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        down_widths = [ngf * k for k in (1, 2, 4, 8, 8, 8, 8, 8)]
        up_widths = [ngf * k for k in (8, 8, 8, 8, 4, 2, 1)]
        self.down = nn.ModuleList()
        prev = in_channels
        for i, c in enumerate(down_widths):
            use_norm = 0 < i < len(down_widths) - 1
            self.down.append(nn.Sequential(nn.Conv2d(prev, c, 4, stride=2, padding=1, bias=False),
                                           norm_layer(c) if use_norm else nn.Identity(),
                                           nn.LeakyReLU(self.negative_slope)))
            prev = c
        self.up = nn.ModuleList()
        for i, c in enumerate(up_widths):
            self.up.append(nn.Sequential(nn.ConvTranspose2d(prev, c, 4, stride=2, padding=1, bias=False),
                                         norm_layer(c), nn.Dropout(0.5) if i < 3 else nn.Identity(), nn.ReLU()))
            prev = c + down_widths[-2 - i]
        self.last = nn.Sequential(nn.ConvTranspose2d(prev, out_channels, 4, stride=2, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        for up, skip in zip(self.up, reversed(skips[:-1])):
            x = torch.cat([up(x), skip], 1)
        return self.last(x)


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------
def build_generator(name: str, *, in_channels: int = 3, out_channels: int = 3, ngf: int = 64,
                    norm: str = "instance", dropout: bool = False, n_blocks: int = 9, depth: int = 8,
                    init_type: str = "normal", init_gain: float = 0.02, upsample: str = "deconv",
                    residual_output: bool = False) -> ImageGenerator:
    """Build and initialize a generator by name (see ``GENERATOR_NAMES``).

    ``n_blocks`` applies to ResNet, ``depth`` (number of downsamplings) to U-Net; other
    arguments that do not apply to the chosen network are ignored. Aliases fix ``n_blocks`` /
    ``depth``; passing a different non-default value alongside an alias is an error.
    ``upsample="resize"`` (nearest upsampling + conv instead of transposed convs) and
    ``residual_output=True`` (output = tanh(atanh(x) + r) with the last conv zeroed, so the generator
    starts as the identity) are ResNet options; the defaults build the reference's network.
    """
    check_choice("generator", name, GENERATOR_NAMES)
    check_int("in_channels", in_channels, 1)
    check_int("out_channels", out_channels, 1)
    check_int("ngf", ngf, 1)
    check_choice("norm", norm, NORM_TYPES)
    check_choice("init_type", init_type, INIT_TYPES)
    kind = name
    if name in _ALIASES:
        kind, arg, fixed = _ALIASES[name]
        given, default = (n_blocks, 9) if arg == "n_blocks" else (depth, 8)
        if given not in (fixed, default):
            raise ValueError(f"generator {name!r} fixes {arg}={fixed}, but {arg}={given} was given; "
                             f"use {kind!r} to choose {arg} freely")
        n_blocks, depth = (fixed, depth) if arg == "n_blocks" else (n_blocks, fixed)
    check_choice("upsample", upsample, UPSAMPLE_MODES)
    if kind != "resnet" and (upsample != "deconv" or residual_output):
        raise ValueError(f"upsample={upsample!r} / residual_output={bool(residual_output)} are options of the "
                         f"resnet generator, not of {name!r}; leave them at deconv / false")
    if kind == "resnet":
        net = ResnetGenerator(in_channels, out_channels, ngf, norm, bool(dropout), check_int("n_blocks", n_blocks, 0),
                              upsample=upsample, residual_output=bool(residual_output))
    elif kind == "unet":
        net = UnetGenerator(in_channels, out_channels, ngf, norm, bool(dropout), check_int("depth", depth, 2))
    else:
        net = KerasUnetGenerator(in_channels, out_channels, ngf, norm)
    # How it was built: cyclegan.inference.export writes it next to the weights, so an exported file rebuilds itself.
    spec = dict(in_channels=in_channels, out_channels=out_channels, ngf=ngf, norm=norm, dropout=bool(dropout),
                n_blocks=n_blocks, depth=depth)
    if kind == "resnet" and (upsample != "deconv" or residual_output):  # only when set: older readers keep working
        spec.update(upsample=upsample, residual_output=bool(residual_output))
    net._cyclegan_spec = (name, spec)
    init_weights(net, init_type, init_gain)
    if residual_output:
        net.zero_init_output()
    return net
