"""``python -m cyclegan.app``: load the painters, then serve the page on localhost and print its address.

A painter that fails to load stops the start with one line and exit code 2, before anything is served.
Everything the app writes (uploads, paintings, zips, Gradio's cache) goes into one temporary folder,
removed when the app stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from cyclegan.app.handlers import DEFAULT_MAX_BATCH, DEFAULT_TILE
from cyclegan.app.painters import all_specs, load_painters
from cyclegan.app.ui import PAGE_CSS, build_page, sample_photos
from cyclegan.app.uploads import DEFAULT_MAX_MEGAPIXELS, REFUSED_MEGAPIXELS
from cyclegan.common.directions import direction_argument
from cyclegan.common.errors import UserError, first_line
from cyclegan.common.devices import resolve_device

__all__ = ["build_parser", "main"]

PROG = "python -m cyclegan.app"
MAX_UPLOAD = "50mb"  # Gradio refuses bigger uploads before they reach the app

_EPILOG = f"""\
examples:
  python -m cyclegan.app                                        # the bundled painters
  python -m cyclegan.app --ckpt monet2photo.ckpt:BA --ckpt vangogh2photo.ckpt:BA
  python -m cyclegan.app --chain monet2photo.ckpt:AB,vangogh2photo.ckpt:BA   # Monet -> photo -> Van Gogh
  python -m cyclegan.app --host 0.0.0.0 --port 8080             # reachable from other machines

Painters: every generator bundled with the package (pretrained:NAME), every --ckpt, and the chains
they make by name (X2Y then Y2Z: a painter into a domain followed by one out of it) or --chain.
Images over --max-megapixels are downscaled to it; over {REFUSED_MEGAPIXELS:g} megapixels or {MAX_UPLOAD}
they are refused. Needs the app extra: pip install -e ".[app]".
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Paint photos in the browser: a local web app.",
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", action="append", default=[], metavar="SPEC",
                   help="a painter: checkpoint[:AB|:BA], exported generator or pretrained:NAME (repeatable)")
    p.add_argument("--chain", action="append", default=[], metavar="SPEC,SPEC",
                   help="a chain of painters applied in order, comma-separated specs (repeatable)")
    p.add_argument("--direction", default="AB", type=direction_argument, metavar="{AB,BA}",
                   help="direction of --ckpt specs without :AB/:BA (default AB)")
    p.add_argument("--no-bundled", action="store_true", help="offer only the --ckpt / --chain painters")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, metavar="PX",
                   help=f"paint images larger than PX x PX in overlapping tiles (default {DEFAULT_TILE}; 0: never)")
    p.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS, metavar="MP",
                   help=f"downscale larger images to this size (default {DEFAULT_MAX_MEGAPIXELS:g})")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, metavar="N",
                   help=f"most photos the batch tab paints at once (default {DEFAULT_MAX_BATCH})")
    p.add_argument("--list", action="store_true", help="print the painters the page would offer and exit")
    return p


def _fail(msg: str) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace) -> str | None:
    if args.tile < 0 or args.max_batch < 1 or not 0 < args.max_megapixels <= REFUSED_MEGAPIXELS:
        return (f"--tile must be >= 0, --max-batch >= 1 and --max-megapixels in (0, {REFUSED_MEGAPIXELS:g}]")
    if args.port is not None and not 0 < args.port < 65536:
        return f"--port {args.port}: not a port number"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = _check(args)
    if problem:
        return _fail(problem)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's requests to its own server
    try:
        specs = all_specs(args.ckpt, args.chain, args.direction, bundled=not args.no_bundled)
        if not specs:
            return _fail("no painter: this installation bundles none, give one with --ckpt")
        if args.list:
            for spec in specs:
                print(f"{spec.name}  {spec.description}".rstrip())
            return 0
        painters = load_painters(specs, resolve_device(args.device, key="--device"))
    except (OSError, UserError) as exc:  # the file that failed is named in the message
        return _fail(first_line(exc))
    workdir = Path(tempfile.mkdtemp(prefix="cyclegan-app-"))
    try:
        return _serve(args, painters, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace, painters, workdir: Path) -> int:
    # Whatever the libraries write goes into our folder: Gradio's upload cache (read when Gradio is
    # imported), matplotlib's font cache (else in ~/.cache) and torch's temporary files (torch._dynamo
    # makes a cache folder in the temporary folder). Gradio phones nowhere.
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["MPLCONFIGDIR"] = str(workdir / "matplotlib")
    os.environ["TMPDIR"] = tempfile.tempdir = str(workdir)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        page = build_page(painters, workdir / "paintings", max_megapixels=args.max_megapixels,
                          tile=args.tile or None, max_batch=args.max_batch)
    except ImportError as exc:
        return _fail(f"the app needs Gradio ({first_line(exc)}): pip install -e \".[app]\"")
    samples = sorted({str(Path(p).parent) for p in sample_photos()})
    page.queue(default_concurrency_limit=1)
    try:
        _, url, _ = page.launch(server_name=args.host, server_port=args.port, prevent_thread_lock=True, quiet=True,
                                show_error=False, allowed_paths=[str(workdir), *samples], max_file_size=MAX_UPLOAD,
                                ssr_mode=False, footer_links=[], css=PAGE_CSS)
    except OSError as exc:  # the port is taken, the host is not this machine's
        return _fail(f"cannot serve on {args.host}:{args.port or 'auto'}: {first_line(exc)}; choose another --port")
    # SIGTERM (a service manager, a test) stops it like Ctrl-C, so the temporary folder is removed
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"cyclegan app: {url}  ({len(painters)} painter(s); files in {workdir}; Ctrl-C to stop)", flush=True)
    page.block_thread()
    return 0
