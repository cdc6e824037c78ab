"""A process whose DataLoader workers outlive their loader still exits (workers ignore SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One worker started, its iterator kept alive past the end of the script (as a traceback or a
# reference cycle would keep it): multiprocessing's exit hook then joins a worker that ignores SIGTERM.
SCRIPT = textwrap.dedent("""
    import sys
    from cyclegan.data import UnpairedDataModule
    dm = UnpairedDataModule(name="f", source="folders", dir_a=sys.argv[1], dir_b=sys.argv[2], image_size=8,
                            load_size=8, batch_size=1, num_workers=1, pin_memory=False,
                            persistent_workers={persistent}, val_size=0)
    dm.setup("fit")
    LEFT_OVER = iter(dm.train_dataloader())
    next(LEFT_OVER)
    print("one batch read", flush=True)
""")


def test_a_process_with_a_loader_left_running_still_exits(tmp_path):
    for domain in ("A", "B"):
        (tmp_path / domain).mkdir()
        for i in range(4):
            Image.new("RGB", (8, 8), (40 * i, 90, 200)).save(tmp_path / domain / f"{i}.png")
    for persistent in (False, True):
        child = subprocess.Popen([sys.executable, "-c", SCRIPT.format(persistent=persistent),
                                  str(tmp_path / "A"), str(tmp_path / "B")], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            out, _ = child.communicate(timeout=120)  # seconds when it exits; forever when it hangs
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise AssertionError(f"persistent_workers={persistent}: the process hung at exit") from None
        assert child.returncode == 0 and "one batch read" in out and "Traceback" not in out, out[-2000:]
