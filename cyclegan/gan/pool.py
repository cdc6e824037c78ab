"""The image history buffer of Shrivastava et al. (2017), as CycleGAN uses it.

The discriminator is shown a mix of the newest fakes and fakes from earlier
steps, which damps oscillation between G and D. Per image of a batch: while the
pool holds fewer than `size` images, store the new one and return it; once full,
with probability 0.5 return a stored image and put the new one in its place,
otherwise return the new one. Batches larger than one are handled image by image,
exactly as the reference does, so the semantics do not depend on the batch size.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"model.pool_size must be >= 0 (0 disables the pool), got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape: per image, the new fake or one from the history."""
        if self.size == 0:
            return images
        images = images.detach()
        out = []
        # One random draw per image, on the CPU generator: the pool state then depends
        # only on the seed, not on the device the fakes live on.
        draws = torch.rand(images.size(0)).tolist()
        picks = torch.randint(0, max(self.size, 1), (images.size(0),)).tolist()
        for image, draw, pick in zip(images, draws, picks):
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif draw > 0.5:
                stored = self.images[pick].to(image.device)
                self.images[pick] = image.clone()
                out.append(stored)
            else:
                out.append(image)
        return torch.cat(out, 0)

    def __len__(self) -> int:
        return len(self.images)

    # Pools are part of the training state: saved in checkpoints so a resumed run
    # continues with the same history (see CycleGAN.on_save_checkpoint).
    def state_dict(self) -> dict:
        return {"size": self.size, "images": [img.cpu() for img in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = int(state["size"])
        self.images = list(state["images"])
