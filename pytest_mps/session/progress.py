"""An audit's progress while its MPS are computed: images done, told as each finishes and on a
heartbeat in between."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

# progress(label, images done, images in all): called as each image's MPS is ready, and every
# HEARTBEAT_SECONDS while MPS are being computed.
HEARTBEAT_SECONDS = 1.0
Progress = Callable[[str, int, int], None]


class AuditProgress:
    """The images of one audit done so far, told to ``progress`` (if any) under ``label``."""

    def __init__(self, progress: Progress | None, label: str, total: int) -> None:
        self.progress = progress
        self.label = label
        self.total = total
        self.done = 0

    def add(self, newly: int) -> None:
        """``newly`` more images done (none: the count is told all the same)."""
        self.done += newly
        self.tell()

    def tell(self) -> None:
        if self.progress is not None:
            self.progress(self.label, self.done, self.total)


class Heartbeat:
    """Calls ``beat`` every `HEARTBEAT_SECONDS` from a thread while the block runs."""

    def __init__(self, beat: Callable[[], None]) -> None:
        self.beat = beat
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            self.beat()
