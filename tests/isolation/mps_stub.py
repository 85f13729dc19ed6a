#!/usr/bin/env python3
"""A stand-in for `nvidia-cuda-mps-control` that records every call; for tests without a GPU.

It keeps its state in the pipe directory it is given (CUDA_MPS_PIPE_DIRECTORY), like the real
daemon, and appends one JSON line per call to `stub.jsonl` next to that directory:
    {"argv": [...], "stdin": "...", "env": {CUDA_VISIBLE_DEVICES, CUDA_MPS_PIPE_DIRECTORY, ...}}
`-d` marks the daemon running; on stdin it answers get_server_list, get_server_status PID
(FAULT while a file named `fault` exists in the pipe dir) and quit.
"""

import json
import os
import sys
from pathlib import Path

FAKE_SERVER_PID = "4242"


def main() -> int:
    pipe = Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps"))
    stdin = "" if "-d" in sys.argv[1:] else sys.stdin.read()
    keys = ("CUDA_VISIBLE_DEVICES", "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")
    record = {"argv": sys.argv[1:], "stdin": stdin.strip(), "env": {k: os.environ.get(k) for k in keys}}
    with open(pipe.parent / "stub.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")
    control = pipe / "control"
    if "-d" in sys.argv[1:]:
        pipe.mkdir(parents=True, exist_ok=True)
        control.write_text("running\n")
        return 0
    if not control.exists():
        sys.stderr.write("Cannot find MPS control daemon process\n")
        return 1
    command = stdin.strip().partition(" ")[0]
    if command == "get_server_list":
        print(FAKE_SERVER_PID)
    elif command == "get_server_status":
        print("FAULT" if (pipe / "fault").exists() else "ACTIVE")
    elif command == "quit":
        control.unlink()
        (pipe / "fault").unlink(missing_ok=True)
    else:
        sys.stderr.write(f"unknown command {command!r}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
