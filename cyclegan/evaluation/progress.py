"""Progress of the long evaluation passes as log lines: counts and rates, in a terminal and in a log file.

An evaluation on a CPU spends minutes in each pass (Inception features of real images, translation);
a tqdm bar would be lost in Hydra's log file and in cluster logs, so each pass logs
``<what>: 128/751 images (12.3 images/s)`` at most every :data:`EVERY_S` seconds, and one closing line
with the count, the time and the rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

EVERY_S = 10.0  # seconds between progress lines of one pass


class Progress:
    """Counts images through a pass and logs its progress (see the module doc)."""

    def __init__(self, what: str, total: int, logger: logging.Logger = log, every_s: float | None = None):
        self.what, self.total, self.logger = what, int(total), logger
        self.every_s = EVERY_S if every_s is None else every_s
        self.done = 0
        self.start = self.last = time.perf_counter()

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else float("inf")

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if self.done < self.total and now - self.last >= self.every_s:
            self.last = now
            self.logger.info("%s: %d/%d images (%.1f images/s)", self.what, self.done, self.total, self.rate())

    def finish(self, note: str = "") -> None:
        elapsed = time.perf_counter() - self.start
        self.logger.info("%s: %d images in %.1f s (%.1f images/s)%s", self.what, self.done, elapsed, self.rate(), note)

    def track(self, batches: Iterable[Any], count: Callable[[Any], int]) -> Iterator[Any]:
        """``batches`` as they come, counting ``count(batch)`` images after each one."""
        for batch in batches:
            yield batch
            self.update(count(batch))
