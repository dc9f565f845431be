"""`worldgen batch` on 1 GPU against N GPUs, in one run; prints one JSON object.

What it checks (issue 11, the device part):
  tiny   16 small worlds from a tiny random JointNet, on 1 GPU and on N GPUs: the files must be the
         same (byte for byte, scene.json creation times aside; else within a stated tolerance).
  full   full-size (SD 2.1-base shaped) random-weight JointNet, 2048x512 panoramas, on 1 GPU and on
         N GPUs: worlds per minute of each, and the speed-up.
  train  (--train) a short distributed training run on the tiny model: 2 processes to step 4, resumed
         on 1 process to step 6, resumed on 2 again to step 8; checkpoints from one rank only.

Everything is built in code (random weights, a character-level tokenizer): nothing is downloaded.
Run it from the repository root on the GPU machine (see docs/scale-out.md for the set-up there):

    python3 benchmarks/batch_gpus.py --work /tmp/wg-bench --json-out "$OUT/batch_gpus.json"

On a machine without GPUs, `--cpu` runs the same phases with CPU processes (torchrun + gloo) and a
small "full" model, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROMPTS = [
    "a misty fjord at dawn", "rolling green hills under a summer sky", "a red desert canyon at noon",
    "snowy mountains at night with stars", "a lake in autumn with orange trees", "a tropical beach with palm trees",
    "a foggy pine forest", "a volcanic island at sunset", "a wide savanna with acacia trees",
    "a glacier valley under clouds", "a lavender field in provence", "a rocky coastline in a storm",
    "a bamboo forest in the rain", "a salt flat under a pink sky", "terraced rice fields in the mountains",
    "a quiet harbour with fishing boats", "a moonlit dune sea", "a mossy canyon with a waterfall",
    "an alpine meadow with flowers", "a frozen lake under the northern lights",
]

# Stable Diffusion 2.1-base shapes (the published configs' values), for a random-weight model of the real size.
SD21_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, norm_num_groups=32,
)
SD21_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    norm_num_groups=32, sample_size=512, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215,
)
SD21_TEXT = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                 num_attention_heads=16, max_position_embeddings=77, projection_dim=512, hidden_act="gelu",
                 bos_token_id=0, eos_token_id=1, pad_token_id=1)

# How far 1-GPU and N-GPU outputs may differ when they are not bit-identical.
TOLERANCE = {"png8": 2, "png16": 160, "npy": 2.5e-3}
SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/wg-bench"), help="scratch folder (emptied first)")
    parser.add_argument("--gpus", type=int, default=2, help="processes of the multi-GPU runs")
    parser.add_argument("--launcher", choices=("accelerate", "torchrun"), default="accelerate")
    parser.add_argument("--tiny-worlds", type=int, default=16)
    parser.add_argument("--tiny-size", default="256x64")
    parser.add_argument("--tiny-steps", type=int, default=4)
    parser.add_argument("--full-worlds", type=int, default=8)
    parser.add_argument("--full-size", default="2048x512")
    parser.add_argument("--full-steps", type=int, default=50)
    parser.add_argument("--full-dtype", default="bfloat16", help="bfloat16: random weights cannot overflow it")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--train", action="store_true", help="also check distributed training and its resume")
    parser.add_argument("--cpu", action="store_true", help="CPU processes and a small 'full' model (script check)")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--build-full", type=Path, default=None, help=argparse.SUPPRESS)  # internal: child process
    args = parser.parse_args()
    if args.build_full is not None:
        build_full_model(args.build_full, args.full_dtype, small=args.cpu)
        return 0

    report: dict = {"device": device_info(args)}
    problem = check_environment(args)
    if problem:
        report["error"] = problem
        return finish(report, args)
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    env = child_env(args)

    if not args.skip_tiny:
        report["tiny"] = tiny_phase(args, env)
    if not args.skip_full:
        report["full"] = full_phase(args, env)
    if args.train:
        report["train"] = train_phase(args, env)
    report["ok"] = all(report[k].get("ok", False) for k in ("tiny", "full", "train") if k in report)
    return finish(report, args)


# Set-up -----------------------------------------------------------------------------------------

def device_info(args) -> dict:
    import torch

    info = {"torch": torch.__version__, "python": sys.version.split()[0], "cpu_mode": args.cpu}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def check_environment(args) -> str | None:
    missing = []
    for module in ("diffusers", "transformers", "accelerate", "safetensors", "worldgen"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        return (f"missing Python packages {missing}; carry them as wheels and install worldgen with "
                f"`python3 -m pip install --no-deps --no-build-isolation -e .` (docs/scale-out.md)")
    from importlib.metadata import entry_points

    if "jointnet" not in {ep.name for ep in entry_points(group="worldgen.backends")}:
        return "worldgen is importable but not installed (no entry points); run `python3 -m pip install --no-deps --no-build-isolation -e .`"
    if not args.cpu:
        import torch

        if torch.cuda.device_count() < args.gpus:
            return f"{torch.cuda.device_count()} GPUs visible, {args.gpus} needed; use the nvidia-h200-x{args.gpus} machine"
    return None


def child_env(args) -> dict:
    env = dict(os.environ)
    env.update(SAFE_ENV)  # NVLink multicast stays off on these shared hosts
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "WORLDGEN_HOME": str(args.work / "home"), "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "4")})
    if args.cpu:
        env["ACCELERATE_USE_CPU"] = "true"
    return env


def launch(args, env: dict, processes: int, module: str, module_args: list[str], log: Path) -> tuple[int, float, str]:
    """Run `python -m MODULE ARGS` as `processes` processes; returns (exit code, wall seconds, stdout)."""
    env = dict(env)
    if args.cpu or args.launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes",
               str(processes), "--mixed_precision", "no", "--dynamo_backend", "no"]
        if processes > 1:
            cmd += ["--multi_gpu", "--main_process_port", "29517"]
    if not args.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(processes))
    cmd += ["-m", module, *module_args]
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}", encoding="utf-8")
    return result.returncode, wall, result.stdout


def write_jobs(path: Path, count: int, size: str, steps: int) -> Path:
    lines = [json.dumps({"prompt": PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f", variation {i}"),
                         "size": size, "steps": steps}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_batch(args, env, processes: int, jobs: Path, out: Path, extra: list[str], log: Path) -> dict:
    rc, wall, stdout = launch(args, env, processes, "worldgen.cli.main",
                              ["batch", str(jobs), "-o", str(out), "--json", "-q", *extra], log)
    try:
        summary = json.loads(out.joinpath(".batch", "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        summary = {}
    return {"processes": processes, "exit_code": rc, "launch_wall_seconds": round(wall, 2),
            **({"log_tail": log.read_text()[-2500:]} if rc != 0 else {}),
            "done": summary.get("done"), "failed": summary.get("failed"), "failures": summary.get("failures", [])[:5],
            "seconds_per_world": summary.get("seconds_per_world"),
            "worlds_per_minute": summary.get("worlds_per_minute"),
            "worlds_per_minute_after_load": summary.get("worlds_per_minute_after_load"),
            "load_seconds": [r.get("load_seconds") for r in summary.get("ranks", [])],
            "log": str(log)}


# Tiny: same files on 1 and N GPUs ---------------------------------------------------------------

def tiny_phase(args, env) -> dict:
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    model = write_tiny_checkpoint(args.work / "tiny-model", seed=0)
    jobs = write_jobs(args.work / "tiny.jsonl", args.tiny_worlds, args.tiny_size, args.tiny_steps)
    # float32 and a pinned window batch: the same arithmetic on every GPU, whatever memory is free.
    extra = ["--backend", "jointnet", "--model", str(model), "--dtype", "float32", "--window-batch", "4"]
    if args.cpu:
        extra += ["--device", "cpu"]
    one = run_batch(args, env, 1, jobs, args.work / "tiny-1", extra, args.work / "tiny-1.log")
    many = run_batch(args, env, args.gpus, jobs, args.work / f"tiny-{args.gpus}", extra,
                     args.work / f"tiny-{args.gpus}.log")
    comparison = compare_outputs(args.work / "tiny-1", args.work / f"tiny-{args.gpus}")
    ok = (one["done"] == many["done"] == args.tiny_worlds and comparison["verdict"] != "different")
    return {"ok": ok, "worlds": args.tiny_worlds, "size": args.tiny_size, "steps": args.tiny_steps,
            "one": one, "many": many, "compare": comparison}


def compare_outputs(first: Path, second: Path) -> dict:
    """File by file: identical bytes, or identical after dropping scene.json's times, or the largest
    difference of the arrays inside (PNG levels, .npy values); GLBs follow their layers."""
    def files(root: Path) -> dict[str, Path]:
        return {str(p.relative_to(root)): p for p in sorted(root.rglob("*"))
                if p.is_file() and p.relative_to(root).parts[0] != ".batch"}

    a, b = files(first), files(second)
    out = {"files": len(a), "only_in_one": sorted(set(a) ^ set(b))[:10], "identical": 0, "differing": [],
           "max_diff": {"png8": 0, "png16": 0, "npy": 0.0}}
    within = True
    for rel in sorted(set(a) & set(b)):
        da, db = a[rel].read_bytes(), b[rel].read_bytes()
        if da == db or (rel.endswith("scene.json") and _manifest(da) == _manifest(db)):
            out["identical"] += 1
            continue
        kind, diff = _array_diff(a[rel], b[rel])
        out["differing"].append({"file": rel, "kind": kind, "max_abs_diff": diff})
        if kind in TOLERANCE:
            out["max_diff"][kind] = max(out["max_diff"][kind], diff)
            within &= diff <= TOLERANCE[kind]
        elif kind != "glb":  # a GLB is derived from its layers: judged through them
            within = False
    out["differing"] = out["differing"][:20]
    if out["only_in_one"] or not a:
        out["verdict"] = "different"
    elif out["identical"] == len(a):
        out["verdict"] = "identical"
    else:
        out["verdict"] = "within_tolerance" if within else "different"
    out["tolerance"] = TOLERANCE
    return out


def _manifest(data: bytes):
    try:
        manifest = json.loads(data)
    except json.JSONDecodeError:
        return None
    manifest.pop("created", None)
    for version in manifest.get("versions", []):
        version.pop("created", None)
        version.get("backend", {}).get("settings", {}).pop("device", None)
    return manifest


def _array_diff(pa: Path, pb: Path) -> tuple[str, float]:
    import numpy as np

    if pa.suffix == ".npy":
        x, y = np.load(pa, allow_pickle=False), np.load(pb, allow_pickle=False)
        return "npy", float(np.max(np.abs(x.astype(np.float64) - y))) if x.shape == y.shape else float("inf")
    if pa.suffix == ".png":
        from PIL import Image

        x, y = np.asarray(Image.open(pa)), np.asarray(Image.open(pb))
        kind = "png16" if x.dtype == np.uint16 or Image.open(pa).mode.startswith("I") else "png8"
        diff = float(np.max(np.abs(x.astype(np.int64) - y))) if x.shape == y.shape else float("inf")
        return kind, diff
    if pa.suffix == ".glb":
        return "glb", float(abs(pa.stat().st_size - pb.stat().st_size))
    return "other", float("inf")


# Full size: worlds per minute on 1 and N GPUs ---------------------------------------------------

def build_full_model(directory: Path, dtype_name: str, small: bool) -> None:
    """A random-weight JointNet checkpoint with SD 2.1-base shapes (or tiny ones with --cpu)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from worldgen.backends.jointnet.loading import save_pair
    from worldgen.backends.jointnet.pair import JointNetPair
    from worldgen.backends.jointnet.tiny import SD21_SCHEDULER, TINY_UNET, TINY_VAE, _write_base, tiny_tokenizer

    dtype = getattr(torch, dtype_name)
    device = torch.device("cuda" if torch.cuda.is_available() and not small else "cpu")
    torch.manual_seed(0)
    unet_cfg, vae_cfg = (TINY_UNET, TINY_VAE) if small else (SD21_UNET, SD21_VAE)
    text_cfg = dict(SD21_TEXT, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                    projection_dim=32, vocab_size=1000) if small else SD21_TEXT
    with device:  # initialising 2 billion parameters is quick on a GPU, slow on a CPU
        unet = UNet2DConditionModel(**unet_cfg)
        parts = {"unet": unet, "vae": AutoencoderKL(**vae_cfg), "text_encoder": CLIPTextModel(CLIPTextConfig(**text_cfg)),
                 "tokenizer": tiny_tokenizer(), "scheduler": DDIMScheduler(**SD21_SCHEDULER)}
        pair = JointNetPair.from_unet(unet)
    for name in ("unet", "vae", "text_encoder"):
        parts[name] = parts[name].to(dtype)
    staging = directory.with_name(directory.name + ".partial")
    _write_base(parts, staging / "base")
    save_pair(pair.to(dtype), staging, modality="depth")
    staging.rename(directory)


