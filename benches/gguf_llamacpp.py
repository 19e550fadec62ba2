"""paramscope against llama.cpp itself on the same GGUF file: a 32-token prompt and 32 greedy tokens
after it, one thread and two. llama.cpp is llama-cpp-python's, compiled on this machine for its CPU.

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON \
      -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON" \
      pip install llama-cpp-python==0.3.36
    python benches/gguf_llamacpp.py target/release/paramscope SmolLM2-135M-Instruct.Q4_1.gguf

(GGML_NATIVE=ON also builds ggml's AMX kernels on a CPU that reports AMX, and on this VM their
first product crashes with SIGSEGV in ggml_backend_amx_mul_mat; these flags build every other
kernel this CPU runs.)

Both get the same token ids (paramscope's tokenizer, the text of benches/gguf_common.py). paramscope
times its own passes (`--repeat N`'s median, `--generate 32`'s whole generation); llama.cpp is timed
in process with time.perf_counter, the median of the same number of prompt evaluations after a
warm-up, and one generation (prompt, then 32 tokens each taken as the argmax of its logits). A
prompt through llama.cpp computes the logits of its last position only; paramscope's (like
transformers') computes every position's, 1.8 of the pass's 8.6 GFLOP on SmolLM2.
"""

import statistics
import time

import numpy as np
from llama_cpp import Llama

from gguf_common import TEXT, arguments, ours, summary, tokens


def theirs(gguf, ids, threads, repeat):
    """Median prompt time (s), generation time (s) and the generated ids."""
    llm = Llama(model_path=gguf, n_ctx=256, n_batch=64, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    times = []
    for i in range(repeat + 1):
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        if i:
            times.append(time.perf_counter() - start)
    llm.reset()
    start = time.perf_counter()
    llm.eval(ids)
    generated = []
    vocab = llm.n_vocab()
    for _ in range(32):
        # The last position's logits, straight from the context: llama-cpp-python 0.3.36 keeps
        # `scores` only with logits_all, which would make llama.cpp compute every position's.
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))  # noqa: SLF001
        token = int(np.argmax(logits))
        generated.append(token)
        llm.eval([token])
    return statistics.median(times), time.perf_counter() - start, generated


def main():
    args = arguments(__doc__)
    ids = ours(args.binary, args.gguf, 1, ["--text", TEXT])["tokens"][0][:32]
    assert len(ids) == 32, f"the text is {len(ids)} tokens, not 32"
    for threads in (1, 2):
        prompt, generation = [], []
        for _ in range(args.rounds):
            their_prompt, their_gen, their_ids = theirs(args.gguf, ids, threads, args.repeat)
            mine = ours(args.binary, args.gguf, threads, [*tokens(ids), "--repeat", str(args.repeat)])
            gen = ours(args.binary, args.gguf, threads, [*tokens(ids), "--generate", "32"])["generated"]
            prompt.append((mine["time_us"] / 1e6, their_prompt))
            generation.append((gen["time_us"] / 1e6, their_gen))
            same = sum(a == b for a, b in zip(gen["ids"], their_ids))
            print(f"{threads} thread(s): prompt {mine['time_us'] / 1e3:.1f} ms vs {their_prompt * 1e3:.1f} ms, "
                  f"32 tokens {gen['time_us'] / 1e6:.2f} s vs {their_gen:.2f} s "
                  f"({same} of 32 generated ids the same)", flush=True)
        summary(threads, "llama.cpp", prompt, generation)

if __name__ == "__main__":
    main()
