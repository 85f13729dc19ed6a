"""A stand-in GPU workload for tests: a real process that declares simulated GPU usage.

    python workload.py [--memory BYTES] [--util PCT] [--sleep S] [--exit CODE] [--grow-to BYTES]
        [--env KEY ...] [--ignore-term] [--term-delay S]

It declares its usage in the directory of $GPUPOOL_SIM_USAGE_FILE (set by the gpupool agent on the
simulated backend), one `<pid>.json` per process, so several processes of one claim each count;
it prints the requested environment variables, sleeps, and exits with the given code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time


def declare(memory: int, util: float) -> None:
    usage_file = os.environ.get("GPUPOOL_SIM_USAGE_FILE")
    if not usage_file:
        return
    path = os.path.join(os.path.dirname(usage_file), f"{os.getpid()}.json")
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump({"memory_bytes": memory, "utilization_percent": util, "pid": os.getpid()}, handle)
    os.replace(tmp, path)  # atomic: the agent never reads half a file


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory", type=int, default=0)
    parser.add_argument("--util", type=float, default=0.0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--grow-to", type=int, default=0, help="after 0.5 s, declare this much memory")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--term-delay", type=float, default=0.0, help="on SIGTERM, clean up this long")
    parser.add_argument("--pidfile")
    args = parser.parse_args()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.term_delay:

        def clean_up(*_: object) -> None:
            print("workload got SIGTERM", flush=True)
            time.sleep(args.term_delay)
            os._exit(143)

        signal.signal(signal.SIGTERM, clean_up)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.pidfile:
        with open(args.pidfile, "w") as handle:
            handle.write(str(os.getpid()))
    for key in args.env:
        print(f"{key}={os.environ.get(key, '')}", flush=True)
    declare(args.memory, args.util)
    print(f"workload {os.getpid()} started", flush=True)
    if args.grow_to:
        time.sleep(0.5)
        declare(args.grow_to, args.util)
        print(f"workload {os.getpid()} grew to {args.grow_to}", flush=True)
    deadline = time.monotonic() + args.sleep
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("workload interrupted", flush=True)
        return 130
    print("workload done", flush=True)
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
