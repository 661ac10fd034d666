#!/usr/bin/env python3
"""A Tunesmith training run, repeated with Hugging Face TRL's SFTTrainer (LoRA through PEFT, or
full fine-tuning) on one or many GPUs. Written by `tunesmith export --format job`; the run's
settings are in settings.json beside this file, its data in data/.

    torchrun --nproc_per_node 8 train_sft.py          (or ./launch.sh 8)
    accelerate launch --num_processes 8 train_sft.py

Options: --output-dir DIR (default ./output), --max-steps N (fewer steps, to try it out),
--cpu (no GPU: runs on the CPU, with gloo between processes).
"""

import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=os.path.join(HERE, "output"))
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args()

    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    s = json.load(open(os.path.join(HERE, "settings.json")))
    model_id = s["model"]
    if model_id.startswith("./"):
        model_id = os.path.join(HERE, model_id[2:])

    world = int(os.environ.get("WORLD_SIZE", "1"))
    # The run's batch is split across the processes, so each optimiser step sees as many examples
    # as the run's did; a batch that does not divide is kept per process (a larger global batch).
    batch = s["batch_size"]
    per_device = batch // world if batch % world == 0 else batch
    if per_device == batch and world > 1:
        print(f"note: batch {batch} does not divide over {world} processes; each takes {batch}")

    tokenizer = AutoTokenizer.from_pretrained(model_id)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    extra = {}
    if s.get("dropout") is not None:
        p = s["dropout"]
        extra = (
            {"resid_pdrop": p, "embd_pdrop": p, "attn_pdrop": p}
            if s["model_type"] == "gpt2"
            else {"attention_dropout": p}
        )
    on_gpu = torch.cuda.is_available() and not args.cpu
    dtype = torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype, **extra)
    if s["only_train_transformer_layers"]:
        # As the run: embeddings, positions and the final norm stay as they are.
        for name, p in model.named_parameters():
            if ".h." not in name and ".layers." not in name:
                p.requires_grad_(False)

    peft_config = None
    if s["lora"]:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=s["lora"]["r"],
            lora_alpha=s["lora"]["lora_alpha"],
            lora_dropout=s["lora"]["lora_dropout"],
            target_modules=s["lora"]["target_modules"],
            task_type="CAUSAL_LM",
        )

    data = load_dataset(
        "json",
        data_files={
            "train": os.path.join(HERE, "data", "train.jsonl"),
            "validation": os.path.join(HERE, "data", "val.jsonl"),
        },
    )
    has_val = len(data["validation"]) > 0
    eval_every = s["eval_every"]
    config = SFTConfig(
        output_dir=args.output_dir,
        max_steps=args.max_steps or s["max_steps"],
        learning_rate=s["learning_rate"],
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": s["min_lr_ratio"]},
        warmup_steps=s["warmup_steps"],
        weight_decay=s["weight_decay"],
        adam_beta1=s["adam_beta1"],
        adam_beta2=s["adam_beta2"],
        max_grad_norm=s["max_grad_norm"] if s["max_grad_norm"] > 0 else None,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=s["gradient_accumulation_steps"],
        max_length=s["block_size"],
        # Tunesmith trains on windows cut from the examples laid end to end.
        packing=True,
        dataset_text_field="text",
        completion_only_loss=True if s["data"] == "prompt_completion" else None,
        seed=s["seed"],
        data_seed=s["seed"],
        logging_steps=max(1, s["log_every"]),
        eval_strategy="steps" if has_val and eval_every > 0 else "no",
        eval_steps=eval_every if eval_every > 0 else None,
        save_strategy="steps" if s["save_every"] > 0 else "no",
        save_steps=s["save_every"] if s["save_every"] > 0 else 500,
        gradient_checkpointing=s["gradient_checkpointing"],
        bf16=dtype == torch.bfloat16,
        use_cpu=not on_gpu,
        report_to="none",
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data["train"],
        eval_dataset=data["validation"] if has_val else None,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    trainer.save_model(args.output_dir)
    # Every process takes part in the evaluation; the first reports it.
    metrics = trainer.evaluate() if has_val else {}
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(args.output_dir)
        if s["lora"] and s["model"].startswith("./"):
            # The adapter names its base relative to itself, so the job folder can move or be
            # copied back whole and Tunesmith (and PEFT, from the output folder) still finds it.
            path = os.path.join(args.output_dir, "adapter_config.json")
            adapter = json.load(open(path))
            try:
                adapter["base_model_name_or_path"] = os.path.relpath(model_id, args.output_dir)
                json.dump(adapter, open(path, "w"), indent=2)
            except ValueError:
                pass  # another drive (Windows): the absolute path stays
        if has_val:
            print(json.dumps({"val_loss": metrics.get("eval_loss")}))
        print(f"done: {args.output_dir}")


if __name__ == "__main__":
    main()
