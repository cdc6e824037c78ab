"""Lightning callbacks: image grids and loss curves, written to the run directory and the loggers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytorch_lightning as pl
import torch

from cyclegan.loggers import log_image
from cyclegan.visualize import image_grid, plot_loss_curves, save_image_grid


CYCLE_ROWS = (("real_A", "fake_B", "rec_A"), ("real_B", "fake_A", "rec_B"))


def cycle_rows(visuals: dict, max_images: int, layout=CYCLE_ROWS) -> list:
    """Per example one row per entry of ``layout`` (the model family's ``visual_rows``; CycleGAN's:
    [real A, fake B, rec A] and [real B, fake A, rec B])."""
    rows = []
    for i in range(min(max_images, visuals[layout[0][0]].size(0))):
        rows.extend(torch.stack([visuals[name][i] for name in names]) for names in layout)
    return rows


class ImageGridLogger(pl.Callback):
    """Every `every_n_steps` steps, and once at the end of training: per example, rows
    [real A, fake B, rec A] and [real B, fake A, rec B].

    Saved as `<output_dir>/images/step_XXXXXXX.png` and sent to W&B / TensorBoard. The grid at the end
    means a run shorter than `every_n_steps` still shows what it learned.
    """

    def __init__(self, output_dir: str, every_n_steps: int = 500, max_images: int = 4):
        self.output_dir = Path(output_dir)
        self.every_n_steps = every_n_steps
        self.max_images = max_images
        self.last_step: int | None = None  # the step of the newest grid

    def _write(self, trainer, pl_module) -> None:
        visuals = getattr(pl_module, "last_visuals", None)
        if not visuals or not trainer.is_global_zero:
            return
        step = trainer.global_step
        rows = cycle_rows(visuals, self.max_images, getattr(pl_module, "visual_rows", None) or CYCLE_ROWS)
        save_image_grid(self.output_dir / "images" / f"step_{step:07d}.png", rows)
        log_image(trainer.loggers, "train/images", image_grid(rows), step,
                  caption=getattr(pl_module, "visual_caption", "") or
                  "columns: real, translated, reconstructed; rows alternate A -> B and B -> A")
        self.last_step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            self._write(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.every_n_steps > 0 and self.last_step != trainer.global_step:
            self._write(trainer, pl_module)


class LossCurvePlot(pl.Callback):
    """Keeps the per-step losses and draws `<output_dir>/loss_curves.png` at the end of fit (and each epoch).

    The losses of the last step are added at the end of training when the interval skipped them, so a
    run shorter than `every_n_steps` still gets its plot.
    """

    def __init__(self, output_dir: str, every_n_steps: int = 10):
        self.output_dir = Path(output_dir)
        self.every_n_steps = max(1, every_n_steps)
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def _record(self, trainer) -> None:
        step = trainer.global_step
        for key, value in trainer.callback_metrics.items():
            if key.startswith("train/") and key.endswith("_step") and "lr" not in key:
                points = self.history[key[len("train/") : -len("_step")]]
                if not points or points[-1][0] != step:
                    points.append((step, float(value)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0 and trainer.is_global_zero:
            self._record(trainer)

    def _plot(self, trainer) -> None:
        if trainer.is_global_zero and self.history:
            plot_loss_curves(self.history, self.output_dir / "loss_curves.png")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._plot(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self._record(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._plot(trainer)

    def state_dict(self) -> dict:
        return {"history": dict(self.history)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = defaultdict(list, {k: list(v) for k, v in state_dict.get("history", {}).items()})
