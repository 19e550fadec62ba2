#!/usr/bin/env python3
"""A Llama-2-7B-shaped base and a LoRA adapter for it (r=16 on q/k/v/o/gate/up/down of all 32
layers), written sparse: the headers are real, the data holes of zeros (no disk). For timing
`paramscope check ADAPTER --base BASE`, which reads the headers and the adapter's small tensors:
    python benches/adapter_coverage.py /tmp/lora7b [target/release/paramscope]
Given the binary, it times that command and its peer, the same coverage as a Python process
(both headers' keys, each LoRA tensor loaded by torch through `safe_open` and checked for NaN/Inf
and an all-zero lora_B), taking turns, RUNS times each, and prints the medians and their ratio."""
import json, os, statistics, struct, subprocess, sys, time

HIDDEN, FFN, LAYERS, VOCAB, R = 4096, 11008, 32, 32000, 16
LINEAR = {
    "self_attn.q_proj": (HIDDEN, HIDDEN), "self_attn.k_proj": (HIDDEN, HIDDEN),
    "self_attn.v_proj": (HIDDEN, HIDDEN), "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (FFN, HIDDEN), "mlp.up_proj": (FFN, HIDDEN), "mlp.down_proj": (HIDDEN, FFN),
}


def write(path, shapes):
    header, offset = {}, 0
    for name, shape in shapes:
        size = 2
        for d in shape:
            size *= d
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.truncate(8 + len(text) + offset)


def main(folder):
    base, adapter = os.path.join(folder, "base"), os.path.join(folder, "adapter")
    os.makedirs(base, exist_ok=True)
    os.makedirs(adapter, exist_ok=True)
    shapes = [("model.embed_tokens.weight", (VOCAB, HIDDEN)), ("model.norm.weight", (HIDDEN,)),
              ("lm_head.weight", (VOCAB, HIDDEN))]
    lora = []
    for i in range(LAYERS):
        layer = f"model.layers.{i}."
        shapes += [(layer + "input_layernorm.weight", (HIDDEN,)),
                   (layer + "post_attention_layernorm.weight", (HIDDEN,))]
        for module, (out, inputs) in LINEAR.items():
            shapes.append((layer + module + ".weight", (out, inputs)))
            key = "base_model.model." + layer + module
            lora += [(key + ".lora_A.weight", (R, inputs)), (key + ".lora_B.weight", (out, R))]
    write(os.path.join(base, "model.safetensors"), shapes)
    write(os.path.join(adapter, "adapter_model.safetensors"), lora)
    config = {"peft_type": "LORA", "r": R, "lora_alpha": 32,
              "target_modules": sorted(m.split(".")[1] for m in LINEAR)}
    with open(os.path.join(adapter, "adapter_config.json"), "w") as f:
        json.dump(config, f)


RUNS = 7

PEER = r"""
import json, os, struct, sys
import torch
from safetensors import safe_open
folder, base = sys.argv[1], sys.argv[2]
def header(path):
    with open(path, "rb") as f:
        return json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
modules = {k[: -len(".weight")] for k in header(base) if k.endswith(".weight")}
config = json.load(open(os.path.join(folder, "adapter_config.json")))
adapted, found = set(), 0
with safe_open(os.path.join(folder, "adapter_model.safetensors"), "pt") as f:
    for key in f.keys():
        module = key.removeprefix("base_model.model.").rsplit(".lora_", 1)[0]
        if module not in modules:
            print("unmatched_key", key)
        adapted.add(module)
        t = f.get_tensor(key)
        if not torch.isfinite(t).all():
            print("nonfinite", key)
        if ".lora_B." in key and not t.any():
            found += 1
targets = {m for m in modules if m.rsplit(".", 1)[-1] in config["target_modules"]}
print(found, "zero lora_B;", len(targets & adapted), "of", len(targets), "target modules adapted")
"""


def timed(args):
    start = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def bench(folder, binary):
    adapter, base = os.path.join(folder, "adapter"), os.path.join(folder, "base")
    ours, peer = [], []
    for _ in range(RUNS):
        ours.append(timed([binary, "check", adapter, "--base", base]))
        peer.append(timed([sys.executable, "-c", PEER, adapter,
                           os.path.join(base, "model.safetensors")]))
    a, b = statistics.median(ours), statistics.median(peer)
    print(f"paramscope check: median {a:.3f} s ({min(ours):.3f}-{max(ours):.3f}); "
          f"peer: median {b:.3f} s ({min(peer):.3f}-{max(peer):.3f}); ratio {a / b:.3f}x; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1])
    if len(sys.argv) > 2:
        bench(sys.argv[1], sys.argv[2])
