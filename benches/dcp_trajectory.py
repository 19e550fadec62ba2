"""Peak memory of `paramscope trajectory` over distributed checkpoints (issue 24's budget: at most 3x
the largest tensor + 100 MiB, mapped pages included), against the whole-run size it would hold if
every tensor of every checkpoint were kept once read.

    python benches/dcp_trajectory.py target/release/paramscope WORK [--steps 4] [--tensors 8] [--side 2048]

Writes WORK/step_K with torch.distributed.checkpoint.save (one process: each tensor one chunk, read
in place from its shard file) unless they are there, then runs the trajectory under
/usr/bin/time and prints its peak resident set.
"""

import argparse
import os
import subprocess


def make(work, steps, tensors, side):
    import torch
    import torch.distributed.checkpoint as dcp

    torch.manual_seed(0)
    state = {f"layers.{i}.weight": torch.randn(side, side) for i in range(tensors)}
    for step in range(steps):
        for value in state.values():
            value.add_(torch.randn_like(value) * 0.01)
        dcp.save(state, checkpoint_id=os.path.join(work, f"step_{step}"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("work")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tensors", type=int, default=8)
    parser.add_argument("--side", type=int, default=2048)
    args = parser.parse_args()
    folders = [os.path.join(args.work, f"step_{k}") for k in range(args.steps)]
    if not all(os.path.isdir(f) for f in folders):
        os.makedirs(args.work, exist_ok=True)
        make(args.work, args.steps, args.tensors, args.side)
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M %e", args.binary, "trajectory", *folders, "--json"],
        check=True, capture_output=True, text=True,
    )
    peak_kib, seconds = out.stderr.strip().splitlines()[-1].split()
    tensor_mib = args.side * args.side * 4 / 2**20
    print(f"peak {int(peak_kib) / 1024:.1f} MiB in {seconds} s; budget {3 * tensor_mib + 100:.0f} MiB "
          f"(3 x {tensor_mib:.0f} MiB + 100); every checkpoint whole: "
          f"{args.steps * args.tensors * tensor_mib:.0f} MiB")


if __name__ == "__main__":
    main()
