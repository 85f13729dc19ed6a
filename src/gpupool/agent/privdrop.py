"""Become another OS user, prove it stuck, then exec the workload (after OpenSSH and systemd).

The agent (root) starts this file as `python -I -S privdrop.py STATUS_FD` with an empty
environment, so nothing a tenant sent (LD_PRELOAD, PYTHONPATH, ...) reaches a process that still
has root's rights. It reads the launch as JSON on stdin:

    {"argv": [...], "env": {...}, "cwd": "/home/alice", "uid": 1001, "gid": 1001, "groups": [1001],
     "die_with": 4242}                 # optional: SIGTERM the workload when that parent dies

then: stdin becomes /dev/null; supplementary groups, then gid, then uid are set (real, effective
and saved); it checks that each stuck and that root cannot be regained; no_new_privs is set so no
setuid binary can raise the rights again; it enters `cwd` *as that user* (the real test that the
directory is usable by them) and execs. On any failure it writes one JSON line
`{"stage": "identity" | "cwd" | "exec", "errno": N, "message": "..."}` to STATUS_FD and exits 126
(127 when the command is not found). STATUS_FD is close-on-exec: the agent reads EOF on success.

Standard library only, no gpupool import: it runs with `-S` (no site-packages) on purpose.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys
from typing import Any, NoReturn

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_NO_NEW_PRIVS = 38
SIGTERM = 15


class LaunchFailed(Exception):
    def __init__(self, stage: str, code: int, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.code = code
        self.message = message


def drop_privileges(uid: int, gid: int, groups: list[int]) -> None:
    """Groups, then gid, then uid; then verify every id and that uid 0 cannot be regained."""
    try:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise LaunchFailed(
            "identity", exc.errno or errno.EPERM, f"cannot switch to uid {uid}: {exc}"
        ) from None
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise LaunchFailed(
            "identity", errno.EPERM, f"uid/gid did not stick: {os.getresuid()} {os.getresgid()}"
        )
    if set(os.getgroups()) - {gid} != set(groups) - {gid}:
        raise LaunchFailed("identity", errno.EPERM, f"groups did not stick: {os.getgroups()}")
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise LaunchFailed("identity", errno.EPERM, "root could be regained after dropping it")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise LaunchFailed("identity", ctypes.get_errno(), "cannot set no_new_privs")


def launch(spec: dict[str, Any]) -> NoReturn:
    drop_privileges(int(spec["uid"]), int(spec["gid"]), [int(g) for g in spec["groups"]])
    if spec.get("die_with"):
        # After the drop: changing credentials clears the parent-death signal, exec keeps it.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0)
        if os.getppid() != int(spec["die_with"]):
            raise LaunchFailed("identity", errno.ESRCH, "the launching process is gone")
    try:
        os.chdir(spec["cwd"])
    except OSError as exc:
        raise LaunchFailed("cwd", exc.errno or errno.EACCES, exc.strerror or str(exc)) from None
    argv = [str(arg) for arg in spec["argv"]]
    try:
        os.execvpe(argv[0], argv, {str(k): str(v) for k, v in spec["env"].items()})
    except OSError as exc:
        raise LaunchFailed("exec", exc.errno or errno.ENOEXEC, exc.strerror or str(exc)) from None


def main() -> None:
    status_fd = int(sys.argv[1])
    os.set_inheritable(status_fd, False)  # closes on exec: EOF tells the agent it worked
    try:
        spec = json.loads(sys.stdin.buffer.read())
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        launch(spec)
    except LaunchFailed as exc:
        report = {"stage": exc.stage, "errno": exc.code, "message": exc.message}
    except Exception as exc:  # a malformed launch: still one line, never a traceback
        report = {"stage": "identity", "errno": errno.EINVAL, "message": f"bad launch: {exc}"}
    os.write(status_fd, (json.dumps(report) + "\n").encode())
    os._exit(127 if report["errno"] == errno.ENOENT and report["stage"] == "exec" else 126)


if __name__ == "__main__":
    main()
