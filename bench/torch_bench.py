#!/usr/bin/env python3
"""PyTorch (transformers GPT-2) reference numbers for the Tunesmith benchmark.

    python3 bench/torch_bench.py --preset tiny|small|gpt2 --mode train|generate|generate-nocache \
        --threads 2 [--steps N] [--warmup W]

Prints exactly one JSON line on stdout:
    {"preset": ..., "mode": ..., "tokens_per_sec": float, "steps": N, "torch": "..."}

CPU only, float32, random weights and random token ids (seeded).
train:    batch*block tokens per step; forward with labels, backward,
          clip_grad_norm_(1.0), AdamW step, zero_grad. Warmup steps not timed.
generate: batch 1, 16-token random prompt, plain greedy loop with KV cache
generate-nocache: the same loop feeding the whole sequence every step (full recompute)
          producing 128 new tokens (the prompt forward is timed too);
          one untimed warmup generation, then --steps timed generations.
"""

import argparse
import inspect
import json
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB = 50257
BLOCK = 256
DROPOUT = 0.1
PROMPT_LEN = 16
NEW_TOKENS = 128

PRESETS = {
    # name: (n_layer, n_head, n_embd, batch, n_positions)
    "tiny": (4, 4, 256, 4, 256),
    "small": (6, 6, 384, 4, 256),
    "gpt2": (12, 12, 768, 2, 1024),
}


def build_model(preset: str) -> tuple:
    n_layer, n_head, n_embd, batch, n_positions = PRESETS[preset]
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        activation_function="gelu_new",
        resid_pdrop=DROPOUT,
        embd_pdrop=DROPOUT,
        attn_pdrop=DROPOUT,
        layer_norm_epsilon=1e-5,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).to(torch.float32)
    return model, batch


def bench_train(model, batch: int, steps: int, warmup: int) -> float:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    gen = torch.Generator().manual_seed(42)
    batches = [torch.randint(0, VOCAB, (batch, BLOCK), generator=gen) for _ in range(warmup + steps)]

    def step(x):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())  # forces completion

    for i in range(warmup):
        step(batches[i])
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(batches[i])
    dt = time.perf_counter() - t0
    return batch * BLOCK * steps / dt


def _cache_kwarg(model) -> str:
    # transformers >= 5 renamed `past_key_values` to `cache` (old name deprecated).
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _get_cache(out):
    return out["cache"] if "cache" in out else out["past_key_values"]


@torch.no_grad()
def greedy_cached(model, prompt: torch.Tensor, new_tokens: int) -> list:
    """Plain greedy decoding with a KV cache, batch 1."""
    kw = _cache_kwarg(model)
    out = model(input_ids=prompt, use_cache=True)
    past = _get_cache(out)
    nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (1, 1)
    tokens = [int(nxt)]
    for _ in range(new_tokens - 1):
        out = model(input_ids=nxt, use_cache=True, **{kw: past})
        past = _get_cache(out)
        nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        tokens.append(int(nxt))
    return tokens


def greedy_recompute(model, prompt: torch.Tensor, new_tokens: int) -> list:
    """Greedy decoding without a cache: the whole sequence goes through the model every step."""
    ids = prompt
    tokens = []
    for _ in range(new_tokens):
        out = model(input_ids=ids, use_cache=False)
        nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
        tokens.append(int(nxt))
    return tokens


def bench_generate(model, steps: int, warmup: int, decode=None) -> float:
    decode = decode or greedy_cached
    model.eval()
    gen = torch.Generator().manual_seed(42)
    prompt = torch.randint(0, VOCAB, (1, PROMPT_LEN), generator=gen)
    for _ in range(warmup):
        decode(model, prompt, NEW_TOKENS)
    t0 = time.perf_counter()
    for _ in range(steps):
        toks = decode(model, prompt, NEW_TOKENS)
        assert len(toks) == NEW_TOKENS
    dt = time.perf_counter() - t0
    return NEW_TOKENS * steps / dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), required=True)
    ap.add_argument("--mode", choices=["train", "generate", "generate-nocache"], required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: train 3, generate 1)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warmup steps/generations (default 1)")
    args = ap.parse_args(argv)

    steps = args.steps if args.steps is not None else (3 if args.mode == "train" else 1)
    if steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--steps and --threads must be >= 1, --warmup >= 0")

    torch.set_num_threads(args.threads)
    model, batch = build_model(args.preset)
    if args.mode == "train":
        tps = bench_train(model, batch, steps, args.warmup)
    elif args.mode == "generate":
        tps = bench_generate(model, steps, args.warmup)
    else:
        tps = bench_generate(model, steps, args.warmup, greedy_recompute)

    sys.stdout.write(json.dumps({
        "preset": args.preset,
        "mode": args.mode,
        "tokens_per_sec": tps,
        "steps": steps,
        "torch": torch.__version__,
    }) + "\n")


if __name__ == "__main__":
    main()
