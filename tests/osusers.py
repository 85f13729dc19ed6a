"""Throwaway OS users for tests of the privilege drop (root only): made with `useradd`, always
removed again with `userdel` (and their group with `groupdel`)."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def skip_unless_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the agent starts tenants' workloads as another OS user")
    for tool in ("useradd", "userdel"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian package passwd) to make a throwaway OS user")


@contextlib.contextmanager
def os_user(prefix: str = "gpt") -> Iterator[pwd.struct_passwd]:
    """A new user with its own group and no home directory, removed when the block ends."""
    skip_unless_root()
    name = f"{prefix}{secrets.token_hex(4)}"
    made = subprocess.run(
        ["useradd", "--no-create-home", "--user-group", "--shell", "/bin/sh", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            subprocess.run(["groupdel", name], capture_output=True, check=False)
