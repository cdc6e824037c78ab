"""DataLoader worker processes of the datamodule: their number, their signals, their seeding, and their end.

More workers than cores: :func:`warn_if_more_workers_than_cores` says so once per process, in one line that
names the key; torch's own warning, which every loader repeats twice (once when it is built, once when it
starts its workers), is left out (:class:`DataLoader`).

Workers ignore SIGINT and SIGTERM (see :func:`worker_init`), so the one thing that would end them at
interpreter exit, ``multiprocessing``'s SIGTERM to every daemonic child followed by an unbounded
``join``, cannot: a loader whose iterator outlived training (held by an exception's traceback, a
global, a reference cycle the collector has not reached) would make the process hang after its
last line instead of exiting. :func:`kill_leftover_workers_at_exit` escalates to SIGKILL first.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import multiprocessing.util  # registers multiprocessing's own exit hook before ours (atexit runs LIFO)
import os
import signal
import time

import torch.utils.data

log = logging.getLogger(__name__)
_reaper_registered = False
_worker_count_said = False


class DataLoader(torch.utils.data.DataLoader):
    """torch's DataLoader without its worker-count warning, which :func:`warn_if_more_workers_than_cores`
    replaces (torch says it twice per loader: when the loader is built and when it starts its workers)."""

    def check_worker_number_rationality(self) -> None:
        pass


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def warn_if_more_workers_than_cores(workers: int) -> None:
    """One warning per process when ``data.num_workers`` exceeds the cores: the workers then compete with
    training (and with each other) for them."""
    global _worker_count_said
    cores = available_cores()
    if workers > cores and not _worker_count_said:
        _worker_count_said = True
        log.warning("data.num_workers=%d but this machine has %d cores: the workers compete with training for "
                    "them; use at most %d (0 decodes in the training process, enough for small images)",
                    workers, cores, cores)


def worker_init(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT/SIGTERM, then get Lightning's seeding.

    A Ctrl-C, or a scheduler's SIGTERM sent to the whole process group, must not kill a worker
    mid-epoch: the main process finishes the batch, saves a checkpoint (cyclegan.training.shutdown.
    GracefulShutdown) and shuts its workers down itself. Setting this function replaces the
    worker_init_fn Lightning adds after seed_everything(workers=True), so it is called here.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        from lightning_fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)


def kill_leftover_workers_at_exit() -> None:
    """Once per process: at exit, before ``multiprocessing`` joins its children, end the daemonic ones
    (DataLoader workers are daemonic; multiprocessing would SIGTERM them itself) and SIGKILL those
    that ignore SIGTERM, as these workers do. Training and evaluation are over by then: a worker holds
    nothing to save, and the process must not wait on it forever."""
    global _reaper_registered
    if not _reaper_registered:
        atexit.register(_end_daemonic_children)
        _reaper_registered = True


def _end_daemonic_children(grace_s: float = 1.0) -> None:
    children = [c for c in multiprocessing.active_children() if c.daemon]
    if not children:
        return
    # torch's SIGCHLD handler would report each killed DataLoader worker as a crash (a traceback at exit)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace_s
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
