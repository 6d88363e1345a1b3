"""How many BLAS threads a matrix product should get: the measurements behind numpyrnn's policy.

    python tools/gemm_threads.py [--repeat 9] [--dtype float32] [--json out.json]

For the products numpyrnn runs — the recurrent step's (B, H) × (H, G·H), the input projection
(T·B, I) × (I, G·H), the weight gradients (G·H, T·B) × (T·B, I), and larger ones up to the bench's
biggest shape — each is timed with NumPy's BLAS on one thread and on every core, first on a quiet
machine, then beside one busy single-threaded process (a Python loop the tool starts and ends
itself).  The conditions take turns in rounds; the table gives the median of each and the
ratios: threads ÷ one thread, quiet and busy.  numpyrnn's policy (numpyrnn.backend.THREAD_POLICY)
reads its size threshold off this table: the smallest product where every core is faster than
one thread quiet and no slower than one thread beside the busy process.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
from threadpoolctl import ThreadpoolController

from busy_machine import busy_process   # the busy process beside a measurement (tools/)

# (m, k, n): the product (m, k) × (k, n), named by where numpyrnn meets it
SHAPES = [
    ("step, B 32 H 64 LSTM", (32, 64, 256)),
    ("step, B 64 H 128 LSTM", (64, 128, 512)),
    ("step, B 64 H 256 LSTM", (64, 256, 1024)),
    ("step, B 128 H 256 LSTM", (128, 256, 1024)),
    ("input proj., T·B 2048 I 32 LSTM H 64", (2048, 32, 256)),
    ("input proj., T·B 2048 I 16 GRU H 64", (2048, 16, 192)),
    ("dW_hh, T·B 2048 H 64 LSTM", (256, 2048, 64)),
    ("input proj., T·B 3200 I 32 LSTM H 64", (3200, 32, 256)),
    ("dW_hh, T·B 3200 H 64 LSTM", (256, 3200, 64)),
    ("input proj., T·B 6400 I 128 LSTM H 256", (6400, 128, 1024)),
    ("dW_hh, T·B 6400 H 256 LSTM", (1024, 6400, 256)),
    ("dx, T·B 6400 LSTM H 256 I 128", (6400, 1024, 128)),
    ("head, T·B 2048 H 256 V 65", (2048, 256, 65)),
    ("square 512", (512, 512, 512)),
    ("square 1024", (1024, 1024, 1024)),
]


def time_product(a, b, out, repeat):
    """Median seconds of a @ b into out, after two warm-up calls."""
    for _ in range(2):
        np.matmul(a, b, out=out)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=9, help="timed calls per condition and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the four conditions")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--json", help="write the measurements here")
    args = p.parse_args(argv)
    controller = ThreadpoolController().select(user_api="blas")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    full = max(lib["num_threads"] for lib in controller.info())
    rng = np.random.default_rng(0)
    print(f"{cores} usable cores; BLAS: " + ", ".join(f"{lib['internal_api']} {lib['version']} "
                                                       f"({lib['num_threads']} threads)" for lib in controller.info()))
    rows = []
    for name, (m, k, n) in SHAPES:
        a = rng.standard_normal((m, k)).astype(args.dtype)
        b = rng.standard_normal((k, n)).astype(args.dtype)
        out = np.empty((m, n), args.dtype)
        repeat = max(3, min(args.repeat * 20, int(args.repeat * 2e8 / (2 * m * k * n))))
        times = {key: [] for key in ("quiet 1", f"quiet {full}", "busy 1", f"busy {full}")}
        for _ in range(args.rounds):
            for condition in ("quiet", "busy"):
                spinner = busy_process() if condition == "busy" else None
                try:
                    if spinner is not None:
                        time.sleep(0.3)          # the spinner is running
                    for threads in (1, full):
                        with controller.limit(limits=threads):
                            times[f"{condition} {threads}"].append(time_product(a, b, out, repeat))
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
        med = {key: statistics.median(v) for key, v in times.items()}
        row = {"name": name, "shape": [m, k, n], "mflop": 2 * m * k * n / 1e6,
               **{f"{key} ms": 1e3 * v for key, v in med.items()},
               "quiet ratio": med[f"quiet {full}"] / med["quiet 1"], "busy ratio": med[f"busy {full}"] / med["busy 1"]}
        rows.append(row)
        print(f"{name:<40} {row['mflop']:>8.1f} MFLOP  quiet 1: {row['quiet 1 ms']:8.3f} ms  {full}: "
              f"{row[f'quiet {full} ms']:8.3f} ms ({row['quiet ratio']:.2f}×)   busy 1: {row['busy 1 ms']:8.3f} ms  "
              f"{full}: {row[f'busy {full} ms']:8.3f} ms ({row['busy ratio']:.2f}×)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cores": cores, "threads": full, "dtype": args.dtype, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
