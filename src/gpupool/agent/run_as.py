"""Start a workload process as another OS user, through `privdrop.py` (the agent's side of it).

The helper starts with an empty environment under `python -I -S`, gets the launch on its stdin,
drops to the user, verifies, enters the working directory as that user and execs; a failure
comes back on a close-on-exec status pipe, so the caller learns it before answering the API.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from gpupool.agent.trust import RunAs

HELPER = Path(__file__).with_name("privdrop.py")
STATUS_TIMEOUT_S = 20.0
"""How long the helper may take to exec or report, in seconds (a Python start is ~20 ms)."""


class LaunchError(OSError):
    """The helper could not become the user (`identity`), enter `cwd`, or exec the command."""

    def __init__(self, stage: str, code: int, message: str) -> None:
        super().__init__(code, message)
        self.stage = stage

    def __reduce__(self) -> tuple[type[LaunchError], tuple[str, int, str]]:
        # Crosses process boundaries (a Ray node's agent raises it to the control plane).
        return LaunchError, (self.stage, self.errno or 0, self.strerror or "")


def default_cwd(identity: RunAs) -> str:
    """The user's home when it exists, else `/` (a user made with `useradd -M` has none)."""
    return identity.home if identity.home and os.path.isdir(identity.home) else "/"


def spawn_as(
    identity: RunAs,
    command: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str],
    stdout: int,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `command` as `identity` in its own session, output to the `stdout` fd; returns the
    process (its pid is the workload's). With `die_with_parent` it gets SIGTERM when this process
    dies. Raises LaunchError when it could not start."""
    read_fd, write_fd = os.pipe()
    launch = {
        "argv": list(command),
        "env": dict(env),
        "cwd": cwd or default_cwd(identity),
        "uid": identity.uid,
        "gid": identity.gid,
        "groups": list(identity.groups),
        "die_with": os.getpid() if die_with_parent else None,
    }
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", str(HELPER), str(write_fd)],
            env={},
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)
    try:
        assert child.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            child.stdin.write(json.dumps(launch).encode())
            child.stdin.close()
        report = _read_status(read_fd)
    finally:
        os.close(read_fd)
    if report is not None:
        with contextlib.suppress(ProcessLookupError):
            child.kill()  # it failed (and exits anyway) or hung before exec
        child.wait(timeout=STATUS_TIMEOUT_S)
        code = report.get("errno")
        raise LaunchError(
            str(report.get("stage")), code if isinstance(code, int) else 0, str(report.get("message"))
        )
    return child


def _read_status(fd: int) -> dict[str, object] | None:
    """The helper's failure report, or None once the pipe closed empty (the exec succeeded)."""
    data = b""
    while True:
        ready, _, _ = select.select([fd], [], [], STATUS_TIMEOUT_S)
        if not ready:
            return {"stage": "exec", "errno": 110, "message": "the launch helper did not answer"}
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    if not data:
        return None
    try:
        report: dict[str, object] = json.loads(data.decode(errors="replace").splitlines()[0])
    except ValueError:
        return {"stage": "exec", "errno": 5, "message": data.decode(errors="replace").strip()}
    return report
