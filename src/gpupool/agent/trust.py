"""The node agent's trust checks, in one place (see docs/security.md).

Tenants are not trusted; the admin and node agents are. Everything a tenant's request carries
into the node passes through here before the agent acts on it:

- who a workload runs as: `identity_for` maps the claim's tenant to its OS user (`RunAs`), or
  refuses (403) with how the admin enables it; never root, never the server's own user;
- what it starts with: `workload_env` builds a clean environment (the caller's explicit
  variables minus `DENIED_ENV`, then the claim's isolation variables), never the server's own;
- which process it is: `prove_pid` accepts a reported pid only if that process carries the
  workload's secret in /proc/PID/environ and started after the workload was registered;
- which processes belong to a claim: `ClaimProcesses` (the proven root's tree, or the secret).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pwd
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gpupool.errors import Forbidden
from gpupool.isolation import procfs
from gpupool.model import Tenant

SECRET_ENV = "GPUPOOL_WORKLOAD_SECRET"
"""Per-workload secret in the environment of the workload's processes: the proof they are its."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DENIED_ENV_PREFIXES = ("GPUPOOL_", "CUDA_MPS_")
DENIED_ENV = frozenset(
    {
        # Code injected into every program the workload execs: a tenant's request is data.
        "LD_PRELOAD", "LD_AUDIT",
        # Isolation comes from the agent only: a caller's value could reach another device or
        # another claim's MPS daemon when the claim's own launch env does not set it.
        "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
        # Login facts of the user the workload runs as are set from its passwd entry.
        "HOME", "USER", "LOGNAME", "SHELL", "MAIL",
    }
)  # fmt: skip
"""Caller variables a detached workload never gets. `GPUPOOL_*` covers tokens and the agent's own
variables. LD_LIBRARY_PATH and PYTHONPATH pass: they shape only the tenant's own process, which
runs with the tenant's own rights (the privilege drop itself never sees them)."""

PROOF_SLACK_S = 2.0
"""A proven process may have started this long before its workload was registered (clock ticks
round to 10 ms; the CLI registers, then starts the child, so this only absorbs rounding)."""


@dataclass(frozen=True)
class RunAs:
    """An OS identity a workload runs as: the user, its primary group and its groups."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    shell: str


# ------------------------------------------------------------------ identity
def resolve_user(name: str) -> RunAs:
    """The passwd entry of `name` on this node; Forbidden for an unknown user, root or the server."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise Forbidden(f"user {name!r} does not exist on this node") from None
    if entry.pw_uid == 0:
        raise Forbidden(f"user {name!r} is root: tenant workloads never run as root")
    if entry.pw_uid == os.geteuid():
        raise Forbidden(f"user {name!r} is the server's own user: tenant workloads never run as the server")
    return RunAs(
        user=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=tuple(sorted(set(os.getgrouplist(entry.pw_name, entry.pw_gid)))),
        home=entry.pw_dir,
        shell=entry.pw_shell,
    )


def identity_for(owner: Tenant) -> RunAs | None:
    """Who the agent runs a detached workload of `owner`'s claim as; None means the server's own
    user, which only the admin's claims get (the admin is trusted and holds the server anyway)."""
    if owner.is_admin:
        return None
    if not owner.run_as:
        raise Forbidden(
            f"tenant {owner.name!r} has no OS user to run detached workloads as; the admin enables it "
            f"with `gpupool tenants set {owner.name} --run-as USER` (attached `gpupool run` works meanwhile)"
        )
    if os.geteuid() != 0:
        raise Forbidden(
            f"the server does not run as root, so it cannot start processes as {owner.run_as!r}; "
            "run `gpupool serve` as root to start tenants' detached workloads (attached `gpupool run` works)"
        )
    return resolve_user(owner.run_as)


# --------------------------------------------------------------- environment
def workload_env(
    caller: Mapping[str, str], launch: Mapping[str, str], hints: Mapping[str, str], identity: RunAs | None
) -> dict[str, str]:
    """The environment of a detached workload, built from nothing: the caller's explicit variables
    minus the denied ones, framework hints the caller did not set, the claim's isolation variables
    last (they always win), and login facts of the user it runs as. Never the server's own."""
    allowed = {key: value for key, value in caller.items() if not env_denied(key)}
    env = {"PATH": DEFAULT_PATH, **hints, **allowed, **launch}
    if identity is not None:
        env.update(HOME=identity.home, USER=identity.user, LOGNAME=identity.user, SHELL=identity.shell)
    return env


def env_denied(key: str) -> bool:
    return key in DENIED_ENV or key.startswith(DENIED_ENV_PREFIXES)


# ------------------------------------------------------------------ pid proof
def new_secret() -> tuple[str, str]:
    """(secret for the workload's environment, its hash for the store)."""
    secret = secrets.token_urlsafe(24)
    return secret, secret_hash(secret)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def environ_secret(pid: int) -> str | None:
    """The workload secret in /proc/PID/environ; None when absent. PermissionError when this
    process may not read that environment (a server that is not root, another user's process)."""
    try:
        raw = (procfs.PROC / str(pid) / "environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    prefix = f"{SECRET_ENV}=".encode()
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def prove_pid(pid: int, proof_hash: str | None, registered_at: float) -> str | None:
    """Why `pid` cannot be trusted as this workload's process, or None when it is proven: it
    runs, is not this server or one of its ancestors, started after the workload was registered,
    and carries the workload's secret in its environment."""
    if proof_hash is None:
        return "the workload has no secret to prove a process by"
    if not procfs.is_alive(pid):
        return f"pid {pid} does not run on this node"
    if pid in procfs.ancestors(os.getpid()):
        return f"pid {pid} is the gpupool server or one of its parents"
    started = procfs.started_at(pid)
    if started is None or started < registered_at - PROOF_SLACK_S:
        return f"pid {pid} started before the workload was registered"
    try:
        found = environ_secret(pid)
    except PermissionError:
        return f"the server may not read the environment of pid {pid} (it proves pids as root)"
    if found is None or not hmac.compare_digest(secret_hash(found), proof_hash):
        return f"pid {pid} does not carry this workload's {SECRET_ENV}"
    return None


class ClaimProcesses:
    """Which claim a process belongs to: under a proven workload root (its tree), or carrying a
    live workload's secret (a child that left the tree, e.g. by double fork). Anything else is
    nobody's, and gpupool never signals it on a claim's behalf."""

    def __init__(self, roots: Mapping[int, str], proofs: Mapping[str, str]) -> None:
        """`roots`: proven workload pid -> claim id; `proofs`: secret hash -> claim id."""
        self._tree = {pid: roots[root] for pid, root in procfs.owners(roots).items()}
        self._proofs = dict(proofs)
        self._by_secret: dict[int, str | None] = {}

    def owner(self, pid: int) -> str | None:
        claim_id = self._tree.get(pid)
        if claim_id is not None:
            return claim_id
        if pid not in self._by_secret:
            self._by_secret[pid] = self._owner_by_secret(pid)
        return self._by_secret[pid]

    def owners(self, pids: Iterable[int]) -> dict[int, str]:
        found = {pid: self.owner(pid) for pid in pids}
        return {pid: claim_id for pid, claim_id in found.items() if claim_id is not None}

    def _owner_by_secret(self, pid: int) -> str | None:
        if not self._proofs:
            return None
        try:
            secret = environ_secret(pid)
        except PermissionError:
            return None
        return None if secret is None else self._proofs.get(secret_hash(secret))
