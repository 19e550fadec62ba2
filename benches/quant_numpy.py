"""numpy's F32 GEMV, 1 x 4096 x 4096 (x @ w.T), the peer of benches/quant.rs, in ms and GB/s.

    OPENBLAS_NUM_THREADS=1 python benches/quant_numpy.py
"""

import time

import numpy as np

rng = np.random.default_rng(0)
w = rng.random((4096, 4096), dtype=np.float32) - 0.5
x = rng.random((1, 4096), dtype=np.float32) - 0.5
for _ in range(2):
    x @ w.T
times = []
for _ in range(30):
    t = time.perf_counter()
    x @ w.T
    times.append(time.perf_counter() - t)
t = sorted(times)[len(times) // 2]
print(f"F32 GEMV (numpy):        {t * 1e3:8.3f} ms  {w.nbytes / t / 1e9:6.1f} GB/s")
