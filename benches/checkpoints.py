"""Checkpoint figures for the README: `tree` and `show` as whole processes against the reference
implementation (safetensors + PyTorch) in-process, measured in the same run.

    cargo build --release
    python -m venv .venv && .venv/bin/pip install -r tests/fixtures/requirements.txt
    python benches/checkpoints.py target/release/paramscope [WORKDIR]

It writes three checkpoints into WORKDIR (default /tmp/paramscope-bench): 1 GiB and 100 GiB files of
2,000 F32 tensors each (sparse: `tree` must only read the header, so the data can be holes), and a
1 GiB file holding one 16384x16384 F32 tensor of normal values (real data, for `show`'s statistics).
Each figure is the best of several runs, with the page cache warm, as a user re-opening a file sees.
"""
import json
import os
import resource
import struct
import subprocess
import sys
import time

binary = sys.argv[1]
work = sys.argv[2] if len(sys.argv) > 2 else "/tmp/paramscope-bench"
os.makedirs(work, exist_ok=True)
RUNS = 7


def sparse_checkpoint(path, tensors, rows, cols):
    """2,000-tensor checkpoint whose data is a hole: only the header is written."""
    header, offset = {}, 0
    for i in range(tensors):
        size = rows * cols * 4
        header[f"model.layers.{i // 10}.block {i % 10}.weight"] = {
            "dtype": "F32", "shape": [rows, cols], "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)


def dense_checkpoint(path):
    import numpy as np
    from safetensors.numpy import save_file
    if not os.path.exists(path):
        x = np.random.default_rng(0).standard_normal((16384, 16384), dtype=np.float32)
        save_file({"weight": x}, path)


def run_process(args):
    """Best wall time and peak RSS (MiB, read by /usr/bin/time: a child forked from this Python
    would report the parent's memory from before its exec) of a whole process over RUNS runs."""
    best, rss = float("inf"), 0
    for _ in range(RUNS):
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        rss = max(rss, int(done.stderr.strip().splitlines()[-1]) / 1024)
    return best, rss


def best_of(fn):
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


one = os.path.join(work, "tree_1gib.safetensors")
hundred = os.path.join(work, "tree_100gib.safetensors")
dense = os.path.join(work, "dense_1gib.safetensors")
sparse_checkpoint(one, 2000, 128, 1024)          # 2,000 x 512 KiB = 1 GiB
sparse_checkpoint(hundred, 2000, 12800, 1024)    # 2,000 x 50 MiB = 100 GiB
dense_checkpoint(dense)

from safetensors import safe_open  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def list_reference(path):
    # framework="numpy": with "pt", safetensors maps through torch, which cannot map 100 GiB here
    # ("unable to mmap ... Cannot allocate memory"); the header reading is the same Rust code.
    with safe_open(path, framework="numpy") as f:
        return [(k, f.get_slice(k).get_shape()) for k in f.keys()]


def stats_reference(path):
    x = load_file(path)["weight"]
    return x.min().item(), x.max().item(), x.mean().item(), x.std().item()


LIST = ("from safetensors import safe_open\n"
        "with safe_open({!r}, framework='numpy') as f:\n"
        "    print(len([(k, f.get_slice(k).get_shape()) for k in f.keys()]))")

rows = []
for label, path in (("tree, 1 GiB / 2,000 tensors", one), ("tree, 100 GiB / 2,000 tensors", hundred)):
    ours, rss = run_process([binary, "tree", path, "--json"])
    assert len(list_reference(path)) == 2000
    theirs = best_of(lambda: list_reference(path))
    rows.append((label, ours, rss, "safe_open + keys + shapes, in-process", theirs))
    whole, _ = run_process([sys.executable, "-c", LIST.format(path)])
    rows.append((label, ours, rss, "the same as a whole Python process", whole))
ours, rss = run_process([binary, "show", dense, "weight", "--limit", "10"])
theirs = best_of(lambda: stats_reference(dense))
rows.append(("show (stats), 1 GiB F32 16384x16384", ours, rss, "load_file + min/max/mean/std, in-process", theirs))

print(f"torch {torch.__version__}, {os.cpu_count()} cores; best of {RUNS}, page cache warm\n")
print("| command | paramscope (whole process) | peak RSS | reference | reference time | ratio |")
print("|---|---|---|---|---|---|")
for label, ours, rss, what, theirs in rows:
    print(f"| {label} | {ours * 1000:.1f} ms | {rss:.1f} MiB | {what} | {theirs * 1000:.1f} ms | {ours / theirs:.2f}x |")
