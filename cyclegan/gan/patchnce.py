"""PatchNCE, CUT's replacement for the cycle loss (Park, Efros, Zhang, Zhu, ECCV 2020).

A patch of the translation G(x) should be more like the patch of x at the same place than like
any other patch of x. Both images go through G's own encoder; at each of the ``nce_layers`` the
same random positions are taken from the query (G(x)'s features) and the key (x's features), each
patch's feature vector goes through a small MLP (one per layer, :class:`PatchSampleF`) and is
L2-normalised. For every query patch the logits are

    [q . k+ , q . k-_1, ..., q . k-_P] / temperature

with k+ the key at the same position and the negatives k- the keys at the other positions *of the
same image* (the diagonal of the query x key matrix, the positive itself, is masked to -10), and the
loss is the cross-entropy to the positive. The key side is detached: only the query trains G and F.

Exact to the official code (models/patchnce.py and PatchSampleF in models/networks.py of
taesungp/contrastive-unpaired-translation); tests/gan/test_cut_fixture.py replays its recorded step.
Where this code differs on purpose (fp32 under autocast, the real batch size instead of the option)
docs/ARCHITECTURE.md says why.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.models.layers import init_weights

# The official Normalize divides by (norm + 1e-7): a zero vector stays zero instead of dividing by 0.
L2_EPS = 1e-7
# The official mask value of the diagonal (the positive itself among the negatives): exp(-10 / T) ~ 0.
DIAGONAL_LOGIT = -10.0


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Each row divided by its L2 norm + 1e-7 (the official ``Normalize(2)``; not ``F.normalize``,
    which clamps the norm instead and differs in the last bits).

    One change: the squared norm is clamped to >= 1e-24 before the square root. The official code's
    gradient is NaN for an all-zero row (d sqrt(s)/ds is infinite at 0), which happens when an NCE layer
    is a ReLU output (e.g. ``nce_layers`` reaching the decoder of a generator with few blocks); with the
    clamp no gradient flows through that row's norm (the row's gradient is that of x / 1e-7, finite),
    and every other value, forward and backward, is unchanged.
    """
    x = x.float()  # under autocast the MLP's output may be bf16: the norm is taken in fp32
    return x / (x.pow(2).sum(1, keepdim=True).clamp_min(1e-24).pow(0.5) + L2_EPS)


class PatchSampleF(nn.Module):
    """The official ``netF=mlp_sample``: samples patches of each encoder feature map and projects them.

    One MLP ``Linear(C_l, nc) -> ReLU -> Linear(nc, nc)`` per NCE layer (``mlp_0``, ``mlp_1``, ...: the
    official state-dict keys), where ``C_l`` is the encoder's width at that layer. The official code
    creates the MLPs on the first forward pass; here they are created at construction from the widths
    (:func:`encoder_widths`), so the module has all its parameters from step 0 (checkpoints, DDP, resume).
    Initialised like the official ``init_net`` (xavier-normal, gain 0.02, zero biases, by default).
    """

    def __init__(self, widths: Sequence[int], nc: int = 256, init_type: str = "xavier", init_gain: float = 0.02):
        super().__init__()
        self.widths = [int(c) for c in widths]
        self.nc = int(nc)
        for i, c in enumerate(self.widths):
            setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(c, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc)))
        init_weights(self, init_type, init_gain)

    def mlp(self, layer: int) -> nn.Module:
        return getattr(self, f"mlp_{layer}")

    def draw_patch_ids(self, feats: Sequence[torch.Tensor], num_patches: int) -> list[torch.Tensor]:
        """Random positions per layer: ``num_patches`` distinct ones (all of them when the map is smaller).

        The same positions serve every image of the batch (as in the official code)."""
        ids = []
        for feat in feats:
            positions = feat.shape[2] * feat.shape[3]
            ids.append(torch.randperm(positions, device=feat.device)[: min(num_patches, positions)])
        return ids

    def forward(self, feats: Sequence[torch.Tensor], num_patches: int,
                patch_ids: Sequence[torch.Tensor] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(samples, patch_ids)``: per layer an L2-normalised ``[B * P, nc]`` tensor (image-major: the P
        patches of image 0 first) and the positions used (drawn when ``patch_ids`` is None)."""
        if len(feats) != len(self.widths):
            raise ValueError(f"PatchSampleF has {len(self.widths)} MLPs (one per NCE layer) but got "
                             f"{len(feats)} feature maps")
        if patch_ids is None:
            patch_ids = self.draw_patch_ids(feats, num_patches)
        samples = []
        for layer, (feat, ids) in enumerate(zip(feats, patch_ids)):
            # [B, C, H, W] -> [B, H*W, C] -> the chosen positions -> [B * P, C]
            rows = feat.permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :].flatten(0, 1)
            samples.append(l2_normalize(self.mlp(layer)(rows)))
        return samples, list(patch_ids)


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, batch_size: int, temperature: float = 0.07,
                   negatives_from_minibatch: bool = False) -> torch.Tensor:
    """Per-patch InfoNCE losses ``[B * P]`` for one layer (the official ``PatchNCELoss``; mean it yourself).

    ``query`` and ``key``: ``[B * P, d]`` L2-normalised samples at the same positions. The key is
    detached. Negatives come from the same image (``negatives_from_minibatch=False``, CUT's and FastCUT's
    choice) or from every image of the batch (the official option for single-image translation).
    """
    key = key.detach()
    n, dim = query.shape
    with torch.autocast(query.device.type, enabled=False):  # logits / 0.07 need fp32, not bf16
        query, key = query.float(), key.float()
        positive = torch.bmm(query.view(n, 1, dim), key.view(n, dim, 1)).view(n, 1)
        groups = 1 if negatives_from_minibatch else batch_size
        q, k = query.view(groups, -1, dim), key.view(groups, -1, dim)
        patches = q.size(1)
        negatives = torch.bmm(q, k.transpose(2, 1))
        diagonal = torch.eye(patches, device=query.device, dtype=torch.bool)[None]
        negatives = negatives.masked_fill(diagonal, DIAGONAL_LOGIT).view(-1, patches)
        logits = torch.cat((positive, negatives), dim=1) / temperature
        target = torch.zeros(n, dtype=torch.long, device=query.device)
        return F.cross_entropy(logits, target, reduction="none")
