"""`paramscope diff` of two 1 GiB checkpoints against a numpy script computing the same figures,
each timed as a whole process (start, load, compute, print).

    cargo build --release
    python benches/compare.py [--dir DIR] [--binary target/release/paramscope]

The two files (64 float32 tensors of 16 MiB each; B moves half of them a little) are written to
DIR once and reused. Both files are read once before timing, so both contenders start from the
page cache. The numpy script is the one a user would write: safetensors' numpy loader, then per
tensor in float64 (paramscope accumulates in f64 too) max|B-A|, ||B-A||/||A||, cosine, the share
of bit-identical elements and the five rows that moved most.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import save_file

TENSORS = 64
SHAPE = (2048, 2048)  # 16 MiB of float32

NUMPY_DIFF = r'''
import json, sys
import numpy as np
from safetensors import safe_open

out = []
with safe_open(sys.argv[1], "np") as fa, safe_open(sys.argv[2], "np") as fb:
    for name in fa.keys():
        a = fa.get_tensor(name)
        b = fb.get_tensor(name)
        same = a.view(np.uint32) == b.view(np.uint32)
        a = a.astype(np.float64)
        b = b.astype(np.float64)
        d = b - a
        rows = np.sqrt((d ** 2).sum(axis=1))
        out.append({
            "name": name,
            "max_abs_diff": float(np.abs(d).max()),
            "rel_l2": float(np.linalg.norm(d) / np.linalg.norm(a)),
            "cosine": float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b))),
            "identical_fraction": float(same.mean()),
            "rows": np.argsort(-rows, kind="stable")[:5].tolist(),
        })
print(json.dumps(out))
'''


def make(directory):
    a_path, b_path = os.path.join(directory, "a.safetensors"), os.path.join(directory, "b.safetensors")
    if os.path.exists(a_path) and os.path.exists(b_path):
        return a_path, b_path
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    a = {f"layers.{i}.weight": rng.standard_normal(SHAPE, dtype=np.float32) * 0.02 for i in range(TENSORS)}
    save_file(a, a_path)
    for i in range(0, TENSORS, 2):
        a[f"layers.{i}.weight"] += rng.standard_normal(SHAPE, dtype=np.float32) * 1e-4
    save_file(a, b_path)
    return a_path, b_path


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/tmp/paramscope-bench-compare")
    parser.add_argument("--binary", default="target/release/paramscope")
    args = parser.parse_args()
    a, b = make(args.dir)
    for path in (a, b):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    ours = timed([args.binary, "diff", a, b, "--json"])
    theirs = timed([sys.executable, "-c", NUMPY_DIFF, a, b])
    size = os.path.getsize(a) / 2**30
    print(f"two {size:.2f} GiB files, {TENSORS} tensors each")
    print(f"paramscope diff --json  {ours:8.2f} s")
    print(f"numpy script            {theirs:8.2f} s")
    print(f"ratio                   {ours / theirs:8.2f}x")


if __name__ == "__main__":
    main()
