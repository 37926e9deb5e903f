"""A CSV log whose rows carry different keys (train_log.csv, metrics.csv): one header for the whole file, every
value under its own column.

Each row fills its own columns and leaves the others empty. A row with a key the header lacks widens the header:
the file is rewritten once with the new columns added at the end and the earlier rows padded with empty cells
(atomically: a reader sees the old file or the new one, never half of one). A resumed run appends under the
header already in the file.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvtrain.files import atomic_write


class CsvLog:
    """Appends rows of any keys to the CSV file at `path` under one header (see the module doc)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._columns: list[str] | None = None  # the file's header, read on the first append

    def append(self, row: Mapping[str, Any]) -> None:
        if self._columns is None:
            self._columns = _header(self.path)
        new = [key for key in row if key not in self._columns]
        starting = not self._columns  # no file yet, or an empty one
        if new and not starting:
            self._widen(self._columns + new)
        self._columns += new
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns)
            if starting:
                writer.writeheader()
            writer.writerow(row)

    def _widen(self, columns: list[str]) -> None:
        """Rewrite the file under the header `columns`, every row so far padded to as many cells."""
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(columns)
        with self.path.open(newline="") as f:
            rows = csv.reader(f)
            next(rows, None)  # the old header
            # The new columns come last, so every cell keeps its place.
            writer.writerows(row + [""] * (len(columns) - len(row)) for row in rows)
        mode = stat.S_IMODE(self.path.stat().st_mode)
        with atomic_write(self.path) as f:
            os.fchmod(f.fileno(), mode)  # the temporary file is private (0600); keep the log's own mode
            f.write(text.getvalue().encode())


def _header(path: Path) -> list[str]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return next(csv.reader(f), [])
