#!/usr/bin/env python3
"""Does Tunesmith learn as well as PyTorch, and which learning rate suits each from-scratch size?

For every (size, learning rate, seed) it trains a GPT-2 from scratch on the same tokens twice:
with the real `tunesmith train` binary, and with transformers' GPT2LMHeadModel in a plain PyTorch
loop (torch.optim.AdamW with the same parameter groups, the same warm-up/cosine schedule,
clip_grad_norm_, uniformly random windows drawn by torch's generator). Both final models are then
scored by ONE evaluator here: the mean next-token loss over every non-overlapping window of the
validation tokens. So the comparison does not depend on which training batches happened to be
hard (the mean training loss over the last steps moves by tenths of a nat with the batches drawn).

The two sides share the tokens and the settings, not the random numbers: Tunesmith initialises
and samples with its own generator, PyTorch with torch's. The per-step maths is checked
separately to 1e-3 (crates/engine/tests/trajectory.rs); what is left here is whether Tunesmith's
initialisation and window sampling are as good as PyTorch's, over several seeds.

Usage: bench/learning.py --corpus FILES... [--sizes tiny small] [--lrs 3e-4 1e-3 3e-3]
                         [--seeds 1 2 3] [--steps 120] [--sides tunesmith torch] [--bin PATH]
Needs torch and transformers for the PyTorch side and for scoring.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

IGNORE = 2**32 - 1


def tokens(path):
    data = Path(path).read_bytes()
    return torch.frombuffer(bytearray(data), dtype=torch.int32).to(torch.int64)


def lr_at(step, total, warmup, lr, min_ratio):
    # The same schedule as crates/engine/src/train/schedule.rs (step is 0-based).
    if step < warmup:
        return lr * (step + 1) / warmup
    if total <= warmup + 1:
        return lr
    p = min((step - warmup) / (total - warmup - 1), 1.0)
    return lr * min_ratio + 0.5 * (lr - lr * min_ratio) * (1 + math.cos(math.pi * p))


def val_loss(model, val, block):
    """Mean loss over every whole non-overlapping window of the validation tokens."""
    model.eval()
    n = (len(val) - 1) // block
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, n, 8):
            rows = range(i, min(i + 8, n))
            x = torch.stack([val[r * block : r * block + block] for r in rows])
            y = torch.stack([val[r * block + 1 : r * block + block + 1] for r in rows])
            logits = model(input_ids=x).logits
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    return total / count


def run_tunesmith(args, size, lr, seed, work):
    out = work / f"ts-{size}-{lr}-{seed}"
    cmd = [
        args.bin, "train", "--data", *args.corpus, "--scratch", size, "--out", str(out),
        "--steps", str(args.steps), "--batch-size", str(args.batch), "--block-size", str(args.block),
        "--lr", str(lr), "--warmup", str(args.warmup), "--dropout", "0", "--seed", str(seed),
        "--eval-every", "0", "--sample-every", "0", "--save-every", "0", "--json",
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    step = max((p for p in (out / "checkpoints").iterdir()), key=lambda p: int(p.name.split("-")[1]))
    model = transformers.GPT2LMHeadModel.from_pretrained(step, dtype=torch.float32)
    return out, model


def run_torch(args, cfg_dir, train, lr, seed):
    config = transformers.GPT2Config.from_pretrained(cfg_dir)
    config.attn_pdrop = config.embd_pdrop = config.resid_pdrop = 0.0
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config)
    named = dict(model.named_parameters())
    decays = lambda k, v: v.dim() == 2 and k not in ("transformer.wte.weight", "transformer.wpe.weight")  # noqa: E731
    opt = torch.optim.AdamW(
        [{"params": [v for k, v in named.items() if decays(k, v)], "weight_decay": 0.1},
         {"params": [v for k, v in named.items() if not decays(k, v)], "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.999), eps=1e-8,
    )
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.warmup, lr, 0.1)
        starts = torch.randint(0, len(train) - args.block, (args.batch,), generator=gen)
        x = torch.stack([train[s : s + args.block] for s in starts])
        y = torch.stack([train[s + 1 : s + args.block + 1] for s in starts])
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(named.values()), 1.0)
        opt.step()
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", nargs="+", required=True)
    ap.add_argument("--sizes", nargs="+", default=["tiny"])
    ap.add_argument("--lrs", nargs="+", type=float, default=[1e-3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--sides", nargs="+", default=["tunesmith", "torch"])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=20)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--bin", default=str(Path(target) / "debug" / "tunesmith"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="tunesmith-learning-"))
    results = {}
    for size in args.sizes:
        for lr in args.lrs:
            for seed in args.seeds:
                # Tunesmith's run also makes the dataset both sides use (its train/val split).
                out, model = run_tunesmith(args, size, lr, seed, work)
                train = tokens(out / "dataset" / "train.tokens")
                val = tokens(out / "dataset" / "val.tokens")
                row = {}
                if "tunesmith" in args.sides:
                    row["tunesmith"] = val_loss(model, val, args.block)
                if "torch" in args.sides:
                    ckpt = max((out / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))
                    row["torch"] = val_loss(run_torch(args, ckpt, train, lr, seed), val, args.block)
                results[(size, lr, seed)] = row
                print(json.dumps({"size": size, "lr": lr, "seed": seed, **row}), flush=True)
    print(f"\n{'size':6} {'lr':>8} " + " ".join(f"{s:>22}" for s in args.sides))
    for size in args.sizes:
        for lr in args.lrs:
            cells = []
            for side in args.sides:
                v = [results[(size, lr, s)][side] for s in args.seeds]
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                cells.append(f"{statistics.mean(v):10.3f} ± {sd:.3f} (n={len(v)})")
            print(f"{size:6} {lr:8.0e} " + " ".join(f"{c:>22}" for c in cells))
    print(f"(validation loss in nats, mean ± sd over seeds; {args.steps} steps, batch {args.batch}, "
          f"block {args.block}, warm-up {args.warmup}, cosine to 0.1, clip 1, weight decay 0.1)")


if __name__ == "__main__":
    sys.exit(main())