def full_phase(args, env) -> dict:
    model = args.work / "full-model"
    started = time.perf_counter()
    build = subprocess.run([sys.executable, __file__, "--build-full", str(model), "--full-dtype", "float16",
                            *(["--cpu"] if args.cpu else [])], env=env, capture_output=True, text=True)
    build_seconds = time.perf_counter() - started
    if build.returncode != 0:
        return {"ok": False, "error": "building the random model failed", "stderr": build.stderr[-3000:]}
    size = "256x64" if args.cpu else args.full_size
    steps = min(args.full_steps, 4) if args.cpu else args.full_steps
    jobs = write_jobs(args.work / "full.jsonl", args.full_worlds, size, steps)
    extra = ["--backend", "jointnet", "--model", str(model), "--dtype", args.full_dtype]
    if args.cpu:
        extra += ["--device", "cpu"]
    one = run_batch(args, env, 1, jobs, args.work / "full-1", extra, args.work / "full-1.log")
    many = run_batch(args, env, args.gpus, jobs, args.work / f"full-{args.gpus}", extra,
                     args.work / f"full-{args.gpus}.log")
    speedup = {}
    for key in ("worlds_per_minute", "worlds_per_minute_after_load"):
        if one.get(key) and many.get(key):
            speedup[key] = round(many[key] / one[key], 3)
    ok = one["done"] == many["done"] == args.full_worlds
    return {"ok": ok, "worlds": args.full_worlds, "size": size, "steps": steps, "dtype": args.full_dtype,
            "model_build_seconds": round(build_seconds, 1), "one": one, "many": many, "speedup": speedup}


