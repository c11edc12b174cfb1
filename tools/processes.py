"""Process helpers shared by the tools and the tests that start `dagster dev` or `dagster-webserver`."""

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen, timeout_seconds: float) -> None:
    """Stop a server started with `start_new_session=True` and every child in its process group.

    SIGTERM comes first. SIGKILL follows for the whole group, because the Dagster code server
    is a child in the same group and can outlive the webserver.
    """
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=timeout_seconds)
