"""Memory bandwidth as PyTorch sees it, for reading the README's decoding bound.

Prints the read rate of a sum over 1 GiB (one and two threads) and of PyTorch's matrix-vector
product (MKL) on GPT-2's and SmolLM2's layer shapes and LM heads, each over enough distinct
matrices that they come from memory rather than the cache, as a decode step reads them.

    python3 bench/bandwidth.py
"""
import time

import torch


def best(f, n=5):
    t = float("inf")
    for _ in range(n):
        s = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - s)
    return t


a = torch.ones(1 << 28)  # 1 GiB of f32
for threads in (1, 2):
    torch.set_num_threads(threads)
    print(f"sum over 1 GiB, {threads} thread(s): {a.numel() * 4 / best(a.sum) / 1e9:.1f} GB/s")
del a

torch.set_num_threads(2)
shapes = [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576),
          (2304, 768), (768, 768), (3072, 768), (768, 3072), (50257, 768)]
with torch.no_grad():
    for rows, cols in shapes:
        ws = [torch.ones(rows, cols) for _ in range(max(2, 400_000_000 // (rows * cols * 4)))]
        x = torch.ones(cols)
        sweep = lambda: [w @ x for w in ws]
        sweep()
        dt = best(sweep, 3) / len(ws)
        print(f"matrix-vector ({rows}, {cols}): {rows * cols * 4 / dt / 1e9:.1f} GB/s")
