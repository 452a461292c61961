"""PyTorch side of bench/training_peers_bench.ts: LoRA training steps on a Llama, the same work as ours.

Bench-only (never a test dependency). Reads a spec JSON (path in argv[1]) that training_peers_bench.ts
writes, prints one JSON object on stdout.

The model is an eager Llama with the math of src/models/llama/forward.ts and training.ts: token
embedding, per block RMSNorm (x / sqrt(mean(x^2) + eps) * w), q/k/v projections, rotate-half RoPE
(inverse frequencies 1 / theta^(2i/d) as float32), grouped-query attention with a causal mask (query head
h reads key/value head h // (heads / kv_heads)), softmax(q k^T / sqrt(d)) v materialised as ours does
(spec "attention": "eager"; "sdpa" uses F.scaled_dot_product_attention), o projection and residual,
RMSNorm, SwiGLU MLP (silu(gate) * up, down) and residual, final RMSNorm, tied (or separate) lm_head;
loss: mean next-token cross-entropy of logits[:, :-1] against ids[:, 1:].

LoRA on the sites listed by the spec: y = x W^T + (x A^T) B^T * scale, A [r, in], B [out, r]; only A and
B require grad. Optimizer: torch.optim.AdamW (betas 0.9/0.999, eps 1e-8, the spec's weight decay) after
clip_grad_norm_ (the same global-norm clipping as ours: coefficient min(1, max / (norm + 1e-6))).

Weights (base and LoRA initial A/B) come from one safetensors file (parsed here: the file's bytes are
read once and every tensor is a view into them, so the base is held once).

Output: {"engine": "torch", "version", "threads", "stepMs": [...], "losses": [...], "gradNorms": [...],
"loadMs", "loadPeakRssBytes", "peakRssBytes", "forwardMs": [...], "backwardMs": [...], "optimizerMs": [...],
"gemmGflops": {"mlp", "lmHead"}} (GFLOP/s of one matmul of the MLP and lm_head shapes, after the steps).
"""

import json
import math
import os
import resource
import struct
import sys
import time


