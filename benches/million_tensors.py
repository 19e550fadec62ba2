#!/usr/bin/env python3
"""A safetensors file whose header lists a million tensors (89 MB of header, 4 MB of data), for
timing `paramscope tree` on it: python benches/million_tensors.py /tmp/m.safetensors [N]."""
import json, struct, sys
# A header of a million F32 tensors, layers.{i}.weight of shape [1], with zero-filled data.
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
h = {}
off = 0
for i in range(n):
    h[f"model.layers.{i}.weight"] = {"dtype": "F32", "shape": [1], "data_offsets": [off, off + 4]}
    off += 4
b = json.dumps(h, separators=(",", ":")).encode()
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(b)))
    f.write(b)
    f.seek(off - 1, 1)
    f.write(b"\0")
print(len(b), "header bytes")
