#!/usr/bin/env python3
"""kill -9 a training run at random moments, resume it each time, and check nothing was lost.

Trains a tiny model from scratch with the real `tunesmith` binary twice, with the same seed:
once straight through, once killed with SIGKILL KILLS times and resumed after each kill (the CLI
continues the run folder's newest complete checkpoint by default). Then it checks

  * resumed: after every kill the next process continued from the newest complete checkpoint on
    disk (its "resuming from step N" log line; step 0 when none existed yet) and the last one
    finished all steps;
  * corrupt: after every kill, run.json parses, every newline-terminated line of metrics.jsonl
    parses (only an unterminated last line may be torn), every `checkpoints/step-N` folder that
    counts as complete (has state.json) holds all five files with whole safetensors, and each one
    loads and generates a token through `tunesmith generate`;
  * equivalence: the loss of every step, and the final model's weights, equal the uninterrupted
    run's.

The kill moments come from a seeded generator, so the same command kills at the same points of
the run (timing on a busy machine still moves them a little); what is checked never depends on
timing. Most kills land inside a training step, some before training starts (while the data or
the checkpoint is loaded); a kill just after a step also lands in its checkpoint write.

Usage: scripts/kill-resume.py [--kills 20] [--seed 1] [--bin PATH] [--work DIR]
Uses the debug CLI binary ($CARGO_TARGET_DIR/debug/tunesmith) unless --bin says otherwise.
Exit status 0 when every check passed; the last line is a one-line summary.
"""

import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_FILES = [
    "model.safetensors",
    "optimizer.safetensors",
    "config.json",
    "tokenizer.json",
    "state.json",
]
SAVE_EVERY = 3


def train_args(data: Path, out: Path, steps: int) -> list:
    return [
        "train", "--scratch", "tiny", "--data", str(data), "--out", str(out),
        "--steps", str(steps), "--batch-size", "4", "--block-size", "64",
        "--vocab-size", "512", "--save-every", str(SAVE_EVERY), "--eval-every", "6",
        "--sample-every", "0", "--seed", "7", "--device", "cpu", "--json",
    ]


def events(log: Path) -> list:
    """The JSON events a process printed so far (a torn last line is left out)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def train_steps(evs: list) -> list:
    return [e["step"] for e in evs if e.get("type") == "trainStep"]


def resumed_from(evs: list):
    """The step the process said it resumed from, 0 for a fresh start, None if it never said."""
    for e in evs:
        msg = str(e.get("message", ""))
        if msg.startswith("resuming from step "):
            return int(msg.split()[-1])
    return 0 if train_steps(evs) else None


def complete_checkpoints(run: Path) -> list:
    """(step, folder) of the folders the engine counts as complete: `step-N` with a state.json."""
    found = []
    for d in (run / "checkpoints").glob("step-*"):
        if d.is_dir() and (d / "state.json").is_file():
            try:
                found.append((int(d.name[len("step-"):]), d))
            except ValueError:
                pass
    return sorted(found)


def safetensors_whole(path: Path) -> bool:
    """Whether a safetensors file has a readable header and every tensor's bytes."""
    raw = path.read_bytes()
    if len(raw) < 8:
        return False
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        return False
    header = json.loads(raw[8 : 8 + n])
    end = max(
        (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
    )
    return 8 + n + end == len(raw)


def damage(run: Path, tunesmith: Path, loaded: set) -> list:
    """Everything wrong with the run folder, as sentences (empty when it is sound)."""
    problems = []
    try:
        info = json.loads((run / "run.json").read_text())
        if "config" not in info or "status" not in info:
            problems.append("run.json lacks config or status")
    except (OSError, ValueError) as e:
        problems.append(f"run.json does not parse: {e}")
    metrics = run / "metrics.jsonl"
    if metrics.exists():
        lines = metrics.read_text(errors="replace").split("\n")
        # The part after the last newline may be torn by the kill; every whole line must parse.
        for i, line in enumerate(lines[:-1], 1):
            try:
                json.loads(line)
            except ValueError:
                problems.append(f"metrics.jsonl line {i} does not parse: {line[:80]!r}")
    for step, d in complete_checkpoints(run):
        missing = [f for f in CHECKPOINT_FILES if not (d / f).is_file()]
        if missing:
            problems.append(f"{d.name} lacks {', '.join(missing)}")
            continue
        try:
            if json.loads((d / "state.json").read_text())["step"] != step:
                problems.append(f"{d.name}/state.json names another step")
            json.loads((d / "config.json").read_text())
            json.loads((d / "tokenizer.json").read_text())
            for f in ("model.safetensors", "optimizer.safetensors"):
                if not safetensors_whole(d / f):
                    problems.append(f"{d.name}/{f} is cut short")
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"{d.name} has a damaged file: {e}")
        key = (d.name, (d / "model.safetensors").stat().st_mtime_ns)
        if not problems and key not in loaded:
            gen = subprocess.run(
                [str(tunesmith), "generate", "--model", str(d), "--prompt", "A",
                 "--max-new-tokens", "1", "--min-new-tokens", "1", "--temperature", "0",
                 "--device", "cpu", "--json"],
                capture_output=True, text=True, timeout=300,
            )
            if gen.returncode != 0:
                problems.append(f"{d.name} does not load: {gen.stderr.strip()[-300:]}")
            else:
                loaded.add(key)
    return problems


def latest_losses(run: Path) -> dict:
    """step -> loss, the last logged value per step (a resumed run logs steps again)."""
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if "loss" in v:
            out[v["step"]] = v["loss"]
    return out


