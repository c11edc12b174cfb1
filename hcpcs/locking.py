"""An exclusive lock file, so that only one process at a time writes the warehouse or a staged release."""

import fcntl
import time
from contextlib import contextmanager
from pathlib import Path

from hcpcs.errors import HcpcsError


class WarehouseLockedError(HcpcsError):
    """Another process holds a write lock for longer than this one waits."""


@contextmanager
def file_lock(lock_path: Path, timeout_seconds: float, holder: str):
    """Hold an exclusive lock on `lock_path`, waiting up to `timeout_seconds` for another holder.

    `holder` names what the lock protects, for the error message. The lock is released when
    the process ends, also when it is killed, because it is a flock on an open file.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WarehouseLockedError(
                        f"Another run is writing {holder} (lock {lock_path}) and did not finish within "
                        f"{timeout_seconds:g} s. Wait for it to end, then run again."
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
