"""atecc.fileio: atomic writes survive a crash at every step, bounded reads refuse what is not a
plain file, and the inter-process lock survives fork()."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from atecc import fileio
from atecc.fileio import FileLock, FileRefusedError, atomic_write, read_limited


def test_atomic_write_replaces_content_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b"one")
    assert target.read_bytes() == b"one"
    assert target.stat().st_mode & 0o777 == 0o600
    atomic_write(target, b"two", mode=0o644)
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


_CRASH_CHILD = """
import os, sys
from atecc import fileio
step = sys.argv[2]
def hook(name):
    if name == step:
        os._exit(42)
fileio.crash_hook = hook
fileio.atomic_write(sys.argv[1], b"new contents")
"""


@pytest.mark.parametrize("step", fileio.WRITE_STEPS)
def test_a_crash_at_any_step_of_a_write_leaves_the_old_or_the_new_file_whole(
    tmp_path: Path, step: str
) -> None:
    target = tmp_path / "meta.json"
    atomic_write(target, b"old contents")
    proc = subprocess.run([sys.executable, "-c", _CRASH_CHILD, str(target), step], check=False)
    assert proc.returncode == 42, "the hook did not run at this step"
    assert target.read_bytes() in (b"old contents", b"new contents")
    # The crashed writer's temporary file (if it got that far) goes with the next write.
    atomic_write(target, b"after")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


def test_stale_temp_files_of_dead_writers_are_removed_but_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "registry.db"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".registry.db.{dead_pid}.abcdef.tmp"
    live = tmp_path / f".registry.db.{os.getpid()}.abcdef.tmp"
    other = tmp_path / ".unrelated.1.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    assert fileio.remove_stale_temps(target) == 1
    assert not stale.exists() and live.exists() and other.exists()


def test_read_limited_refuses_a_fifo_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "meta.json"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(FileRefusedError, match="not a regular file"):
        read_limited(fifo, max_bytes=1024)
    assert time.monotonic() - started < 5


def test_read_limited_refuses_a_device_instead_of_reading_it_forever() -> None:
    with pytest.raises(FileRefusedError, match="not a regular file"):
        read_limited("/dev/zero", max_bytes=1024)


def test_read_limited_refuses_a_file_over_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(FileRefusedError, match="larger than 1024"):
        read_limited(big, max_bytes=1024)
    assert read_limited(big, max_bytes=2048) == b"x" * 2048


def test_read_limited_refuses_a_symlink_only_when_asked(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"data")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert read_limited(link, max_bytes=10) == b"data"
    with pytest.raises(FileRefusedError, match="symlink"):
        read_limited(link, max_bytes=10, follow_symlinks=False)


def test_lock_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "victim"
    elsewhere.write_bytes(b"keep")
    (tmp_path / "x.lock").symlink_to(elsewhere)
    with pytest.raises(FileRefusedError, match="symlink"), FileLock(tmp_path / "x.lock"):
        pass
    assert elsewhere.read_bytes() == b"keep"


def test_lock_is_reentrant_and_excludes_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = FileLock(path)
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n"
        "    sys.exit(1)\nsys.exit(0)\n"
    )
    with lock, lock:
        held = subprocess.run([sys.executable, "-c", probe, str(path)], check=False)
    free = subprocess.run([sys.executable, "-c", probe, str(path)], check=False)
    assert (held.returncode, free.returncode) == (1, 0)


def _fork_while_another_thread_holds(lock: FileLock, child_body: str) -> int:
    """Fork while a second thread holds ``lock``; run ``child_body`` in the child; exit code."""
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # child
        try:
            exec(child_body, {"lock": lock, "os": os, "fcntl": fcntl, "time": time})
        except BaseException:
            os._exit(3)
        os._exit(0)
    time.sleep(0.3)
    release.set()
    thread.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1  # hung


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() in a threaded process
def test_child_forked_while_another_thread_holds_the_lock_can_take_it(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "meta.lock")
    code = _fork_while_another_thread_holds(lock, "with lock:\n    pass\n")
    assert code == 0, "the child hung on a lock held by a thread that does not exist in it"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_child_forked_while_locked_does_not_keep_the_lock_after_the_parent_releases(
    tmp_path: Path,
) -> None:
    path = tmp_path / "meta.lock"
    lock = FileLock(path)
    # The child only sleeps: an inherited descriptor would keep the flock held meanwhile.
    child = "time.sleep(1.5)\n"
    result: list[bool] = []

    def third_process_probe() -> None:
        time.sleep(0.8)  # after the parent released (0.3 s), while the child still sleeps
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            result.append(True)
        except OSError:
            result.append(False)
        finally:
            os.close(fd)

    probe = threading.Thread(target=third_process_probe)
    probe.start()
    assert _fork_while_another_thread_holds(lock, child) == 0
    probe.join()
    assert result == [True], "the forked child kept the parent's flock alive"
