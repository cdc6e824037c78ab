"""The page (Gradio Blocks): a "One photo" tab (upload or pick a sample, pick a painter, see both side
by side, download the full-size painting) and a "Batch" tab (several uploads -> a zip).

Every event goes through :func:`_guarded`: a user error (a file that is not an image, ...) becomes a
warning toast and the status box's text; anything else is logged with its traceback on the console
and shown as one line. The page never shows a stack trace.

Gradio (the ``[app]`` extra) is imported when the page is built, not with this module: the command
sets where Gradio writes first, and says in one line when Gradio is not installed.
"""

import html
import logging
from pathlib import Path
from typing import Callable, Sequence

from cyclegan.app.handlers import paint_batch, paint_upload
from cyclegan.app.painters import Painter
from cyclegan.common.errors import UserError, first_line, one_line
from cyclegan.common.imaging import walk_images

__all__ = ["build_page", "sample_photos", "SAMPLE_COUNT", "PAGE_CSS"]

log = logging.getLogger(__name__)

SAMPLE_COUNT = 6  # sample photos offered as examples
# Small photos (the 96 px samples) are shown filling their box rather than at their pixel size.
IMAGE_HEIGHT = 420
PAGE_CSS = ("#input-image .image-frame, #painting .image-frame {width: 100%; height: 100%;}\n"
            "#input-image img, #painting img {width: 100%; height: 100%; object-fit: contain;}")


# The bundled sample dataset's photos (cyclegan.data.sources.sample_dir() / "B"), found without importing
# the data package: it loads torch._dynamo and matplotlib (seconds, and files in ~/.cache) before the
# command has said where libraries may write.
SAMPLE_PHOTOS = Path(__file__).resolve().parents[1] / "data" / "sample" / "B"


def sample_photos(count: int = SAMPLE_COUNT) -> list[str]:
    """The first bundled sample photos (domain B of the sample dataset)."""
    folder = SAMPLE_PHOTOS
    return walk_images(folder)[:count] if folder.is_dir() else []


def _guarded(fn: Callable, n_outputs: int, warn: Callable[[str], object]) -> Callable:
    """``fn`` with its errors turned into a message: outputs cleared, the last one (the status) says why."""

    def run(*args):
        try:
            return fn(*args)
        except UserError as exc:
            message = one_line(exc)
        except Exception as exc:  # noqa: BLE001 - a bug or the machine (out of memory): one line in the page
            log.exception("request failed")
            message = f"painting failed: {type(exc).__name__}: {first_line(exc)} (details in the app's console)"
        warn(html.escape(message))
        return (*([None] * (n_outputs - 1)), f"error: {message}")

    run.__name__ = getattr(fn, "__name__", "run")
    return run


def build_page(painters: Sequence[Painter], workdir: Path, *, max_megapixels: float, tile: int | None,
               max_batch: int):
    """The page (a ``gradio.Blocks``), painting with ``painters`` and writing under ``workdir``."""
    import gradio as gr  # optional: the [app] extra

    def notify(notes: Sequence[str]) -> None:
        for note in notes:
            gr.Info(html.escape(note))

    by_name = {p.name: p for p in painters}
    names = list(by_name)

    def describe(name: str) -> str:
        painter = by_name.get(name)
        return html.escape(painter.spec.description) if painter and painter.spec.description else ""

    def paint_one(name: str, upload: str | None):
        if not upload:
            return None, None, None, "upload a photo (or pick a sample) to paint it"
        result = paint_upload(by_name[name], upload, workdir, max_megapixels=max_megapixels, tile=tile)
        notify(result.notes)
        return str(result.input_path), str(result.painting_path), str(result.painting_path), result.summary()

    def paint_many(name: str, uploads: list[str] | None):
        result = paint_batch(by_name[name], uploads or [], workdir, max_megapixels=max_megapixels, tile=tile,
                             max_files=max_batch)
        notify(result.notes + [f"left out: {s}" for s in result.skipped])
        return [str(p) for p in result.paintings], str(result.zip_path), result.summary()

    limits = (f"Any size and aspect; images over {max_megapixels:g} megapixels are downscaled to that. "
              "JPEG, PNG, WebP, BMP or TIFF; grayscale, transparent and CMYK images are painted as RGB.")
    with gr.Blocks(title="cyclegan: paint a photo", analytics_enabled=False) as page:
        gr.Markdown("## Paint a photo\nPick a painter, upload a photo (or click a sample), download the painting "
                    "at the photo's full size.")
        with gr.Row():
            painter = gr.Dropdown(names, value=names[0], label="Painter", elem_id="painter", scale=1)
            about = gr.Markdown(describe(names[0]), elem_id="painter-about")
        painter.change(describe, painter, about, queue=False)
        with gr.Tab("One photo", elem_id="tab-one"):
            with gr.Row():
                with gr.Column(scale=1, min_width=260):
                    upload = gr.File(label="Photo", elem_id="upload", file_count="single", height=130)
                    paint = gr.Button("Paint", variant="primary", elem_id="paint")
                    status = gr.Textbox(label="Status", elem_id="status", interactive=False, lines=3)
                    download = gr.File(label="Download the painting (full size, PNG)", elem_id="download",
                                       interactive=False, height=90)
                shown_in = gr.Image(label="Input", type="filepath", interactive=False, elem_id="input-image",
                                    scale=2, height=IMAGE_HEIGHT, buttons=["fullscreen"])
                shown_out = gr.Image(label="Painting", type="filepath", interactive=False, elem_id="painting",
                                     scale=2, height=IMAGE_HEIGHT, buttons=["fullscreen"])
            samples = sample_photos()
            if samples:
                picker = gr.Gallery(samples, label="Or click a sample photo", elem_id="samples", columns=len(samples),
                                    height=150, allow_preview=False, interactive=False, buttons=[])

                def pick(evt: gr.SelectData) -> str:
                    return samples[evt.index]

                picker.select(pick, None, upload, queue=False)  # the upload's change paints it
            gr.Markdown(limits, elem_id="limits")
            outputs = [shown_in, shown_out, download, status]
            run_one = _guarded(paint_one, len(outputs), gr.Warning)
            # an upload, a sample click and a new painter paint right away; the button paints again
            for trigger in (paint.click, upload.change, painter.change):
                trigger(run_one, [painter, upload], outputs, concurrency_id="paint", trigger_mode="always_last")
        with gr.Tab("Batch", elem_id="tab-batch"):
            uploads = gr.File(label=f"Photos (up to {max_batch})", file_count="multiple", elem_id="batch-upload")
            paint_all = gr.Button("Paint all", variant="primary", elem_id="paint-all")
            gallery = gr.Gallery(label="Paintings", elem_id="batch-gallery", columns=4, height="auto")
            with gr.Row():
                archive = gr.File(label="Download all (zip)", elem_id="batch-zip", interactive=False)
                batch_status = gr.Textbox(label="Status", elem_id="batch-status", interactive=False, lines=3)
            batch_outputs = [gallery, archive, batch_status]
            paint_all.click(_guarded(paint_many, len(batch_outputs), gr.Warning), [painter, uploads], batch_outputs,
                            concurrency_id="paint")
    return page
