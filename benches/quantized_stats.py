#!/usr/bin/env python3
"""One big block-FP8 weight (its codes and 128x128 scales) and the same values as F32, and a GPTQ
4-bit weight (v2 zeros, groups of 128, F16 scales) of N x 2N values (1 GiB dequantized, as the
F32 file), for timing `paramscope show` (statistics of the dequantized values against the F32 pass):
    python benches/quantized_stats.py /tmp/qstats [N [target/release/paramscope]]   # N x N (default 8192)
The files are made once. Given the binary, `show FILE w.weight --limit 1` of each file is timed as a
whole process, taking turns, RUNS times each, and the medians printed with their ratios: each
dequantized pass's speed in values per second against the F32 pass's (issue 25 asks for at least
0.5x)."""
import json, os, statistics, subprocess, sys, time

folder, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8192
RUNS = 8


def make():
    import torch
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    codes = (torch.randn(n, n) * 64).clamp(-448, 448).to(torch.float8_e4m3fn)
    scales = torch.rand(n // 128, n // 128) * 0.01
    save_file({"w.weight": codes, "w.weight_scale_inv": scales}, os.path.join(folder, "fp8.safetensors"))
    values = codes.float() * scales.repeat_interleave(128, 0).repeat_interleave(128, 1)
    save_file({"w.weight": values}, os.path.join(folder, "f32.safetensors"))
    gptq = os.path.join(folder, "gptq")
    os.makedirs(gptq, exist_ok=True)
    out, inputs, group, word = n, 2 * n, 128, (-(2**31), 2**31 - 1)
    save_file({"w.qweight": torch.randint(*word, (inputs // 8, out), dtype=torch.int32),
               "w.qzeros": torch.randint(*word, (inputs // group, out // 8), dtype=torch.int32),
               "w.scales": (torch.rand(inputs // group, out) * 0.01).to(torch.float16)},
              os.path.join(gptq, "model.safetensors"))
    with open(os.path.join(gptq, "config.json"), "w") as f:
        json.dump({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": group,
                                           "checkpoint_format": "gptq_v2"}}, f)


FILES = {"f32": "f32.safetensors", "fp8": "fp8.safetensors", "gptq": "gptq/model.safetensors"}
VALUES = {"f32": n * n, "fp8": n * n, "gptq": 2 * n * n}


def bench(binary):
    times = {kind: [] for kind in FILES}
    for _ in range(RUNS):
        for kind, name in FILES.items():
            start = time.perf_counter()
            subprocess.run([binary, "show", os.path.join(folder, name), "w.weight", "--limit", "1"],
                           stdout=subprocess.DEVNULL, check=True)
            times[kind].append(time.perf_counter() - start)
    speed = {kind: VALUES[kind] / statistics.median(t) for kind, t in times.items()}
    for kind, t in times.items():
        print(f"{kind}: median {statistics.median(t):.3f} s ({min(t):.2f}-{max(t):.2f} s), "
              f"{speed[kind] / 1e6:.0f}M values/s, {speed[kind] / speed['f32']:.2f}x the F32 pass")
    print(f"load average {os.getloadavg()[0]:.1f}")


if not all(os.path.exists(os.path.join(folder, name)) for name in FILES.values()):
    make()
if len(sys.argv) > 3:
    bench(sys.argv[3])
