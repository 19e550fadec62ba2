"""PyTorch's time for one forward pass of the chapter's rgnet at batch 2, measured in-process.

The peer of `paramscope forward demo:rgnet --batch 2 --repeat N --json` ("time_us"): the same net,
built as tests/fixtures/make_fixtures.py builds it, called as `rgnet(X)` under `torch.no_grad()`.

    $VENV/bin/python benches/peers_torch.py            # torch's default threads
    $VENV/bin/python benches/peers_torch.py --threads 1

Prints the median time of one call in microseconds, over several rounds.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from make_fixtures import rgnet  # noqa: E402  the chapter's net, built once for tests and benches


def median_us(fn, calls):
    """Median of `calls` timed calls, after a warm-up, in microseconds."""
    for _ in range(1000):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = rgnet().eval()
    x = torch.rand(2, 4)
    with torch.no_grad():
        rounds = [median_us(lambda: net(x), args.calls) for _ in range(args.rounds)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("rgnet(X) at batch 2, median us per call, per round:", " ".join(f"{r:.1f}" for r in rounds))
    print(f"median of rounds: {sorted(rounds)[len(rounds) // 2]:.1f} us")


if __name__ == "__main__":
    main()
