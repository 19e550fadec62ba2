"""`paramscope diff` of two 1 GiB F32 files against `paramscope show` reading both (issue 19's yardstick:
diff at most 1.3x), each a whole process, taking turns pair by pair; the ratio is the median of the
pairs' ratios.

    cargo build --release
    python benches/diff_bandwidth.py [--dir DIR] [--binary target/release/paramscope] [--pairs 7]

DIR gets a.safetensors (one 16384x16384 tensor `t` of N(0, 1)), half.safetensors (every other row
moved by 1e-3) and all.safetensors (every element scaled by 1.001), made once and reused; every file
is read once before timing so that both contenders start from the page cache.
"""

import argparse
import os
import statistics
import subprocess
import time

import numpy as np
from safetensors.numpy import save_file


def make(folder):
    paths = {name: os.path.join(folder, f"{name}.safetensors") for name in ("a", "half", "all")}
    if not all(os.path.exists(p) for p in paths.values()):
        os.makedirs(folder, exist_ok=True)
        a = np.random.default_rng(0).standard_normal((16384, 16384), dtype=np.float32)
        save_file({"t": a}, paths["a"])
        half = a.copy()
        half[::2] += np.float32(1e-3)
        save_file({"t": half}, paths["half"])
        save_file({"t": a * np.float32(1.001)}, paths["all"])
    for p in paths.values():
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    return paths


def seconds(commands):
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/paramscope-diff-bench")
    parser.add_argument("--binary", default="target/release/paramscope")
    parser.add_argument("--pairs", type=int, default=7)
    args = parser.parse_args()
    paths = make(args.dir)
    for other in ("half", "all"):
        diff = [[args.binary, "diff", paths["a"], paths[other]]]
        show = [[args.binary, "show", paths["a"], "t"], [args.binary, "show", paths[other], "t"]]
        seconds(diff), seconds(show)  # warm-up
        pairs = [(seconds(diff), seconds(show)) for _ in range(args.pairs)]
        ratio = statistics.median(d / s for d, s in pairs)
        print(
            f"{other:>4} changed: diff {statistics.median(d for d, _ in pairs):.3f} s, "
            f"show of both {statistics.median(s for _, s in pairs):.3f} s, "
            f"median ratio {ratio:.2f}x over {args.pairs} pairs"
        )


if __name__ == "__main__":
    main()
