#!/usr/bin/env python3
"""One big block-FP8 weight (its codes and 128x128 scales) and the same values as F32, for timing
`paramscope show` (statistics of the dequantized values against the F32 pass):
    python benches/quantized_stats.py /tmp/qstats [N]      # N x N (default 8192)"""
import os, sys

import torch
from safetensors.torch import save_file

folder, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8192
os.makedirs(folder, exist_ok=True)
torch.manual_seed(0)
codes = (torch.randn(n, n) * 64).clamp(-448, 448).to(torch.float8_e4m3fn)
scales = torch.rand(n // 128, n // 128) * 0.01
save_file({"w.weight": codes, "w.weight_scale_inv": scales}, os.path.join(folder, "fp8.safetensors"))
values = codes.float() * scales.repeat_interleave(128, 0).repeat_interleave(128, 1)
save_file({"w.weight": values}, os.path.join(folder, "f32.safetensors"))