def run_straight(tunesmith: Path, args: list, log: Path) -> float:
    t = time.monotonic()
    with log.open("w") as f:
        subprocess.run([str(tunesmith)] + args, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--steps", type=int, default=0, help="default: 8 per kill + 12")
    p.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    p.add_argument("--bin", type=Path, default=target / "debug" / "tunesmith")
    p.add_argument("--work", type=Path, help="keep the run folders here (default: a temp dir)")
    a = p.parse_args()
    if not a.bin.is_file():
        print(f"{a.bin} does not exist: build it with `cargo build --workspace`", file=sys.stderr)
        return 2
    steps = a.steps or 8 * a.kills + 12
    work = a.work or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    data = ROOT / "demo" / "business-rules.md"
    straight, killed = work / "straight", work / "killed"
    for d in (straight, killed):
        shutil.rmtree(d, ignore_errors=True)
    rng = random.Random(a.seed)

    secs = run_straight(tunesmith=a.bin, args=train_args(data, straight, steps), log=work / "straight.log")
    print(f"uninterrupted run: {steps} steps in {secs:.0f} s", flush=True)

    loaded = set()
    resumed, corrupt, mid_checkpoint, in_startup = 0, 0, 0, 0
    pending = []  # kills whose resume has not been seen yet
    for k in range(1, a.kills + 2):
        final = k == a.kills + 1
        before = complete_checkpoints(killed)
        expect = before[-1][0] if before else 0
        log = work / f"attempt-{k}.log"
        t0 = time.monotonic()
        with log.open("w") as f:
            proc = subprocess.Popen(
                [str(a.bin)] + train_args(data, killed, steps), stdout=f, stderr=subprocess.STDOUT
            )
        if final:
            proc.wait()
            where = "final run"
        else:
            # Most kills inside training: after a random step of this attempt has been reported,
            # a random fraction of a step later (so also inside that step's eval or checkpoint
            # write). Some kills before training starts, while data or checkpoint load.
            startup = rng.random() < 0.15
            target_step = expect + 1 + rng.randrange(2 * SAVE_EVERY)
            frac = rng.random()
            while proc.poll() is None:
                evs = events(log)
                done = train_steps(evs)
                if startup and time.monotonic() - t0 > frac * 2.0:
                    break
                if not startup and done and done[-1] >= target_step:
                    time.sleep(frac * step_secs(killed, done[-1]))
                    break
                time.sleep(0.02)
            if proc.poll() is not None:
                print(f"attempt {k}: the run ended before the kill; use more --steps", flush=True)
                return 1
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            in_startup += startup
            done = train_steps(events(log))
            where = f"after step {done[-1]}" if done else "before the first step"
            if any((killed / "checkpoints").glob(".step-*.tmp")):
                # A newer temp folder than any complete one: the kill cut a checkpoint write.
                newest_tmp = max(
                    int(t.name[len(".step-") : -len(".tmp")])
                    for t in (killed / "checkpoints").glob(".step-*.tmp")
                )
                after = complete_checkpoints(killed)
                if newest_tmp > (after[-1][0] if after else 0):
                    mid_checkpoint += 1
                    where += ", inside a checkpoint write"
        got = resumed_from(events(log))
        if got is not None:
            ok = got == expect
            resumed += len(pending) if ok else 0
            if not ok:
                print(f"attempt {k} resumed from step {got}, not {expect}", flush=True)
            pending = []
        if not final:
            pending.append(k)
        problems = damage(killed, a.bin, loaded)
        corrupt += bool(problems)
        for msg in problems:
            print(f"attempt {k}: {msg}", flush=True)
        print(f"attempt {k}: resumed from step {got}, killed {where}" if not final
              else f"final run: resumed from step {got}, exit status {proc.returncode}", flush=True)

    # Equivalence with the uninterrupted run.
    info = json.loads((killed / "run.json").read_text())
    want, have = latest_losses(straight), latest_losses(killed)
    same_steps = sorted(want) == sorted(have) == list(range(1, steps + 1))
    diffs = [abs(have[s] - want[s]) for s in want if s in have]
    max_diff = max(diffs) if diffs else float("inf")
    final_want, final_have = want.get(steps), have.get(steps)
    weights_same = (
        (straight / f"checkpoints/step-{steps}/model.safetensors").read_bytes()
        == (killed / f"checkpoints/step-{steps}/model.safetensors").read_bytes()
    )
    finished = info["status"] == "completed" and info["step"] == steps
    ok = (
        resumed == a.kills
        and not pending
        and corrupt == 0
        and finished
        and same_steps
        and final_have == final_want
        and weights_same
    )
    print(
        f"losses of all {steps} steps: largest difference {max_diff:.3g}; "
        f"final model weights {'bit-identical' if weights_same else 'DIFFERENT'}; "
        f"stray temporary checkpoint folders left: "
        f"{len(list((killed / 'checkpoints').glob('.step-*')))}"
    )
    print(
        f"kill-resume: {resumed}/{a.kills} resumed, {corrupt} corrupt, "
        f"{mid_checkpoint} kills inside a checkpoint write, {in_startup} before training; "
        f"final loss {final_have} vs {final_want} uninterrupted "
        f"({'equal' if final_have == final_want else 'DIFFERENT'}); "
        f"{'PASS' if ok else 'FAIL'}"
    )
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def step_secs(run: Path, step: int) -> float:
    """How long the reported step took (metrics.jsonl `secs`), 0.5 s if unknown."""
    for line in reversed((run / "metrics.jsonl").read_text(errors="replace").splitlines()):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("step") == step and "secs" in v:
            return float(v["secs"])
    return 0.5


if __name__ == "__main__":
    sys.exit(main())
