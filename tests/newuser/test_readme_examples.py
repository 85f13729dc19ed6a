"""Issue 10, points 1, 3 and 6: every example of README.md runs as written from a fresh copy of the
checkout with no `../shared` beside it (see `readmectl.py`): set-up and `gpupool serve`, the
second terminal's commands (gpupool on PATH after `source .venv/bin/activate`), running workloads,
the simulator example on the built-in trace, and the SDK snippet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from readmectl import Outcome, run_readme


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Outcome]]]:
    workdir = tmp_path_factory.mktemp("readme")
    yield workdir, run_readme(workdir)


def _block(outcomes: list[Outcome], needle: str) -> Outcome:
    return next(o for o in outcomes if needle in o.block.text)


def test_every_readme_example_runs_as_written(walk: tuple[Path, list[Outcome]]) -> None:
    _, outcomes = walk
    failed = [o for o in outcomes if o.returncode not in (0, None)]
    assert not failed, "\n".join(f"{o.block.title}: {o.note or o.returncode}\n{o.output}" for o in failed)
    skipped = [o.block.title for o in outcomes if o.returncode is None and o.note.startswith("skipped")]
    assert len(skipped) == 1 and "scripts/test.sh" in skipped[0]
    assert {o.block.language for o in outcomes} == {"bash", "python"}
    assert len(outcomes) >= 6


def test_setup_then_serve_and_the_path_hint(walk: tuple[Path, list[Outcome]]) -> None:
    _, outcomes = walk
    serve = _block(outcomes, "gpupool serve")
    assert serve.note == "serving in the background"
    assert "setup: .venv is up to date" in serve.output
    assert "`source .venv/bin/activate` puts gpupool on your PATH" in serve.output
    assert "policy default" in serve.output, "the banner names the policy as the README and CLI do"
    second_terminal = _block(outcomes, "source .venv/bin/activate")
    assert "released" in second_terminal.output and "claim.created" in second_terminal.output


def test_simulator_example_runs_from_a_copy_without_shared(walk: tuple[Path, list[Outcome]]) -> None:
    workdir, outcomes = walk
    clone = workdir / "gpupool"
    assert not (clone.parent / "shared").exists(), "nothing beside the copy to lean on"
    sim = _block(outcomes, "gpupool sim")
    assert sim.returncode == 0, sim.output
    assert "synthetic_openb_pods.csv, median of 5 seed(s)" in sim.output
    report = json.loads((clone / "out.json").read_text())
    assert list(report["policies"]) == ["fgd", "bestfit", "default"]
    assert report["seeds"] == [42, 43, 44, 45, 46]


def test_sdk_snippet_prints_the_devices_it_got(walk: tuple[Path, list[Outcome]]) -> None:
    _, outcomes = walk
    sdk = _block(outcomes, "import gpupool")
    assert sdk.returncode == 0, sdk.output
    assert sdk.output.strip().startswith("GPU-")
