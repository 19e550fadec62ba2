"""What the probes cost: `forward --repeat N` plain, with --attention and with --lens, on one
folder and one text, round by round so that each ratio pairs runs minutes apart at most.

    python benches/probes.py target/release/paramscope MODEL_DIR [--text T] [--rounds R] [--repeat N]

Each figure is paramscope's own median time of one pass (`"time_us"`, load excluded); with flags the
timed pass is the probed one (residual stream and attention kept, the lens's extra LM-head products
and top-k included), writing into the buffers of the pass before as the plain passes do. The
overhead is the median over rounds of (probed / plain - 1).

The lens cannot cost less than the pass plus one LM-head product per layer (the last boundary's
logits are the pass's own), so for a Llama-shaped folder (its config.json) the lens's time is also
given against that floor: the plain pass's time scaled by (pass + L head products) / pass in
multiply-adds per token, which the issue allows 30% over.
"""

import argparse
import json
import os
import statistics
import subprocess

TEXT = "The quick brown fox jumps over the lazy dog near the river."


def time_us(binary, folder, text, repeat, flags):
    out = subprocess.run(
        [binary, "forward", folder, "--json", "--text", text, "--repeat", str(repeat), *flags],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)["time_us"]


def floor_factor(folder):
    """(pass + L head products) / pass, in multiply-adds per token, of a Llama-shaped config; None
    when the folder has none."""
    try:
        with open(os.path.join(folder, "config.json")) as f:
            c = json.load(f)
        h, vocab, layers = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
        heads = c["num_attention_heads"]
        head_dim = c.get("head_dim") or h // heads
        kv = c.get("num_key_value_heads") or heads
        inter = c["intermediate_size"]
    except (OSError, KeyError, ValueError):
        return None
    block = 2 * h * heads * head_dim + 2 * h * kv * head_dim + 3 * h * inter
    head = h * vocab
    one_pass = layers * block + head
    return (one_pass + layers * head) / one_pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("folder")
    parser.add_argument("--text", default=TEXT)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--lens", action="store_true", help="also time --lens (causal LMs)")
    args = parser.parse_args()
    kinds = {"attention": ["--attention"]}
    if args.lens:
        kinds["lens"] = ["--lens"]
    ratios = {k: [] for k in kinds}
    factor = floor_factor(args.folder) if args.lens else None
    floors = []
    for r in range(args.rounds):
        plain = time_us(args.binary, args.folder, args.text, args.repeat, [])
        line = [f"round {r}: plain {plain / 1e3:.2f} ms"]
        for kind, flags in kinds.items():
            t = time_us(args.binary, args.folder, args.text, args.repeat, flags)
            ratios[kind].append(t / plain - 1)
            line.append(f"{kind} {t / 1e3:.2f} ms ({100 * (t / plain - 1):+.1f}%)")
            if kind == "lens" and factor:
                floors.append(t / (plain * factor) - 1)
                line.append(f"{100 * floors[-1]:+.1f}% over its floor")
        print(", ".join(line), flush=True)
    for kind, values in ratios.items():
        print(f"{kind}: median overhead {100 * statistics.median(values):+.1f}% over {args.rounds} rounds")
    if floors:
        print(f"lens: median {100 * statistics.median(floors):+.1f}% over the pass plus its "
              f"L head products ({factor:.2f}x the pass's multiply-adds)")


if __name__ == "__main__":
    main()
