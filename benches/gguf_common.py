"""What the two GGUF benches share (gguf_run.py against transformers, gguf_llamacpp.py against
llama.cpp): the text, paramscope's run, and the summary of paired timings."""

import argparse
import json
import os
import statistics
import subprocess

TEXT = (
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined movable metal type with an oil-based ink and a screw press to print the first books in "
    "Europe"
)


def ours(binary, gguf, threads, extra):
    """`paramscope forward GGUF --json EXTRA...` on `threads` threads, its JSON."""
    env = dict(os.environ, PARAMSCOPE_THREADS=str(threads))
    out = subprocess.run([binary, "forward", gguf, "--json", *extra], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def tokens(ids):
    """The `--tokens` arguments for `ids`."""
    return ["--tokens", ",".join(map(str, ids))]


def summary(threads, peer, prompt, generation):
    """Prints the medians of (paramscope, peer) second pairs and the median of their ratios."""
    for label, pairs in (("32-token prompt", prompt), ("32 generated tokens", generation)):
        ratio = statistics.median(t / m for m, t in pairs)
        print(f"{threads} thread(s), {label}: paramscope {statistics.median(m for m, _ in pairs) * 1e3:.1f} ms, "
              f"{peer} {statistics.median(t for _, t in pairs) * 1e3:.1f} ms: {ratio:.2f}x")


def arguments(doc):
    """The two benches' command line: BINARY GGUF [--rounds R] [--repeat N]."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("gguf")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    return parser.parse_args()
