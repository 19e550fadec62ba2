"""Dequantize + statistics of a 1 GiB Q4_K GGUF tensor: `paramscope show` against gguf-py's
`quants.dequantize` plus numpy's statistics, each as a whole process.

The file holds one Q4_K tensor of 466,033 x 4096 values (1.0 GiB of blocks: random bytes with
sane f16 scales, as valid as any quantizer's output). gguf-py dequantizes it in slices of 8,192
rows (its whole-tensor dequantize would need 7.6 GB for the output and as much again for the
statistics' temporaries), accumulating min, max, sum and sum of squares in float64: the same
work paramscope does, in numpy's fastest form.

Run: cargo build --release && python benches/gguf.py [PARAMSCOPE] [--keep]
(PARAMSCOPE defaults to target/release/paramscope.)
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This script's own name would shadow the gguf package it benchmarks against.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ROOT = Path(__file__).resolve().parent.parent
ARGS = [a for a in sys.argv[1:] if a != "--keep"]
BINARY = Path(ARGS[0]) if ARGS else ROOT / "target" / "release" / "paramscope"
ROWS, COLS = 466_033, 4096
BLOCK_BYTES = 144

GGUF_PY = r"""
import sys
import numpy as np
from gguf import GGUFReader, GGMLQuantizationType, quants
reader = GGUFReader(sys.argv[1])
data = reader.tensors[0].data
lo, hi, total, squares, n = np.inf, -np.inf, 0.0, 0.0, 0
for start in range(0, data.shape[0], 8192):
    x = quants.dequantize(data[start:start + 8192], GGMLQuantizationType.Q4_K)
    lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    total += float(x.sum(dtype=np.float64))
    squares += float(np.square(x, dtype=np.float64).sum())
    n += x.size
mean = total / n
std = ((squares - n * mean * mean) / (n - 1)) ** 0.5
print(f"min {lo} max {hi} mean {mean} std {std}")
"""


def write_file(path):
    from gguf import GGMLQuantizationType, GGUFWriter

    rng = np.random.default_rng(0)
    blocks = np.empty((ROWS, COLS // 256 * BLOCK_BYTES), dtype=np.uint8)
    for start in range(0, ROWS, 65536):
        part = blocks[start:start + 65536].reshape(-1, BLOCK_BYTES)
        part[:] = rng.integers(0, 256, size=part.shape, dtype=np.uint8)
        scales = rng.uniform(0.001, 0.05, size=(part.shape[0], 2)).astype(np.float16)
        part[:, 0:4] = scales.view(np.uint8)
    writer = GGUFWriter(path, "llama")
    writer.add_tensor("blk.0.weight", blocks, raw_dtype=GGMLQuantizationType.Q4_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def timed(command):
    start = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, out


def main():
    folder = Path(tempfile.mkdtemp(prefix="gguf-bench-"))
    path = folder / "q4k.gguf"
    write_file(path)
    print(f"{path}: {path.stat().st_size / 2**30:.2f} GiB")
    # Warm the page cache so that both sides read from memory.
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    ours, out = timed([str(BINARY), "show", str(path), "blk.0.weight", "--limit", "0"])
    print(f"paramscope show: {ours:.2f} s")
    print("  " + " | ".join(l.strip() for l in out.splitlines() if l.split()[:1] in (["min"], ["mean"], ["std"])))
    theirs, out = timed([sys.executable, "-c", GGUF_PY, str(path)])
    print(f"gguf-py dequantize + numpy stats: {theirs:.2f} s")
    print("  " + out.strip())
    print(f"ratio: {ours / theirs:.3f}x")
    if "--keep" not in sys.argv:
        path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
