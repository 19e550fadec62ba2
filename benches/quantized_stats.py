#!/usr/bin/env python3
"""One big block-FP8 weight (its codes and 128x128 scales) and the same values as F32, and a weight
of 2 N^2 values (1 GiB dequantized to F16 or BF16, as big as the F32 file) in each of the 4-bit
schemes: GPTQ (v2 zeros, groups of 128, F16 scales, (in/8, out) words), AWQ (GEMM packing, F16
scales), compressed-tensors' pack-quantized int4 (groups of 128, BF16 scales), bitsandbytes NF4 with
double quantization (blocks of 64, BF16) and MXFP4 experts (32 experts, BF16). The packed formats
are written with random codes as tests/fixtures/quantized/make.py lays them out. For timing
`paramscope show` (statistics of the dequantized values against the F32 pass):
    python benches/quantized_stats.py /tmp/qstats [N [target/release/paramscope [KIND ...]]]
N x N for FP8 and F32 (default 8192; N a multiple of 512). The files are made once. Given the
binary, `show FILE w.weight --limit 1` of each file (or of the KINDs named, f32 always) is timed as
a whole process, taking turns, RUNS times each (8, or $RUNS), and the medians printed with their
ratios: each dequantized pass's speed in values per second against the F32 pass's (issue 25 asks
for at least 0.5x)."""
import json, os, statistics, subprocess, sys, time

folder, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8192
RUNS = int(os.environ.get("RUNS", 8))
GROUP = 128
WORD = (-(2**31), 2**31 - 1)


def folder_of(name, tensors, quantization):
    from safetensors.torch import save_file

    path = os.path.join(folder, name)
    os.makedirs(path, exist_ok=True)
    save_file(tensors, os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"quantization_config": quantization}, f)


def words(*shape):
    import torch

    return torch.randint(*WORD, shape, dtype=torch.int32)


def scales(*shape, dtype):
    import torch

    return (torch.rand(*shape) * 0.01).to(dtype)


def make_fp8():
    import torch
    from safetensors.torch import save_file

    codes = (torch.randn(n, n) * 64).clamp(-448, 448).to(torch.float8_e4m3fn)
    block = torch.rand(n // 128, n // 128) * 0.01
    save_file({"w.weight": codes, "w.weight_scale_inv": block}, os.path.join(folder, "fp8.safetensors"))
    values = codes.float() * block.repeat_interleave(128, 0).repeat_interleave(128, 1)
    save_file({"w.weight": values}, os.path.join(folder, "f32.safetensors"))


def make_gptq():
    import torch

    out, inputs = n, 2 * n
    folder_of("gptq", {"w.qweight": words(inputs // 8, out), "w.qzeros": words(inputs // GROUP, out // 8),
                       "w.scales": scales(inputs // GROUP, out, dtype=torch.float16)},
              {"quant_method": "gptq", "bits": 4, "group_size": GROUP, "checkpoint_format": "gptq_v2"})


def make_awq():
    import torch

    out, inputs = n, 2 * n
    folder_of("awq", {"w.qweight": words(inputs, out // 8), "w.qzeros": words(inputs // GROUP, out // 8),
                      "w.scales": scales(inputs // GROUP, out, dtype=torch.float16)},
              {"quant_method": "awq", "bits": 4, "group_size": GROUP, "version": "gemm"})


def make_compressed():
    import torch

    out, inputs = n, 2 * n
    folder_of("compressed", {"w.weight_packed": words(out, inputs // 8),
                             "w.weight_scale": scales(out, inputs // GROUP, dtype=torch.bfloat16),
                             "w.weight_shape": torch.tensor([out, inputs], dtype=torch.int64)},
              {"quant_method": "compressed-tensors", "format": "pack-quantized",
               "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                   "num_bits": 4, "type": "int", "symmetric": True, "strategy": "group",
                   "group_size": GROUP}}}})


def make_nf4():
    """As transformers saves a double-quantized Linear4bit: codes two a byte, 8-bit absmax codes
    per block of 64 into a 256-entry map times an f32 absmax per 256 blocks, plus an offset."""
    import torch
    from bitsandbytes.functional import create_dynamic_map

    out, inputs = n, 2 * n
    blocks = out * inputs // 64
    state = {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [out, inputs],
             "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.02}
    folder_of("nf4", {"w.weight": torch.randint(0, 256, (out * inputs // 2, 1), dtype=torch.uint8),
                      "w.weight.absmax": torch.randint(0, 256, (blocks,), dtype=torch.uint8),
                      "w.weight.nested_absmax": torch.rand(blocks // 256) * 0.01,
                      "w.weight.nested_quant_map": create_dynamic_map(signed=True),
                      "w.weight.quant_map": torch.linspace(-1, 1, 16),
                      "w.weight.quant_state.bitsandbytes__nf4":
                          torch.tensor(list(json.dumps(state).encode()), dtype=torch.uint8)},
              {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
               "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16"})


def make_mxfp4():
    """gpt-oss's experts: (experts, rows, G, 16) code bytes and an exponent per block of 32."""
    import torch

    experts, rows, groups = 32, n // 4, n // 128
    folder_of("mxfp4", {"w_blocks": torch.randint(0, 256, (experts, rows, groups, 16), dtype=torch.uint8),
                        "w_scales": torch.randint(118, 130, (experts, rows, groups), dtype=torch.uint8)},
              {"quant_method": "mxfp4"})


FILES = {"f32": "f32.safetensors", "fp8": "fp8.safetensors", "gptq": "gptq/model.safetensors",
         "awq": "awq/model.safetensors", "compressed": "compressed/model.safetensors",
         "nf4": "nf4/model.safetensors", "mxfp4": "mxfp4/model.safetensors"}
MAKE = {"f32": make_fp8, "fp8": make_fp8, "gptq": make_gptq, "awq": make_awq,
        "compressed": make_compressed, "nf4": make_nf4, "mxfp4": make_mxfp4}
NAMES = {"mxfp4": "w"}
VALUES = {kind: n * n if kind in ("f32", "fp8") else 2 * n * n for kind in FILES}


def bench(binary, kinds):
    times = {kind: [] for kind in kinds}
    for _ in range(RUNS):
        for kind in kinds:
            start = time.perf_counter()
            subprocess.run([binary, "show", os.path.join(folder, FILES[kind]), NAMES.get(kind, "w.weight"),
                            "--limit", "1"], stdout=subprocess.DEVNULL, check=True)
            times[kind].append(time.perf_counter() - start)
    speed = {kind: VALUES[kind] / statistics.median(t) for kind, t in times.items()}
    for kind, t in times.items():
        print(f"{kind}: median {statistics.median(t):.3f} s ({min(t):.2f}-{max(t):.2f} s), "
              f"{speed[kind] / 1e6:.0f}M values/s, {speed[kind] / speed['f32']:.2f}x the F32 pass")
    print(f"load average {os.getloadavg()[0]:.1f}")


kinds = ["f32"] + [k for k in (sys.argv[4:] or FILES) if k != "f32"]
os.makedirs(folder, exist_ok=True)
import torch  # noqa: E402  (only for the seed: each file is made from the same one)

for kind in kinds:
    if not os.path.exists(os.path.join(folder, FILES[kind])):
        torch.manual_seed(0)
        MAKE[kind]()
if len(sys.argv) > 3:
    bench(sys.argv[3], kinds)
