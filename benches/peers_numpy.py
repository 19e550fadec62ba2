"""numpy's sgemm (OpenBLAS) on the shapes of benches/kernel.rs, in GFLOP/s.

Run with the machine's OpenBLAS overrides unset, so OpenBLAS picks its own kernel for this CPU,
and the thread count given explicitly:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        $VENV/bin/python benches/peers_numpy.py

threadpoolctl's report at the end names the kernel that ran ("architecture").
"""

import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

# (m, k, n, nt): nt means B is the transpose of a row-major [n, k] weight, as in x @ w.T.
SHAPES = [(s, s, s, False) for s in (64, 128, 256, 512, 1024, 2048)] + [
    (32, 4096, 4096, True),
    (1, 4096, 4096, True),
    (64, 256, 512, True),
    (2, 4, 8, True),
]


def median_seconds(fn, budget=2.0):
    """Median time of fn over as many runs as fit in the budget (at least 5, after a warm-up)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 2000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    # An optional argument keeps only the shapes whose name contains it ("1x4096x4096").
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    rng = np.random.default_rng(0)
    for m, k, n, nt in SHAPES:
        if only not in f"{m}x{k}x{n}{' NT' if nt else ''}":
            continue
        a = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((n, k) if nt else (k, n), dtype=np.float32)
        b = w.T if nt else w
        c = np.empty((m, n), dtype=np.float32)
        secs = median_seconds(lambda: np.matmul(a, b, out=c))
        name = f"{m}x{k}x{n}{' NT' if nt else ''}"
        print(f"{name:>16}  {secs * 1e6:12.2f} us  {2 * m * k * n / secs / 1e9:8.2f} GFLOP/s")
    for info in threadpool_info():
        print(info)


if __name__ == "__main__":
    main()