def load_safetensors(path):
    """Tensors by name, views into one bytearray holding the file (no copy per tensor)."""
    import torch

    with open(path, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    dtypes = {"F32": torch.float32, "I64": torch.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = dtypes.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32 or I64")
        start, end = info["data_offsets"]
        itemsize = 4 if dtype == torch.float32 else 8
        count = (end - start) // itemsize
        t = torch.frombuffer(data, dtype=dtype, count=count, offset=base + start) if count else torch.empty(0, dtype=dtype)
        out[name] = t.view(info["shape"])
    return out, data


MODULES = [
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
]


def main():
    spec = json.load(open(sys.argv[1]))
    threads = int(spec["threads"])
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = spec["config"]
    dim = cfg["hiddenSize"]
    n_layers = cfg["numHiddenLayers"]
    n_heads = cfg["numAttentionHeads"]
    n_kv = cfg["numKeyValueHeads"]
    head_dim = cfg["headDim"]
    vocab = cfg["vocabSize"]
    eps = cfg["rmsNormEps"]
    kv_mul = n_heads // n_kv
    batch = int(spec["batch"])
    seq = int(spec["seq"])
    scale = float(spec["alpha"]) / float(spec["rank"])
    attention = spec.get("attention", "eager")

    t0 = time.perf_counter()
    w, _keep = load_safetensors(spec["weights"])
    for t in w.values():
        t.requires_grad_(False)
    embed = w["model.embed_tokens.weight"]
    lm_head = embed if cfg["tieWordEmbeddings"] else w["lm_head.weight"]
    lora = {}
    params = []
    for site in spec["sites"]:
        a = w[f"{site}.lora_A"].clone().requires_grad_(True)
        b = w[f"{site}.lora_B"].clone().requires_grad_(True)
        lora[site] = (a, b)
        params += [a, b]

    # RoPE tables as ours: inverse frequencies in float32, positions * inv_freq in float32
    inv = torch.tensor(
        [1.0 / cfg["ropeTheta"] ** (float(torch.tensor(2 * i / head_dim, dtype=torch.float32))) for i in range(head_dim // 2)],
        dtype=torch.float32,
    )
    freqs = torch.arange(seq, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos = emb.cos()[None, :, None, :]  # [1, seq, 1, head_dim]
    sin = emb.sin()[None, :, None, :]
    causal = torch.full((seq, seq), float("-inf")).triu(1)

    def rotate_half(x):
        x1, x2 = x[..., : head_dim // 2], x[..., head_dim // 2 :]
        return torch.cat([-x2, x1], dim=-1)

    def rope(x):
        return x * cos + rotate_half(x) * sin

    def rms(x, weight):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

    def linear(x, name):
        y = F.linear(x, w[f"{name}.weight"])
        ab = lora.get(name)
        if ab is not None:
            y = y + F.linear(F.linear(x, ab[0]), ab[1]) * scale
        return y

    def forward_loss(ids):
        x = embed[ids]
        for l in range(n_layers):
            p = f"model.layers.{l}"
            xb = rms(x, w[f"{p}.input_layernorm.weight"])
            q = linear(xb, f"{p}.self_attn.q_proj").view(batch, seq, n_heads, head_dim)
            k = linear(xb, f"{p}.self_attn.k_proj").view(batch, seq, n_kv, head_dim)
            v = linear(xb, f"{p}.self_attn.v_proj").view(batch, seq, n_kv, head_dim)
            q = rope(q).transpose(1, 2)  # [B, H, T, d]
            k = rope(k).transpose(1, 2)
            v = v.transpose(1, 2)
            if attention == "sdpa":
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=kv_mul > 1)
            else:
                # grouped: [B, kv, mul, T, d] against keys [B, kv, 1, d, T]
                qg = q.view(batch, n_kv, kv_mul, seq, head_dim)
                scores = qg @ k.unsqueeze(2).transpose(-1, -2) / math.sqrt(head_dim) + causal
                out = (scores.softmax(-1) @ v.unsqueeze(2)).view(batch, n_heads, seq, head_dim)
            merged = out.transpose(1, 2).reshape(batch, seq, n_heads * head_dim)
            x = x + linear(merged, f"{p}.self_attn.o_proj")
            xf = rms(x, w[f"{p}.post_attention_layernorm.weight"])
            g = linear(xf, f"{p}.mlp.gate_proj")
            u = linear(xf, f"{p}.mlp.up_proj")
            x = x + linear(F.silu(g) * u, f"{p}.mlp.down_proj")
        x = rms(x, w["model.norm.weight"])
        logits = F.linear(x, lm_head)
        return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))

    opt = torch.optim.AdamW(
        params, lr=float(spec["lr"]), betas=(0.9, 0.999), eps=1e-8, weight_decay=float(spec["weightDecay"])
    )
    batches = [torch.tensor(b, dtype=torch.int64).view(batch, seq) for b in spec["batches"]]
    load_ms = (time.perf_counter() - t0) * 1000
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    print(f"ready in {load_ms:.0f} ms", file=sys.stderr, flush=True)
    losses, norms, step_ms, fwd_ms, bwd_ms, opt_ms = [], [], [], [], [], []
    total = int(spec["warmup"]) + int(spec["steps"])
    for i in range(total):
        ids = batches[i % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = forward_loss(ids)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(params, float(spec["maxGradNorm"]))
        opt.step()
        lv = float(loss)
        t3 = time.perf_counter()
        print(f"step {i}: {(t3 - t0) * 1000:.0f} ms, loss {lv}", file=sys.stderr, flush=True)
        losses.append(lv)
        norms.append(float(norm))
        if i >= int(spec["warmup"]):
            step_ms.append((t3 - t0) * 1000)
            fwd_ms.append((t1 - t0) * 1000)
            bwd_ms.append((t2 - t1) * 1000)
            opt_ms.append((t3 - t2) * 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before the GEMM probe

    def gemm_gflops(m, k, n):
        """GFLOP/s of one F.linear [m, k] x [n, k]^T (the model's layout), median of 5 after a warm-up."""
        with torch.no_grad():
            x = torch.rand(m, k) * 2 - 1
            wt = (torch.rand(n, k) * 2 - 1) * 0.02
            F.linear(x, wt)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                F.linear(x, wt)
                times.append(time.perf_counter() - t0)
        times.sort()
        return 2 * m * k * n / times[2] / 1e9

    gemm = {
        "mlp": gemm_gflops(batch * seq, dim, cfg["intermediateSize"]),
        "lmHead": gemm_gflops(batch * seq, dim, vocab),
    }
    print(
        json.dumps(
            {
                "engine": "torch",
                "version": torch.__version__,
                "threads": torch.get_num_threads(),
                "attention": attention,
                "stepMs": step_ms,
                "forwardMs": fwd_ms,
                "backwardMs": bwd_ms,
                "optimizerMs": opt_ms,
                "losses": losses,
                "gradNorms": norms,
                "loadMs": load_ms,
                "loadPeakRssBytes": load_peak,
                "peakRssBytes": peak,
                "gemmGflops": gemm,
            }
        )
    )


if __name__ == "__main__":
    main()
