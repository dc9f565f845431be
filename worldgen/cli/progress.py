"""Render ``ProgressEvent``s as tqdm bars on stderr, one bar per stage; ``--quiet``, or a stderr that is
not a terminal, renders nothing."""

from __future__ import annotations

import sys
from typing import Optional

from ..progress import ProgressCallback, ProgressEvent


class BarRenderer:
    def __init__(self) -> None:
        self._bars: dict[str, object] = {}

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        bar = self._bars.get(event.stage)
        if bar is None or bar.total != event.total:
            if bar is not None:
                bar.close()
            bar = tqdm(total=event.total, desc=event.stage, file=sys.stderr, leave=False, dynamic_ncols=True)
            self._bars[event.stage] = bar
        bar.n = event.done
        if event.detail:
            bar.set_postfix_str(event.detail, refresh=False)
        bar.refresh()
        if event.done >= event.total:
            bar.close()
            del self._bars[event.stage]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def progress_for(quiet: bool) -> Optional[ProgressCallback]:
    """Bars only for a person at a terminal: never into a pipe or a log file (their carriage returns
    and escape codes garble both), never under --quiet."""
    return None if quiet or not sys.stderr.isatty() else BarRenderer()
