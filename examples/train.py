"""A stand-in for your training script: shows the vGPU gpupool gave it, then "trains" a moment.

    gpupool run --memory 10GiB --compute 25 -- python3 examples/train.py

With PyTorch and a real GPU it also allocates a tensor on the device it was given; without them
it only reads the environment, so it runs anywhere (the simulated pool included).
"""

from __future__ import annotations

import os
import time

SHOWN = ("GPUPOOL_CLAIM_ID", "CUDA_VISIBLE_DEVICES", "GPUPOOL_MEMORY_LIMIT_BYTES", "GPUPOOL_COMPUTE_PERCENT")


def main() -> None:
    for key in SHOWN:
        print(f"{key}={os.environ.get(key, '')}", flush=True)
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        weights = torch.randn(1024, 1024, device="cuda")
        print(f"training on {torch.cuda.get_device_name(0)}: {float((weights @ weights).sum()):.1f}")
    for step in range(1, 4):
        time.sleep(0.2)
        print(f"step {step}/3", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