# Training: distributed run, resumed on another number of processes -----------------------------

def train_phase(args, env) -> dict:
    import numpy as np
    from PIL import Image

    base = args.work / "tiny-model" / "base"
    if not base.is_dir():
        from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

        write_tiny_checkpoint(args.work / "tiny-model", seed=0)
    data = args.work / "train-data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        yy, xx = np.mgrid[0:64, 0:64] / 63.0
        image = np.stack([xx, yy, rng.random() * np.ones_like(xx)], -1)
        Image.fromarray((image * 255).astype(np.uint8)).save(data / f"img{i}.png")
        (data / f"img{i}.txt").write_text(PROMPTS[i], encoding="utf-8")
        np.save(data / f"img{i}.depth.npy", (1.0 - yy).astype(np.float32))
    run = args.work / "train-run"
    common = ["--modality", "depth", "--base", str(base), "--data", str(data), "--out", str(run),
              "--resolution", "64", "--batch-size", "2", "--checkpoint-every", "2", "--validation-every", "0",
              "--validation-steps", "2", "--report-to", "none", "--num-workers", "0", "--warmup-steps", "0",
              "--log-every", "1", "--mixed-precision", "no", "-q"]
    stages = []
    for processes, steps, resume in ((args.gpus, 4, False), (1, 6, True), (args.gpus, 8, True)):
        rc, wall, _ = launch(args, env, processes, "worldgen.training",
                             [*common, "--steps", str(steps), *(["--resume"] if resume else [])],
                             args.work / f"train-{steps}.log")
        log = args.work / f"train-{steps}.log"
        stages.append({"processes": processes, "to_step": steps, "resume": resume, "exit_code": rc,
                       "wall_seconds": round(wall, 1), "checkpoints": _checkpoints(run), "state": _state(run, steps),
                       **({"log_tail": log.read_text()[-2500:]} if rc != 0 else {})})
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()] \
        if (run / "train_log.jsonl").is_file() else []
    steps_logged = [r["step"] for r in log]
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if not p.name.startswith("step-")] \
        if (run / "checkpoints").is_dir() else []
    import math

    # The data stream's position is the samples really consumed: steps x batch x processes of each stage,
    # summed, so a run resumed on another number of GPUs neither repeats nor skips examples.
    expected_seen, seen = [], 0
    for stage, previous in zip(stages, [0] + [s["to_step"] for s in stages]):
        seen += (stage["to_step"] - previous) * 2 * stage["processes"]
        expected_seen.append(seen)
    ok = (all(s["exit_code"] == 0 for s in stages)
          and [s["state"].get("samples_seen") for s in stages] == expected_seen
          and steps_logged == list(range(1, 9))  # each step logged once: one writer, no step repeated or skipped
          and all(math.isfinite(r["loss"]) for r in log)
          and [s["state"].get("step") for s in stages] == [4, 6, 8]
          and [s["state"].get("world_size") for s in stages] == [args.gpus, 1, args.gpus]
          and not leftovers)
    return {"ok": ok, "stages": stages, "samples_seen_expected": expected_seen, "steps_logged": steps_logged, "losses": [round(r["loss"], 5) for r in log],
            "checkpoint_leftovers": leftovers}


def _checkpoints(run: Path) -> list[str]:
    folder = run / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _state(run: Path, step: int) -> dict:
    path = run / "checkpoints" / f"step-{step:08d}" / "trainer_state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {"step": state.get("step"), "world_size": state.get("world_size"), "samples_seen": state.get("samples_seen")}


# Output -----------------------------------------------------------------------------------------

def finish(report: dict, args) -> int:
    text = json.dumps(report, indent=2)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if report.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
