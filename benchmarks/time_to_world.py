"""Time to world (issue 14): what a user waits for, from a new `worldgen pano` process to its GLB.

One run, side by side, on one machine:

  cold_fast_s       a whole `worldgen pano --preset fast` process (new each time, weights on disk,
                    GLB written): the wall time around the subprocess, nothing dropped;
  cold_published_s  the same with the published recipe;
  served_fast_s     second and later `worldgen pano --server URL --preset fast` calls against a running
                    `worldgen serve` (null, with the reason, where this worldgen has no `serve`);
  published_s       in-process sampling of the published recipe (``speed_memory.py``, run as a child);
  original_s        the ORIGINAL JointNet panorama pipeline (apple/ml-jointnet, its own code on
                    diffusers 0.19.3, ``original_pipeline.py``) on the same weights, same recipe, in
                    the same run; its code and wheels are not committed: ``--original-code`` and
                    ``--original-wheels`` (benchmarks/NOTES.md, "The original pipeline");
  original_style_s  worldgen's re-creation of the original loop (``original_loop.py``), as before;
  served_phases     a resident pipeline's phases per world (``served_phases.py``: sampling, decode,
                    scene write and GLB), against which ``served_fast_s`` shows the HTTP overhead.

``ratios`` holds each figure against the original's. ``--tiny --device cpu`` runs every part with
test-sized models on a small panorama, to catch mistakes before device time is spent.

Set-up, as a user would have it: SD 2.1-base-sized random weights (``sd21_models.py``) written in the
official layout (``unet/`` + ``jointnet/``, config.json + diffusion_pytorch_model.bin, float32
pickles as the release ships) and a diffusers-layout base folder whose scheduler config names
PNDMScheduler (as stabilityai/stable-diffusion-2-1-base does); then `worldgen models add ... --default`.
The weights were just written, so they sit in the OS page cache: "cold" means a new process, not a
machine just booted (a first read from disk adds the disk's read time on top).

    . benchmarks/device_env.sh && python3 benchmarks/time_to_world.py --out "$OUT" \
        --original-code .original/ml-jointnet --original-wheels .original/wheels
    python3 benchmarks/time_to_world.py --device cpu --tiny --skip-gpu-tests --out /tmp/ttw \
        --original-code .original/ml-jointnet --original-wheels .original/wheels   # CPU dry run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ttw_children  # noqa: E402  (benchmarks/ is on the path only now)

PROMPT = "a misty fjord at dawn, steep green cliffs, still water"
PHASE = re.compile(r"^phase (.+?)\s+(\d+\.\d{3}) s$")


def log(*parts) -> None:
    print("[time_to_world]", *parts, file=sys.stderr, flush=True)


# ---- set-up: weights on disk as a user has them ------------------------------------------------------

def write_official_layout(work: Path, device: str, tiny: bool) -> tuple[Path, Path, dict]:
    """Random SD 2.1-base-sized parts, written as the release ships them; returns (checkpoint, base, info)."""
    import torch

    import sd21_models
    from worldgen.backends.jointnet.loading import (BRANCH_DIRS, CONFIG_NAME, PICKLE_NAME, branch_config_json,
                                                     quiet_loading)
    from worldgen.backends.jointnet.tiny import SD21_SCHEDULER

    t0 = time.perf_counter()
    parts = sd21_models.build(device, torch.float32, tiny=tiny)
    built = time.perf_counter() - t0
    checkpoint, base = work / "rgbd_finetune_sd21b", work / "stable-diffusion-2-1-base"
    t0 = time.perf_counter()
    for sub, branch in zip(BRANCH_DIRS, (parts["jointnet"].unet, parts["jointnet"].jointnet)):
        (checkpoint / sub).mkdir(parents=True)
        (checkpoint / sub / CONFIG_NAME).write_text(branch_config_json(branch))
        state = {k: v.detach().cpu().contiguous() for k, v in branch.state_dict().items()}
        torch.save(state, checkpoint / sub / PICKLE_NAME)  # a float32 pickle, as diffusers 0.19.3 wrote it
        del state
    parts["vae"].save_pretrained(base / "vae", safe_serialization=True)
    with quiet_loading():
        parts["text_encoder"].save_pretrained(base / "text_encoder", safe_serialization=True)
    tokenizer = parts["tokenizer"]
    tokenizer.save_pretrained(base / "tokenizer")
    (base / "tokenizer" / "vocab.json").write_text(json.dumps(tokenizer.get_vocab()) + "\n")
    (base / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    # stabilityai/stable-diffusion-2-1-base's scheduler/scheduler_config.json names PNDM (these are its
    # values); the published preset must still sample with DDIM.
    (base / "scheduler").mkdir(parents=True)
    (base / "scheduler" / "scheduler_config.json").write_text(json.dumps({
        "_class_name": "PNDMScheduler", **{k: SD21_SCHEDULER[k] for k in (
            "beta_start", "beta_end", "beta_schedule", "num_train_timesteps", "clip_sample", "set_alpha_to_one",
            "steps_offset", "prediction_type")}, "skip_prk_steps": True, "trained_betas": None}, indent=2) + "\n")
    written = time.perf_counter() - t0
    sizes = {str(p.relative_to(work)): p.stat().st_size for p in sorted(work.rglob("*")) if p.is_file()
             and p.stat().st_size > 1 << 20}
    info = {"build_s": round(built, 2), "write_s": round(written, 2),
            "parameters_m": {k: round(sd21_models.parameter_count(parts[k]) / 1e6, 1)
                             for k in ("jointnet", "vae", "text_encoder")},
            "files_over_1mib": sizes,
            "scheduler_class_in_base": json.loads((base / "scheduler" / "scheduler_config.json").read_text())[
                "_class_name"]}
    del parts
    if device != "cpu":
        torch.cuda.empty_cache()
    return checkpoint, base, info


# ---- whole processes ------------------------------------------------------------------------------

def run_process(argv: list[str], env: dict, log_path: Path, timeout: float) -> dict:
    """Run one process to its end: wall seconds around it, its own peak RSS (wait4), exit code, stderr."""
    with open(log_path, "w") as err:
        start = time.perf_counter()
        # cwd: the log's folder, never the source tree (its worldgen/ would shadow the installed package).
        proc = subprocess.Popen(argv, env=env, stdout=err, stderr=subprocess.STDOUT, cwd=log_path.parent)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log_path.read_text(errors="replace")
    phases = {m.group(1).strip(): float(m.group(2)) for m in map(PHASE.match, text.splitlines()) if m}
    return {"seconds": round(wall, 3), "rc": proc.returncode, "peak_rss_gib": round(usage.ru_maxrss / (1 << 20), 3),
            "phases": phases, "tail": text[-600:] if proc.returncode else None}


def summary(runs: list[dict]) -> dict:
    ok = [r["seconds"] for r in runs if r["rc"] == 0]
    return {"median_s": statistics.median(ok) if ok else None, "seconds": [r["seconds"] for r in runs],
            "failed": sum(r["rc"] != 0 for r in runs)}


def median_phases(runs: list[dict]) -> dict:
    names = dict.fromkeys(name for r in runs if r["rc"] == 0 for name in r["phases"])
    return {n: round(statistics.median(r["phases"].get(n, 0.0) for r in runs if r["rc"] == 0), 3) for n in names}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_runs(worldgen: list[str], env: dict, work: Path, pano_args: list[str], repeats: int,
                timeout: float) -> dict:
    """`worldgen serve` once, then `pano --server URL` calls: the first loads the models, the rest count."""
    helped = subprocess.run([*worldgen, "serve", "--help"], env=env, capture_output=True, text=True, cwd=work)
    if helped.returncode != 0:
        return {"served_fast_s": None, "reason": "this worldgen has no `worldgen serve` command "
                                                 "(issue 14 goal 2 is not merged here)"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve_args: list[str] = []
    if "--device" in pano_args:  # the server picks the device; `pano --server` refuses --device
        at = pano_args.index("--device")
        serve_args, pano_args = pano_args[at:at + 2], pano_args[:at] + pano_args[at + 2:]
    serve_log = open(work / "serve.log", "w")
    server = subprocess.Popen([*worldgen, "serve", "--port", str(port), *serve_args], env=env, stdout=serve_log,
                              stderr=subprocess.STDOUT, cwd=work)
    runs = []
    try:
        deadline = time.perf_counter() + timeout
        first = None
        while time.perf_counter() < deadline and server.poll() is None:  # until the server answers a world
            first = run_process([*worldgen, "pano", PROMPT, "--server", url, "--preset", "fast", "--seed", "0",
                                 "-o", str(work / "served-0.glb"), *pano_args], env, work / "served-0.log", timeout)
            if first["rc"] == 0:
                break
            time.sleep(1.0)
        if first is None or first["rc"] != 0:
            return {"served_fast_s": None, "reason": "`worldgen serve` did not make a first world: "
                    + ((first or {}).get("tail") or (work / "serve.log").read_text()[-400:])}
        for i in range(1, repeats + 1):
            runs.append(run_process([*worldgen, "pano", PROMPT, "--server", url, "--preset", "fast", "--seed",
                                     str(i), "-o", str(work / f"served-{i}.glb"), *pano_args], env,
                                    work / f"served-{i}.log", timeout))
        out = summary(runs)
        return {"served_fast_s": out["median_s"], "first_call_s": first["seconds"], "runs": out,
                "glb_written": all((work / f"served-{i}.glb").is_file() for i in range(1, repeats + 1))}
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        serve_log.close()


# ---- in-process sampling: speed_memory.py's published and original-style configurations --------------

def in_process(args, out: Path, env: dict) -> dict:
    argv = [sys.executable, str(HERE / "speed_memory.py"), "--device", args.device, "--out", str(out / "speed"),
            "--configs", "published,baseline", "--repeats", str(args.repeats), "--tag", "time_to_world"]
    if args.tiny:
        argv += ["--tiny", "--steps", "3", "--warmup", "0"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=args.timeout_s * 4, cwd=HERE.parent)
    path = out / "speed" / "speed_memory.json"
    if done.returncode != 0 or not path.is_file():
        return {"published_s": None, "original_style_s": None, "reason": done.stderr[-800:]}
    report = json.loads(path.read_text())
    rows = {row["name"]: row for row in report.get("configs", [])}
    published, baseline = rows.get("published", {}), rows.get("baseline", {})
    return {"published_s": published.get("median_s"), "original_style_s": baseline.get("median_s"),
            "published_seconds": published.get("seconds"), "original_seconds": baseline.get("seconds"),
            "speedup_vs_original_style": (baseline["median_s"] / published["median_s"]
                                    if published.get("median_s") and baseline.get("median_s") else None),
            "published_evals_per_step": published.get("evals_per_step"),
            "original_evals_per_step": baseline.get("evals_per_step"), "steps": 3 if args.tiny else 50}


def versions() -> dict:
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("diffusers", "transformers", "safetensors"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
        out["cuda"] = torch.version.cuda
    out["cpu_count"] = os.cpu_count()
    return out


def cold_figures(args, report: dict, save, *, worldgen, env, work: Path, pano_args) -> None:
    """New `worldgen pano` processes, fast and published interleaved: medians, phases, peak memory."""
    cold: dict[str, list] = {"fast": [], "published": []}
    for i in range(args.repeats):  # interleaved, so both see the same machine state
        for preset in ("fast", "published"):
            run = run_process([*worldgen, "pano", PROMPT, "--preset", preset, "--seed", str(i),
                               "-o", str(work / f"cold-{preset}-{i}.glb"), *pano_args], env,
                              work / f"cold-{preset}-{i}.log", args.timeout_s)
            run["glb_bytes"] = (work / f"cold-{preset}-{i}.glb").stat().st_size if run["rc"] == 0 else None
            cold[preset].append(run)
            log(f"cold {preset} #{i}: {run['seconds']} s rc {run['rc']}", run.get("tail") or "")
            report["cold_runs"] = cold
            save()
    report["cold_scene_records"] = {preset: _scene_record(work / f"cold-{preset}-0") for preset in cold}
    for preset in cold:
        s = summary(cold[preset])
        report[f"cold_{preset}_s"] = s["median_s"]
        report[f"cold_{preset}"] = {**s, "phases_median": median_phases(cold[preset]),
                                    "peak_rss_gib_max": max(r["peak_rss_gib"] for r in cold[preset])}
    save()


def warm_figures(args, report: dict, save, *, worldgen, env, work: Path, out: Path, pano_args, checkpoint: Path,
                 base: Path) -> None:
    """The served, in-process and original figures, their phases and ratios, into ``report``."""
    served = served_runs(worldgen, env, work, pano_args, args.repeats, args.timeout_s)
    report["served_fast_s"] = served.pop("served_fast_s")
    report["served"] = served
    log("served", report["served_fast_s"], served.get("reason", ""))
    save()
    report["served_phases"] = ttw_children.run_served_phases(env, work, device=args.device, tiny=args.tiny,
                                                             repeats=args.repeats, timeout=args.timeout_s * 2)
    log("served phases", report["served_phases"].get("phases_median") or report["served_phases"].get("reason"))
    save()
    if not args.skip_in_process:
        sampling = in_process(args, out, env)
        report.update({k: sampling.pop(k) for k in ("published_s", "original_style_s")})
        report["in_process"] = sampling
        save()
    original = ttw_children.run_original(args.original_code, args.original_wheels, checkpoint, base, work,
                                         device=args.device, tiny=args.tiny, repeats=args.repeats,
                                         timeout=args.timeout_s * 4)
    report["original_s"] = original.pop("original_s")
    report["original"] = original
    log("original", report["original_s"], original.get("reason", ""))
    report["ratios"] = ttw_children.ratios(report)
    save()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="test-sized models and a small panorama (CPU dry run)")
    parser.add_argument("--out", default="benchmarks/results/time_to_world")
    parser.add_argument("--work", default="/tmp/time-to-world", help="where the weights and worlds go (deleted after)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=240.0, help="per process")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--original-code", default=None,
                        help="folder of the original JointNet code (apple/ml-jointnet; benchmarks/NOTES.md)")
    parser.add_argument("--original-wheels", default=None,
                        help="folder of the original's wheels: diffusers 0.19.3 and its transformers, "
                             "huggingface_hub, tokenizers (default: wheels/ beside --original-code)")
    parser.add_argument("--skip-gpu-tests", action="store_true", help="do not run `pytest -m gpu` first")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    report: dict = {"benchmark": "time_to_world", "versions": versions(), "device": args.device, "tiny": args.tiny,
                    "prompt": PROMPT, "repeats": args.repeats}

    def save() -> None:
        (out / "time_to_world.json").write_text(json.dumps(report, indent=1, default=str) + "\n")

    if not args.skip_gpu_tests:  # the CUDA-graph and compile paths' tests run wherever this benchmark runs
        from gpu_tests import run_gpu_tests

        report["gpu_tests"] = run_gpu_tests(out / "gpu_tests.log")
        log("gpu tests", report["gpu_tests"]["summary"])
        save()

    checkpoint, base, report["setup"] = write_official_layout(work, args.device, args.tiny)
    log("weights written", report["setup"]["write_s"], "s")
    save()

    env = dict(os.environ, WORLDGEN_HOME=str(work / "home"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH")]))
    worldgen = [sys.executable, "-m", "worldgen.cli.main"]
    added = run_process([*worldgen, "models", "add", str(checkpoint), "--name", "rgbd", "--base", str(base),
                         "--default"], env, work / "models-add.log", args.timeout_s * 2)
    report["models_add"] = {k: v for k, v in added.items() if k != "phases"}
    report["original_files_unchanged"] = all(
        (checkpoint / sub / "diffusion_pytorch_model.bin").is_file() for sub in ("unet", "jointnet"))
    log("models add", added["seconds"], "s, rc", added["rc"])
    save()

    pano_args = ["--verbose", "-q"] + (["--device", "cpu", "--size", "128x64"] if args.tiny else [])
    cold_figures(args, report, save, worldgen=worldgen, env=env, work=work, pano_args=pano_args)
    warm_figures(args, report, save, worldgen=worldgen, env=env, work=work, out=out, pano_args=pano_args,
                 checkpoint=checkpoint, base=base)
    report["goals"] = {"cold_fast_le_10s": _le(report.get("cold_fast_s"), 10.0),
                       "cold_published_le_15s": _le(report.get("cold_published_s"), 15.0),
                       "served_fast_le_1.5s": _le(report.get("served_fast_s"), 1.5),
                       "published_le_4s": _le(report.get("published_s"), 4.0)}
    report["total_s"] = round(time.perf_counter() - started, 1)
    save()
    shutil.rmtree(work, ignore_errors=True)  # gigabytes of weights; the JSON keeps the failed runs' log tails
    log(json.dumps({k: report.get(k) for k in ("cold_fast_s", "cold_published_s", "served_fast_s", "published_s",
                                                "original_s", "ratios", "total_s")}))
    return 0


def _scene_record(scene_dir: Path):
    """What the scene says made it (backend, its settings, steps): proof the run used JointNet and the preset."""
    try:
        version = json.loads((scene_dir / "scene.json").read_text())["versions"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return {"backend": version.get("backend"), "steps": version.get("params", {}).get("steps")}


def _le(value, limit):
    return None if value is None else bool(value <= limit)


if __name__ == "__main__":
    sys.exit(main())
