"""Paint a photo in the browser: a local web app (Gradio) over the bundled painters and your checkpoints.

``python -m cyclegan.app`` (needs ``pip install -e ".[app]"``) serves it on 127.0.0.1 and prints the address.
The parts: :mod:`~cyclegan.app.painters` (which painters and chains the page offers, loading them),
:mod:`~cyclegan.app.uploads` (an uploaded file -> the RGB image painted, size limit, messages),
:mod:`~cyclegan.app.handlers` (paint one upload / a batch into a zip, through ``cyclegan.translate``'s
code), :mod:`~cyclegan.app.ui` (the page) and :mod:`~cyclegan.app.cli` (the command). Only ``ui`` imports
Gradio.
"""
