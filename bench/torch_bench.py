#!/usr/bin/env python3
"""PyTorch (transformers, PEFT) reference numbers for the Tunesmith benchmark.

    python3 bench/torch_bench.py --preset PRESET --mode train|generate|generate-nocache \
        --threads 2 [--steps N] [--warmup W]

PRESET: tiny, small, gpt2 (GPT2LMHeadModel), smollm2-135m (LlamaForCausalLM in SmolLM2-135M's
shape), smollm2-135m-lora, smollm2-360m-lora, qwen2.5-0.5b-lora (PEFT LoRA r=8, alpha=16,
dropout 0.05 on every attention and MLP projection); `@BLOCK` sets another block (gpt2@1024),
and a `+recompute` suffix after it turns on transformers' gradient checkpointing. The same shapes, batches and blocks as `tunesmith bench`.

Prints exactly one JSON line on stdout:
    {"preset": ..., "mode": ..., "tokens_per_sec": float, "steps": N, "torch": "...",
     "peak_rss_bytes": int}

CPU only, float32, random weights and random token ids (seeded).
train:    a plain training loop, batch*block tokens per step: logits, cross-entropy against the
          next tokens (F.cross_entropy), backward, clip_grad_norm_(1.0), AdamW step,
          zero_grad; dropout 0.1 as the model's config says. Warmup steps are not timed (PyTorch's
          allocator and thread pool settle over the first steps: too few flatter Tunesmith).
generate: batch 1, 16-token random prompt, plain greedy loop with KV cache
generate-nocache: the same loop feeding the whole sequence every step (full recompute)
          producing 128 new tokens (the prompt forward is timed too);
          --warmup untimed generations (Tunesmith passes 1), then --steps timed generations.
"""

import argparse
import inspect
import json
import resource
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

# The published configs' fields that shape the model (as in Tunesmith's bench.rs).
SMOLLM2_135M = dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
                    tie_word_embeddings=True)
SMOLLM2_360M = dict(model_type="llama", vocab_size=49152, hidden_size=960, intermediate_size=2560,
                    num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5,
                    max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
                    tie_word_embeddings=True)
QWEN25_05B = dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                  num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                  max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
                  tie_word_embeddings=True)
# name: (config, batch, block, lora)
LLAMA_PRESETS = {
    "smollm2-135m": (SMOLLM2_135M, 2, 256, False),
    "smollm2-135m-lora": (SMOLLM2_135M, 2, 256, True),
    "smollm2-360m-lora": (SMOLLM2_360M, 1, 512, True),
    "qwen2.5-0.5b-lora": (QWEN25_05B, 1, 512, True),
}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_llama(preset: str, recompute: bool) -> tuple:
    from transformers import AutoConfig, AutoModelForCausalLM

    fields, batch, block, lora = LLAMA_PRESETS[preset]
    fields = dict(fields)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).to(torch.float32)
    if recompute:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        from peft import LoraConfig, get_peft_model

        if recompute:
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                 target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))
    return model, batch, block, config.vocab_size


def build_model(preset: str, block: int = 0) -> tuple:
    n_layer, n_head, n_embd, batch, n_positions = PRESETS[preset]
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=max(n_positions, block),
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


def bench_train(model, batch: int, steps: int, warmup: int, block: int = BLOCK,
                vocab: int = VOCAB) -> float:
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1)
    gen = torch.Generator().manual_seed(42)
    # block + 1 ids per row: the inputs and their next tokens, as Tunesmith's batches are.
    batches = [torch.randint(0, vocab, (batch, block + 1), generator=gen)
               for _ in range(warmup + steps)]

    def step(ids):
        x, y = ids[:, :-1], ids[:, 1:]
        logits = model(input_ids=x, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())  # forces completion

    for i in range(warmup):
        step(batches[i])
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(batches[i])
    dt = time.perf_counter() - t0
    return batch * block * steps / dt


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


def bench_generate(model, steps: int, warmup: int, decode=None, vocab: int = VOCAB) -> float:
    decode = decode or greedy_cached
    model.eval()
    gen = torch.Generator().manual_seed(42)
    prompt = torch.randint(0, vocab, (1, PROMPT_LEN), generator=gen)
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
    ap.add_argument("--preset", required=True, help="a preset name, optionally with @BLOCK (gpt2@1024) and ending in +recompute")
    ap.add_argument("--mode", choices=["train", "generate", "generate-nocache"], required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: train 3, generate 1)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warmup steps/generations (default 2)")
    args = ap.parse_args(argv)

    steps = args.steps if args.steps is not None else (3 if args.mode == "train" else 1)
    if steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--steps and --threads must be >= 1, --warmup >= 0")

    torch.set_num_threads(args.threads)
    name = args.preset
    recompute = name.endswith("+recompute")
    base = name[: -len("+recompute")] if recompute else name
    # `gpt2@1024`: another block, as `tunesmith bench` reads it.
    base, sep, at = base.partition("@")
    if sep and not (at.isascii() and at.isdigit() and int(at) > 0):
        ap.error(f"{name}: the block after @ must be a whole number above 0")
    if base in LLAMA_PRESETS:
        model, batch, block, vocab = build_llama(base, recompute)
        block = int(at) if at else block
    elif base in PRESETS:
        block, vocab = (int(at) if at else BLOCK), VOCAB
        model, batch = build_model(base, block)
        if recompute:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        ap.error(f"unknown preset {name}; known: {', '.join(list(PRESETS) + list(LLAMA_PRESETS))}")
    if args.mode == "train":
        tps = bench_train(model, batch, steps, args.warmup, block, vocab)
    elif args.mode == "generate":
        tps = bench_generate(model, steps, args.warmup, vocab=vocab)
    else:
        tps = bench_generate(model, steps, args.warmup, greedy_recompute, vocab=vocab)

    sys.stdout.write(json.dumps({
        "preset": args.preset,
        "mode": args.mode,
        "tokens_per_sec": tps,
        "steps": steps,
        "torch": torch.__version__,
        # ru_maxrss is in KiB on Linux and in bytes on macOS.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        * (1 if sys.platform == "darwin" else 1024),
    }) + "\n")


if __name__ == "__main__":
    main()
