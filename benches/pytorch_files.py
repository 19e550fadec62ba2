"""PyTorch-file figures: `paramscope tree` of a 1 GiB zip .pt (2,000 tensors) and of the same
checkpoint in the legacy layout, as whole processes, against `torch.load(mmap=True,
weights_only=True)` listing the keys as a whole Python process; and `paramscope show` of a zip .pt
holding one 1 GiB tensor against torch loading it and printing min/max/mean/std; all measured in
the same run.

    cargo build --release
    python benches/pytorch_files.py target/release/paramscope [WORKDIR]

The checkpoints (2,000 F32 tensors of 128x1024, 512 KiB each: 1 GiB) are written once into WORKDIR
(default /tmp/paramscope-bench). Each figure is the best of several runs, page cache warm.
"""
import os
import subprocess
import sys
import time

import torch

binary = sys.argv[1]
work = sys.argv[2] if len(sys.argv) > 2 else "/tmp/paramscope-bench"
os.makedirs(work, exist_ok=True)
RUNS = 5


def checkpoint(path, legacy):
    if os.path.exists(path):
        return
    state = {f"model.layers.{i // 10}.block{i % 10}.weight": torch.zeros(128, 1024) for i in range(2000)}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)


def run_process(args):
    """Best wall time and peak RSS (MiB, from /usr/bin/time) of a whole process over RUNS runs."""
    best, rss = float("inf"), 0
    for _ in range(RUNS):
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        rss = max(rss, int(done.stderr.strip().splitlines()[-1]) / 1024)
    return best, rss


LIST = ("import torch\n"
        "sd = torch.load({!r}, mmap={}, weights_only=True)\n"
        "print(len([(k, tuple(v.shape)) for k, v in sd.items()]))")

STATS = ("import torch\n"
         "t = torch.load({!r}, mmap=True, weights_only=True)['weight']\n"
         "print(t.min().item(), t.max().item(), t.mean().item(), t.std().item())")


def one_big_tensor(path):
    if os.path.exists(path):
        return
    torch.manual_seed(0)
    torch.save({"weight": torch.randn(16384, 16384)}, path)


zip_path = os.path.join(work, "tree_1gib.pt")
legacy_path = os.path.join(work, "tree_1gib_legacy.pt")
checkpoint(zip_path, legacy=False)
checkpoint(legacy_path, legacy=True)

rows = []
for label, path, mmap in (("tree, 1 GiB zip .pt / 2,000 tensors", zip_path, True),
                          ("tree, 1 GiB legacy .pt / 2,000 tensors", legacy_path, False)):
    ours, rss = run_process([binary, "tree", path, "--json"])
    theirs, theirs_rss = run_process([sys.executable, "-c", LIST.format(path, mmap)])
    what = f"torch.load(mmap={mmap}, weights_only=True) + keys, whole process"
    rows.append((label, ours, rss, what, theirs, theirs_rss))

big_path = os.path.join(work, "one_1gib_tensor.pt")
one_big_tensor(big_path)
ours, rss = run_process([binary, "show", big_path, "weight", "--json"])
theirs, theirs_rss = run_process([sys.executable, "-c", STATS.format(big_path)])
rows.append(("show, one 1 GiB tensor in a zip .pt", ours, rss,
             "torch.load(mmap=True, weights_only=True) + min/max/mean/std, whole process",
             theirs, theirs_rss))

print(f"torch {torch.__version__}, {os.cpu_count()} cores; best of {RUNS}, page cache warm\n")
print("| command | paramscope | peak RSS | reference | reference time | its RSS | ratio |")
print("|---|---|---|---|---|---|---|")
for label, ours, rss, what, theirs, theirs_rss in rows:
    print(f"| {label} | {ours * 1000:.1f} ms | {rss:.1f} MiB | {what} | {theirs * 1000:.1f} ms "
          f"| {theirs_rss:.0f} MiB | {ours / theirs:.2f}x |")
