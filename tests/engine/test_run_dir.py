"""A run directory that cannot be written is one line naming it and what to do, exit 2, before Hydra sets the run
up (its own failure is a traceback: "Unable to configure handler 'file'"). Tests run as root in CI, where a
folder's permission bits do not stop writes: the read-only case mounts a read-only file system."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli

RUN = ("fit", "data=synthetic", "data.length=8", "trainer.epochs=1", "trainer.device=cpu")


def _refused(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def test_a_log_file_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "run" / "cvtrain.log").mkdir(parents=True)  # Hydra's log handler cannot open it
    proc = run_cli(*RUN, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert _refused(proc) == (
        f"cvtrain fit: cannot write the run directory {tmp_path / 'run'}: Is a directory "
        f"({tmp_path / 'run' / 'cvtrain.log'}); give a writable folder with hydra.run.dir=DIR\n"
    )


def test_a_file_where_the_run_directory_should_be(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    proc = run_cli(*RUN, f"hydra.run.dir={tmp_path / 'taken' / 'run'}", cwd=tmp_path, check=False)
    assert _refused(proc) == (
        f"cvtrain fit: cannot write the run directory {tmp_path / 'taken' / 'run'}: Not a directory; give a "
        "writable folder with hydra.run.dir=DIR\n"
    )


def test_a_path_too_long_for_the_file_system(tmp_path: Path) -> None:
    run_dir = tmp_path / ("x" * 300)  # one name past the 255 bytes of ext4, xfs, tmpfs
    proc = run_cli(*RUN, f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False)
    out = " ".join(_refused(proc).split())
    assert out == (
        f"cvtrain fit: the run directory {run_dir} is too long a path for its file system (File name too long): "
        "give a shorter one with hydra.run.dir=DIR"
    )


def test_a_sweep_directory_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    proc = run_cli(
        *RUN, "-m", "optim.lr=0.1,0.2", f"hydra.sweep.dir={tmp_path / 'taken'}", cwd=tmp_path, check=False
    )
    assert _refused(proc) == (
        f"cvtrain fit: cannot write the run directory {tmp_path / 'taken'}: File exists; give a writable folder "
        "with hydra.sweep.dir=DIR\n"
    )


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written into: a read-only tmpfs (what root needs, as in CI), else permission bits."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        if os.geteuid() == 0:
            pytest.skip(f"root cannot mount a read-only tmpfs here ({mounted.stderr.decode().strip()})")
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_run_directory(tmp_path: Path, read_only_folder: Path) -> None:
    proc = run_cli(*RUN, f"hydra.run.dir={read_only_folder}", cwd=tmp_path, check=False)
    reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    assert _refused(proc) == (
        f"cvtrain fit: cannot write the run directory {read_only_folder}: {reason} "
        f"({read_only_folder / 'cvtrain.log'}); give a writable folder with hydra.run.dir=DIR\n"
    )
