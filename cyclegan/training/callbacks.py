"""Lightning callbacks: image grids and loss curves, written to the run directory and the loggers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytorch_lightning as pl

from cyclegan.common.loggers import log_image
from cyclegan.common.visualize import MIN_TILE, cycle_grid, plot_loss_curves, save_array


class ImageGridLogger(pl.Callback):
    """Every `every_n_steps` steps, and once at the end of training: per example, a row "A -> B" (real A,
    translated, reconstructed) and a row "B -> A", labelled, tiles of at least `min_tile` px
    (cyclegan.common.visualize.cycle_grid); a model family that declares a ``visual_layout`` (CUT: real and
    translated, and its identity row) gets its own rows and columns.

    Saved as `<output_dir>/images/step_XXXXXXX.png` and sent to W&B / TensorBoard. The grid at the end
    means a run shorter than `every_n_steps` still shows what it learned.
    """

    def __init__(self, output_dir: str, every_n_steps: int = 500, max_images: int = 4, min_tile: int = MIN_TILE):
        self.output_dir = Path(output_dir)
        self.every_n_steps = every_n_steps
        self.max_images = max_images
        self.min_tile = min_tile
        self.last_step: int | None = None  # the step of the newest grid
        self.last_path: Path | None = None  # its file (the closing summary names it)

    def _write(self, trainer, pl_module) -> None:
        visuals = getattr(pl_module, "last_visuals", None)
        if not visuals or not trainer.is_global_zero:
            return
        step = trainer.global_step
        layout = getattr(pl_module, "visual_layout", None)  # the model family's rows and columns
        grid = cycle_grid(visuals, self.max_images, self.min_tile, **(layout or {}))
        self.last_path = save_array(self.output_dir / "images" / f"step_{step:07d}.png", grid)
        log_image(trainer.loggers, "train/images", grid, step,
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
