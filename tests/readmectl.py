"""Run the README's examples as written, in a fresh copy of this checkout (what a clone holds).

    python3 tests/readmectl.py            # prints each block, its output, and a summary; exit 1 on failure

Every ```bash and ```python block of README.md runs in order, in the copy's folder, like a user
following the page: the block that starts `gpupool serve` runs in the background (the first
terminal) until the end; the others run in a second terminal, which keeps `source
.venv/bin/activate` once a block did it; Python blocks run with `.venv/bin/python`. The copy has no
`../shared` beside it. The suite's own command (`bash scripts/test.sh`) is the one block skipped.

No network: instead of installing, the copy's `.venv` reuses the packages of this checkout's
`.venv` (a venv whose `.pth` puts the copy's `src/` first, then those packages), with the stamp
`scripts/setup.sh` writes, so `bash scripts/setup.sh` in the README finds it up to date. The server
listens on a free port (`GPUPOOL_PORT`) and keeps its files in a private `GPUPOOL_HOME`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from serverctl import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
BLOCK_RE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SKIPPED = {"scripts/test.sh": "the whole test suite: CI runs it"}
BLOCK_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int

    @property
    def title(self) -> str:
        first = next((line for line in self.text.splitlines() if line and not line.startswith("#")), "")
        return f"README.md:{self.line} {self.language}: {first.strip()}"


@dataclass
class Outcome:
    block: Block
    returncode: int | None  # None: skipped or still running (the server)
    output: str = ""
    note: str = ""


def readme_blocks(readme: Path) -> list[Block]:
    text = readme.read_text()
    return [
        Block(match.group(1), match.group(2), text[: match.start()].count("\n") + 1)
        for match in BLOCK_RE.finditer(text)
    ]


def fresh_copy(repo: Path, dest: Path) -> Path:
    """The files a clone of `repo`'s working tree holds (tracked and not ignored), copied to `dest`."""
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = repo / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def light_venv(clone: Path, packages_from: Path) -> None:
    """`clone/.venv` on the packages of the venv `packages_from`, with `clone/src` first."""
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    donor = next((packages_from / "lib").glob("python3*/site-packages"))
    (purelib / "gpupool-readme.pth").write_text(f"{clone / 'src'}\n{donor}\n")
    script = venv / "bin" / "gpupool"
    script.write_text(
        f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom gpupool.cli.main import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    digest = hashlib.sha256((clone / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".gpupool-setup").write_text(f"{digest} []\n")  # what scripts/setup.sh writes


@dataclass
class ReadmeRun:
    """One walk through the README in `clone`, with its own home and port."""

    clone: Path
    home: Path
    port: int = field(default_factory=free_port)
    server: subprocess.Popen[str] | None = None
    activated: bool = False

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUPOOL_", "VIRTUAL_ENV"))}
        env.update(GPUPOOL_HOME=str(self.home), GPUPOOL_PORT=str(self.port), COLUMNS="120", NO_COLOR="1")
        return env

    def run(self, block: Block) -> Outcome:
        for needle, why in SKIPPED.items():
            if needle in block.text:
                return Outcome(block, None, note=f"skipped: {why}")
        if block.language == "python":
            return self._finish(block, [str(self.clone / ".venv" / "bin" / "python"), "-c", block.text])
        if re.search(r"gpupool serve\s*$", block.text, re.MULTILINE):
            return self._serve(block)
        script = ("source .venv/bin/activate\n" if self.activated else "") + block.text
        self.activated = self.activated or "source .venv/bin/activate" in block.text
        return self._finish(block, ["bash", "-e", "-o", "pipefail", "-c", script])

    def _finish(self, block: Block, argv: list[str]) -> Outcome:
        try:
            done = subprocess.run(
                argv,
                cwd=self.clone,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            return Outcome(
                block, 124, f"{exc.stdout or ''}{exc.stderr or ''}", f"timed out ({BLOCK_TIMEOUT_S}s)"
            )
        return Outcome(block, done.returncode, done.stdout + done.stderr)

    def _serve(self, block: Block, timeout_s: float = 60.0) -> Outcome:
        log = open(self.home / "serve.log", "w")  # noqa: SIM115 - the server outlives this call
        self.server = subprocess.Popen(
            ["bash", "-e", "-c", block.text],
            cwd=self.clone,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stopped as one at the end
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.server.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return Outcome(block, None, self.server_log(), "serving in the background")
            except httpx.TransportError:
                time.sleep(0.2)
        return Outcome(block, self.server.poll() or 1, self.server_log(), "the server did not come up")

    def server_log(self) -> str:
        path = self.home / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server we started (its process group: bash and `gpupool serve`)."""
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(timeout=10)


def run_readme(workdir: Path, packages_from: Path = REPO_ROOT / ".venv") -> list[Outcome]:
    """Copy this checkout into `workdir/gpupool` and run every README block there, in order."""
    clone = fresh_copy(REPO_ROOT, workdir / "gpupool")
    light_venv(clone, packages_from)
    home = workdir / "home"
    home.mkdir()
    walk = ReadmeRun(clone, home)
    outcomes = []
    try:
        for block in readme_blocks(clone / "README.md"):
            outcome = walk.run(block)
            outcomes.append(outcome)
            if outcome.returncode not in (0, None):
                break
    finally:
        walk.stop()
    return outcomes


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gpupool-readme-") as scratch:
        outcomes = run_readme(Path(scratch))
    failed = [o for o in outcomes if o.returncode not in (0, None)]
    for outcome in outcomes:
        status = outcome.note or ("ok" if outcome.returncode == 0 else f"FAILED ({outcome.returncode})")
        print(f"== {outcome.block.title}: {status}")
        if outcome.returncode not in (0, None):
            print(outcome.output)
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} README blocks ran as written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
