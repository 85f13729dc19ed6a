"""A private libvirtd with QEMU (TCG: no KVM needed) for the lifecycle tests, started and stopped by
the PID we started.

libvirtd runs in session mode, as `nobody` when we are root (a root libvirtd would use the
machine-wide /run/libvirt and /var/lib/libvirt), with every directory in a fresh temp dir, so
several test runs can share a machine. The URI carries the socket path.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LIBVIRTD = Path("/usr/sbin/libvirtd")
QEMU = Path("/usr/bin/qemu-system-x86_64")
UNPRIVILEGED = "nobody"


def unavailable_reason() -> str | None:
    for path, package in ((LIBVIRTD, "libvirt-daemon libvirt-daemon-driver-qemu"), (QEMU, "qemu-system-x86")):
        if not path.exists():
            return f"no {path}: as root, apt-get install --no-install-recommends {package} (test.sh does)"
    return None


@dataclass
class Libvirtd:
    root: Path
    proc: subprocess.Popen[bytes]

    @property
    def socket(self) -> Path:
        return self.root / "run/libvirt/libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu:///session?socket={self.socket}"

    def log_text(self) -> str:
        path = self.root / "libvirtd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_libvirtd(root: Path | None = None, timeout_s: float = 30.0) -> Libvirtd:
    """Start (or, with the `root` of a stopped one, restart) a private session libvirtd."""
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="gpupool-libvirtd-"))
        root.chmod(0o755)
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": str(root / "home"),
        "XDG_RUNTIME_DIR": str(root / "run"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    for name in ("home", "run", "config", "cache"):
        (root / name).mkdir(mode=0o700, exist_ok=True)
    preexec = None
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED)
        for path in [root, *root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)

        def preexec() -> None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    socket = root / "run/libvirt/libvirt-sock"
    socket.unlink(missing_ok=True)
    log = open(root / "libvirtd.log", "ab")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen(
        [str(LIBVIRTD), "--timeout", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec,
    )
    daemon = Libvirtd(root, proc)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"libvirtd exited with {proc.returncode}: {daemon.log_text()}")
        if socket.exists():
            return daemon
        time.sleep(0.1)
    daemon.close()
    raise RuntimeError(f"libvirtd did not come up in {timeout_s}s: {daemon.log_text()}")
