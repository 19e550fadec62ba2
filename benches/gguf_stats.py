"""Dequantized statistics of every ggml type against the F32 statistics pass, in elements per
second: `paramscope show FILE blk.0.weight --limit 0` (min, max, mean, std, zeros, NaN, Inf and
the quantiles) as a whole process, on one tensor of ROWS x 4096 values per type (random blocks,
as any quantizer's output is to the decoder) and on the same count of F32 values.

    python benches/gguf_stats.py PARAMSCOPE [WORKDIR] [--rows N]

Issue 22's target: each type at least a quarter of F32's elements per second. Each figure is the
best of 3 runs with the page cache warm, F32 timed between the types.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# This folder's gguf.py would shadow the gguf package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf import GGUFWriter  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES  # noqa: E402

COLS = 4096
# Every type a GGUF file stores its weights in (ggml's Q8_1 and Q8_K live only inside its dot
# products, and no file holds them).
TYPES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
         "Q6_K", "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_NL",
         "IQ4_XS", "TQ1_0", "TQ2_0", "MXFP4"]


def write(path, rows, qt):
    rng = np.random.default_rng(0)
    writer = GGUFWriter(str(path), "llama")
    if qt == T.F32:
        writer.add_tensor("blk.0.weight", rng.standard_normal((rows, COLS), dtype=np.float32))
    else:
        values, size = GGML_QUANT_SIZES[qt]
        blocks = rng.integers(0, 256, size=(rows, COLS // values * size), dtype=np.uint8)
        writer.add_tensor("blk.0.weight", blocks, raw_dtype=qt)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def best(binary, path):
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([binary, "show", str(path), "blk.0.weight", "--limit", "0"],
                       stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("work", nargs="?", default="/tmp/paramscope-bench-gguf-stats")
    parser.add_argument("--rows", type=int, default=58368)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    numel = args.rows * COLS
    f32 = work / "F32.gguf"
    if not f32.exists():
        write(f32, args.rows, T.F32)
    worst = None
    for name in TYPES:
        qt = T[name]
        path = work / f"{qt.name}.gguf"
        if not path.exists():
            write(path, args.rows, qt)
        ours = best(args.binary, path)
        reference = best(args.binary, f32)
        ratio = reference / ours
        worst = ratio if worst is None else min(worst, ratio)
        print(f"{qt.name:8} {ours:6.3f} s  {numel / ours / 1e9:5.2f} G values/s  "
              f"F32 {reference:6.3f} s  {ratio:5.2f}x F32's rate", flush=True)
        path.unlink()
    print(f"slowest type: {worst:.2f}x F32's elements per second (target 0.25x)")


if __name__ == "__main__":
    main()
