"""A stand-in for a long-running service on a vGPU: prints a heartbeat until it is stopped.

gpupool run --gpus 2 --detach -- python3 examples/serve.py
gpupool logs CLAIM_ID --follow
gpupool stop CLAIM_ID
"""

from __future__ import annotations

import os
import signal
import sys
import time


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `gpupool stop` sends SIGTERM first
    print(f"serving on {os.environ.get('CUDA_VISIBLE_DEVICES', '(no GPU)')}", flush=True)
    beat = 0
    while True:
        beat += 1
        print(f"heartbeat {beat}", flush=True)
        time.sleep(2)


if __name__ == "__main__":
    main()
