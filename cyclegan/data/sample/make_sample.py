"""One-off script that built this folder (kept for provenance; not imported by the package).

    python cyclegan/data/sample/make_sample.py /path/to/monet2photo

Takes 30 evenly spaced images (by sorted file name) of ``trainA`` (Monet) and ``trainB``
(photos), center-crops them square, resizes to 96x96 (Lanczos) and saves JPEG quality 90
as ``A/NNN_<original name>.jpg`` and ``B/...``.
"""

import sys
from pathlib import Path

from PIL import Image, ImageOps

N, SIZE, QUALITY = 30, 96, 90


def main(src: str, dst: str = str(Path(__file__).resolve().parent)) -> None:
    for sub, dom in (("trainA", "A"), ("trainB", "B")):
        files = sorted(p for p in (Path(src) / sub).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        pick = [files[round(i * (len(files) - 1) / (N - 1))] for i in range(N)]
        out = Path(dst) / dom
        out.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(pick):
            im = ImageOps.fit(Image.open(p).convert("RGB"), (SIZE, SIZE), Image.LANCZOS)
            im.save(out / f"{i:03d}_{p.stem}.jpg", quality=QUALITY, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
