"""Training figures for the README: `tree` of a distributed checkpoint against `tree` of the same
model as one safetensors file, and `trajectory` against numpy reading every checkpoint once.

    python benches/training.py PARAMSCOPE [WORKDIR] [--tensors N] [--ranks R] [--mb MB] [--steps S]
                               [--tree-only] [--pairs P]

It writes into WORKDIR (default /tmp/paramscope-bench-training):
- dcp/: `dcp.save` by R gloo ranks (default 8) of N tensors (default 2,000), each a DTensor
  Shard(0) of 8R x 64 F32 rows, and model.safetensors holding the same tensors whole;
- run/step_K: S checkpoints (default 10) of a model of MB megabytes (default 400) in 20 F32
  tensors, each a little away from the one before.
Each figure is the best of several whole-process runs with the page cache warm; peak RSS is
/usr/bin/time's (mapped pages included). With --pairs P, the two trees then also run in P pairs
taking turns, each process timed by its own user + system CPU time (what a shared machine's other
work disturbs least), and the ratio is the median of the pairs' ratios.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

RUNS = 5


def best(args):
    """Best wall time (s) and peak RSS (MiB) of a whole process over RUNS runs."""
    wall, rss = float("inf"), 0.0
    for _ in range(RUNS):
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=True)
        wall = min(wall, time.perf_counter() - start)
        rss = max(rss, int(done.stderr.strip().splitlines()[-1]) / 1024)
    return wall, rss


def cpu(args):
    """User + system CPU time (s) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def dcp_worker(rank, world, folder, tensors):
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29533"
    dist.init_process_group("gloo", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    g = torch.Generator().manual_seed(rank)
    state = {
        f"model.layers.{i // 10}.block{i % 10}.weight": DTensor.from_local(
            torch.randn(8, 64, generator=g), mesh, [Shard(0)], run_check=False)
        for i in range(tensors)
    }
    dcp.save(state, checkpoint_id=folder)
    dist.destroy_process_group()


def make_dcp(work, tensors, ranks):
    import torch.multiprocessing as mp
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    import torch

    folder = os.path.join(work, "dcp")
    if not os.path.exists(os.path.join(folder, ".metadata")):
        mp.spawn(dcp_worker, args=(ranks, folder, tensors), nprocs=ranks, join=True)
    single = os.path.join(work, "model.safetensors")
    if not os.path.exists(single):
        dcp_to_torch_save(folder, single + ".pt")
        save_file(torch.load(single + ".pt"), single)
        os.remove(single + ".pt")
    return folder, single


def make_run(work, mb, steps):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    count = 20
    rows = mb * (1 << 20) // (count * 1024 * 4)
    base = {f"layers.{i}.weight": rng.standard_normal((rows, 1024), dtype=np.float32)
            for i in range(count)}
    paths = []
    for step in range(steps):
        folder = os.path.join(work, "run", f"step_{step}")
        paths.append(folder)
        if os.path.exists(os.path.join(folder, "model.safetensors")):
            continue
        os.makedirs(folder, exist_ok=True)
        for w in base.values():
            w += np.float32(1e-3) * rng.standard_normal(w.shape, dtype=np.float32)
        save_file(base, os.path.join(folder, "model.safetensors"))
    return os.path.join(work, "run"), paths


NUMPY_READ = """
import sys
from safetensors.numpy import load_file
for path in sys.argv[1:]:
    for name, w in load_file(path + "/model.safetensors").items():
        w.sum()
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("work", nargs="?", default="/tmp/paramscope-bench-training")
    p.add_argument("--tensors", type=int, default=2000)
    p.add_argument("--ranks", type=int, default=8)
    p.add_argument("--mb", type=int, default=400)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--tree-only", action="store_true", help="measure tree alone (no 4 GB run)")
    p.add_argument("--pairs", type=int, default=0, help="also time tree in this many pairs")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)

    folder, single = make_dcp(a.work, a.tensors, a.ranks)
    t_dcp, m_dcp = best([a.binary, "tree", folder])
    t_st, m_st = best([a.binary, "tree", single])
    print(f"tree, DCP folder of {a.ranks} ranks, {a.tensors} tensors: {t_dcp * 1e3:.1f} ms, "
          f"{m_dcp:.1f} MiB; same model as one safetensors file: {t_st * 1e3:.1f} ms, "
          f"{m_st:.1f} MiB; ratio {t_dcp / t_st:.2f}x")
    if a.pairs:
        pairs = [(cpu([a.binary, "tree", folder]), cpu([a.binary, "tree", single]))
                 for _ in range(a.pairs)]
        ratios = sorted(d / s for d, s in pairs)
        print(f"tree in {a.pairs} pairs taking turns, CPU time: DCP folder median "
              f"{statistics.median(d for d, _ in pairs) * 1e3:.2f} ms, safetensors file median "
              f"{statistics.median(s for _, s in pairs) * 1e3:.2f} ms; ratio median "
              f"{statistics.median(ratios):.2f}x (quartiles {ratios[len(ratios) // 4]:.2f}x to "
              f"{ratios[3 * len(ratios) // 4]:.2f}x), load average {os.getloadavg()[0]:.2f}")
    if a.tree_only:
        return

    run, paths = make_run(a.work, a.mb, a.steps)
    t_traj, m_traj = best([a.binary, "trajectory", run, "--json"])
    t_np, m_np = best([sys.executable, "-c", NUMPY_READ, *paths])
    largest = a.mb / 20
    print(f"trajectory over {a.steps} checkpoints of {a.mb} MB: {t_traj:.2f} s, {m_traj:.0f} MiB "
          f"peak (largest tensor {largest:.0f} MB); numpy reading every file once: {t_np:.2f} s, "
          f"{m_np:.0f} MiB; ratio {t_traj / t_np:.2f}x")


if __name__ == "__main__":
    main()
