#!/usr/bin/env python3
"""A Llama-2-7B-shaped base and a LoRA adapter for it (r=16 on q/k/v/o/gate/up/down of all 32
layers), written sparse: the headers are real, the data holes of zeros (no disk). For timing
`paramscope check ADAPTER --base BASE`, which reads the headers and the adapter's small tensors:
    python benches/adapter_coverage.py /tmp/lora7b"""
import json, os, struct, sys

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


if __name__ == "__main__":
    main(sys.argv[1])
