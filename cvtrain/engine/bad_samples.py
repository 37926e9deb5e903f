"""`data.on_bad_image`: what the main process does with the samples a dataset could not read."""

from __future__ import annotations

from pathlib import Path

from cvtrain.contracts.batch import BadSample
from cvtrain.engine import distributed
from cvtrain.engine.reporting import log
from cvtrain.errors import DataError


class BadSampleLog:
    """Stop on the first unreadable image (naming it), or skip, count and list it in bad_images.txt."""

    def __init__(self, policy: str, run_dir: Path):
        self.policy = policy
        self.path = Path(run_dir) / "bad_images.txt"
        self.seen: dict[str, str] = {}

    def check(self, bad: list[BadSample]) -> None:
        for sample in bad:
            if self.policy == "error":
                raise DataError(
                    f"cannot read image {sample.path}: {sample.reason}\n"
                    "Fix or remove the file, or run with data.on_bad_image=skip to skip (and count) such files."
                )
            if sample.path not in self.seen:
                self.seen[sample.path] = sample.reason
                log.warning("skipped unreadable image %s (%s)", sample.path, sample.reason)
                if distributed.is_main():
                    with self.path.open("a") as f:
                        f.write(f"{sample.path}\t{sample.reason}\n")

    @property
    def count(self) -> int:
        return len(self.seen)
