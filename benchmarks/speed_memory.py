"""Speed and GPU memory of worldgen's JointNet panorama and refine paths (issue 8), in one run.

Builds SD 2.1-base-shaped JointNet weights at random (``sd21_models``: nothing is downloaded), then
runs the configurations named by --configs, in that order, on the same GPU in the same process:

  memory         a child process capped to --cap-gb of GPU memory: 2048x512 generation and refinement
                 to 4096x1024 in the low-memory mode; peaks from the allocator's counters + the context
  published      the published recipe (DDIM 50, CFG 7.5, stride 32, whole panorama for 40% of steps)
                 with worldgen's default speed settings on CUDA
  fast           the ``fast`` preset; candidates: --fast-candidates variants of it
  baseline       the original script's way (``original_loop``): windows in batches of 8, one batch
                 after another, a scheduler copy per batch, float16, eager
  plain          worldgen's sampler with every speed setting off (float16, eager)
  eager, flash, channels_last
                 the default settings without CUDA graphs / with PyTorch's attention order / in NHWC
                 layout (ablations)
  compile_blocks, compile_blocks_eager, compile_pair
                 issue 14: the published recipe with torch.compile, static shapes, channels-last: each
                 UNet resnet/transformer block compiled (under CUDA graphs / without them), or the
                 whole pair forward; the warm-up run is the cold compile (an empty --compile-cache)
  warm           a second process on the same --compile-cache: speed="compile" loading the compiled
                 code from disk (its first run and its steady runs, timed)
  vae, profile   the VAE decode in two layouts; one panorama under torch.profiler by kernel family
  repeat         published and fast again (the spread between runs of one process)

Each configuration: one warm-up run (graph capture and compilation happen there), then --repeats
timed runs with seeds 1..repeats (median reported; times bracket the whole task with
torch.cuda.synchronize()). FLOPs are counted with torch's FlopCounterMode for every window shape the
model sees; the floor is those FLOPs at the bf16 matrix rate measured in the same run. Seam and layout
metrics (``metrics.py``) are computed on the timed runs' outputs. benchmarks/NOTES.md has the results.

    . benchmarks/device_env.sh && python3 benchmarks/speed_memory.py --out "$OUT"   # on the GPU machine
    python3 benchmarks/speed_memory.py --device cpu --tiny --steps 3                 # a CPU dry run

Prints a table last; writes ``speed_memory.json`` (and ``--results`` if given) with everything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import metrics  # noqa: E402
import original_loop  # noqa: E402
import sd21_models  # noqa: E402

PROMPT = "a wide mountain valley with a lake at sunrise, 360 degree panorama"
GIB = 1 << 30


# Helpers -------------------------------------------------------------------------------------------

def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class FlopMeter:
    """Counts model rows (window evaluations) and FLOPs of every call to a JointNet pair.

    FLOPs per row come from FlopCounterMode on a meta-device copy of the pair, once per window shape,
    so counting costs no GPU time and works the same for compiled and eager models."""

    def __init__(self, pair) -> None:
        from worldgen.backends.jointnet.model import JointNetModel
        from worldgen.backends.jointnet.pair import JointNetPair

        with torch.device("meta"):
            self.meta = JointNetPair(JointNetModel.from_config(pair.unet.config),
                                     JointNetModel.from_config(pair.jointnet.config))
        self.context = None
        self.per_row: dict[tuple[int, int], float] = {}
        self.reset()

    def reset(self) -> None:
        self.rows = 0
        self.calls = 0
        self.flops = 0.0
        self.shapes: dict[str, int] = {}

    def row_flops(self, h: int, w: int, tokens: int, width: int) -> float:
        key = (h, w)
        if key not in self.per_row:
            from torch.utils.flop_counter import FlopCounterMode

            x = torch.empty(1, self.meta.in_channels, h, w, device="meta")
            ctx = torch.empty(1, tokens, width, device="meta")
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                self.meta(x, x, torch.tensor(500.0, device="meta"), ctx)
            self.per_row[key] = float(counter.get_total_flops())
        return self.per_row[key]

    def hook(self, module, args, kwargs):
        x = args[0] if args else kwargs["x_rgb"]
        ctx = args[3] if len(args) > 3 else kwargs["encoder_hidden_states"]
        n, _, h, w = x.shape
        self.rows += n
        self.calls += 1
        self.flops += n * self.row_flops(h, w, ctx.shape[1], ctx.shape[2])
        key = f"{n}x{h}x{w}"
        self.shapes[key] = self.shapes.get(key, 0) + 1

    def attach(self, pair):
        return pair.register_forward_pre_hook(self.hook, with_kwargs=True)


def matmul_tflops(device, size: int = 8192, repeats: int = 30) -> float:
    """Median bf16 matrix-product rate on random data, rotating two input sets (events for timing)."""
    a = [torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2)]
    b = [torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2)]
    for i in range(5):
        a[i % 2] @ b[i % 2]
    times = []
    for i in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a[i % 2] @ b[i % 2]
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * size ** 3 / statistics.median(times) / 1e12


def attention_tflops(device) -> dict:
    """Forward SDPA rate per backend at the two sequence lengths the recipe uses (4096: a 64x64
    window's first level; 16384: the whole-panorama window), head dim 64, bf16."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = {}
    for label, batch_heads, tokens in (("window_4096", 32 * 5, 4096), ("global_16384", 2 * 5, 16384)):
        q, k, v = (torch.randn(1, batch_heads, tokens, 64, device=device, dtype=torch.bfloat16) for _ in range(3))
        flops = 4 * batch_heads * tokens * tokens * 64
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                              ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    for _ in range(3):
                        torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    times = []
                    for _ in range(10):
                        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        s.record()
                        torch.nn.functional.scaled_dot_product_attention(q, k, v)
                        e.record()
                        e.synchronize()
                        times.append(s.elapsed_time(e) / 1e3)
                out[f"{label}_{name}"] = round(flops / statistics.median(times) / 1e12, 1)
            except RuntimeError as exc:
                out[f"{label}_{name}"] = f"unavailable: {str(exc).splitlines()[0][:80]}"
    return out


def versions() -> dict:
    import diffusers
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "cuda": torch.version.cuda}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / GIB, 1)
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def make_backend(parts: dict, device, **kwargs):
    from worldgen.backends.jointnet.backend import JointNetBackend
    from worldgen.backends.jointnet.pipeline import JointNetPipeline

    pipe = parts.get("_pipe")
    if pipe is None:
        pipe = JointNetPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                                scheduler=parts["scheduler"], jointnet=parts["jointnet"])
        parts["_pipe"] = pipe
    return JointNetBackend(pipe, model_dir=Path("random-sd21-jointnet"), base_dir=Path("random-sd21-base"),
                           modality="depth", device=torch.device(device), dtype=parts["jointnet"].dtype, **kwargs)


class LatentTap:
    """Keeps the latents a backend's tiled VAE decodes (the sampler's final result) and times the
    decode (synchronised before and after: the start marks the end of the denoising loop)."""

    def __init__(self, backend) -> None:
        self.latents = None
        self.decode_s: list[float] = []
        vae = backend.vae
        inner = vae.decode

        def decode(latents, *args, **kwargs):
            # The backend decodes its layers as a batch (layers, C, h, w); keep them stacked on
            # channels like the sampler's latent (1, layers * C, h, w).
            self.latents = latents.detach().float().cpu().reshape(1, -1, *latents.shape[-2:])
            sync(latents.device)
            start = time.perf_counter()
            out = inner(latents, *args, **kwargs)
            sync(latents.device)
            self.decode_s.append(time.perf_counter() - start)
            return out

        vae.decode = decode


def run_config(name: str, fn, meter: FlopMeter, steps: int, device, repeats: int, warmup: int) -> dict:
    """Warm-up, then timed runs with seeds 1..repeats; outputs are kept for the quality metrics."""
    log(f"[{name}] warm-up x{warmup}")
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn(0)
    sync(device)
    warm_s = time.perf_counter() - t0
    meter.reset()
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, outputs = [], []
    for seed in range(1, repeats + 1):
        sync(device)
        start = time.perf_counter()
        result = fn(seed)
        sync(device)
        times.append(time.perf_counter() - start)
        outputs.append(result)
        log(f"[{name}] seed {seed}: {times[-1]:.3f} s")
    row = {"name": name, "seconds": [round(t, 4) for t in times], "median_s": statistics.median(times),
           "spread": (max(times) - min(times)) / statistics.median(times), "warmup_s": round(warm_s, 2),
           "model_calls_per_run": meter.calls / repeats, "rows_per_run": meter.rows / repeats,
           "evals_per_step": meter.rows / repeats / steps, "flops_per_run": meter.flops / repeats,
           "call_shapes": {k: round(v / repeats, 2) for k, v in meter.shapes.items()},
           "compiled_graphs_total": _graph_count()}
    if torch.device(device).type == "cuda":
        row["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        row["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / GIB
    row["_outputs"] = outputs
    return row


def _graph_count() -> int:
    """Graphs torch.compile has built in this process so far (a recompile shows up here)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters["stats"]["unique_graphs"])


def vae_decode_times(backend, device, repeats: int = 5) -> dict:
    """Tiled decode of one 2048x512 panorama (RGB + modality latents) with the backend's tiled VAE, in
    the VAE's NCHW layout and in channels-last (cuDNN's native layout for bf16 convolutions)."""
    h, w = backend.window, backend.window * 4
    latents = torch.randn(2, backend.channels, h, w, device=device, dtype=backend.pipe.jointnet.dtype)
    out = {}
    for layout in ("nchw", "channels_last"):
        backend.pipe.vae.to(memory_format=torch.channels_last if layout == "channels_last"
                            else torch.contiguous_format)
        backend._plan_vae_batch(images=2)
        times = []
        for i in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            backend.vae.decode(latents, True)
            sync(device)
            if i:
                times.append(time.perf_counter() - start)
        out[f"{layout}_s"] = round(statistics.median(times), 4)
    backend.pipe.vae.to(memory_format=torch.contiguous_format)
    out["tiles_per_call"] = backend.vae.batch
    return out


def quality(row: dict) -> dict:
    """Seam ratios (mean over seeds) of the decoded RGB/depth and of the final latents."""
    seams = {"rgb": [], "depth": [], "latent_rgb": [], "latent_depth": []}
    for rgb, depth, latents in row["_outputs"]:
        seams["rgb"].append(metrics.wrap_seam_ratio(rgb))
        seams["depth"].append(metrics.wrap_seam_ratio(depth))
        if latents is not None:
            c = latents.shape[1] // 2
            seams["latent_rgb"].append(metrics.wrap_seam_ratio(latents[:, :c]))
            seams["latent_depth"].append(metrics.wrap_seam_ratio(latents[:, c:]))
    return {k: round(statistics.mean(v), 4) for k, v in seams.items() if v}


def agreement(a: dict, b: dict) -> dict:
    """Layout agreement of two configurations' results seed by seed (mean), RGB and depth latents."""
    out = {"rgb": [], "depth": [], "latent": []}
    for (ra, da, la), (rb, db, lb) in zip(a["_outputs"], b["_outputs"]):
        out["rgb"].append(metrics.layout_agreement(ra, rb))
        out["depth"].append(metrics.layout_agreement(da, db))
        if la is not None and lb is not None:
            out["latent"].append(metrics.layout_agreement(la, lb, pool=4))
    return {k: round(statistics.mean(v), 4) for k, v in out.items() if v}


def snapshot_outputs(backend, tap: LatentTap, request_fn):
    def run(seed):
        snap = backend.generate(request_fn(seed))
        return snap.image, snap.modalities["depth"], tap.latents

    return run


# The main process --------------------------------------------------------------------------------

DEFAULT_CONFIGS = "memory,published,fast,baseline,candidates,repeat,eager,flash,profile,plain,vae"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compile_cache:
        # Before anything compiles: the parent fills this cache (cold), the warm child reads it.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(args.compile_cache).resolve())
    if args.child == "memory":
        return memory_child(args)
    if args.child == "warm":
        return warm_child(args)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    gpu_tests = None
    if device.type == "cuda" and not args.skip_gpu_tests:  # CUDA graphs and compile get tested where this runs
        from gpu_tests import run_gpu_tests

        gpu_tests = run_gpu_tests(out_dir / "gpu_tests.log")
        log("gpu tests", gpu_tests["summary"])
    started = time.perf_counter()
    width, height = (512, 128) if args.tiny else (2048, 512)
    report: dict = {"benchmark": "speed_memory", "tag": args.tag, "versions": versions(), "device": str(device),
                    "tiny": args.tiny, "size": f"{width}x{height}", "prompt": PROMPT, "repeats": args.repeats,
                    "configs": [], "order": args.configs, "gpu_tests": gpu_tests}

    def save() -> None:
        text = json.dumps(report, indent=1, default=str) + "\n"
        (out_dir / "speed_memory.json").write_text(text)
        if args.results:
            Path(args.results).write_text(text)

    def elapsed() -> float:
        return time.perf_counter() - started

    if device.type == "cuda":
        report["matmul_bf16_tflops"] = round(matmul_tflops(device), 1)
        report["attention_tflops"] = attention_tflops(device)
        log("env", report["versions"], report["matmul_bf16_tflops"], report["attention_tflops"])
    rate = report.get("matmul_bf16_tflops", 1.0) * 1e12
    save()

    from worldgen.backend import GenerateRequest
    from worldgen.sampler import perf
    from worldgen.sampler.presets import PRESETS, Preset

    state: dict = {}

    def bf16_parts() -> dict:
        if "parts" not in state:
            import copy

            t0 = time.perf_counter()
            parts = sd21_models.build(device, torch.bfloat16 if device.type == "cuda" else torch.float32,
                                      tiny=args.tiny)
            sync(device)
            report["build_s"] = round(time.perf_counter() - t0, 2)
            report["parameters_m"] = {k: round(sd21_models.parameter_count(parts[k]) / 1e6, 1)
                                      for k in ("jointnet", "vae", "text_encoder")}
            state["parts"] = parts
            state["meter"] = FlopMeter(parts["jointnet"])
            state["meter"].attach(parts["jointnet"])
            if {"baseline", "plain"} & set(args.configs.split(",")):
                # The float16 copy is taken now, before any speed setting touches the model: the
                # original ran diffusers' plain UNet, float16, eager. nn.Module.to: diffusers' own
                # .to() logs a float32-modules notice for every cast.
                half = torch.float16 if device.type == "cuda" else torch.float32
                half_parts = dict(parts)
                half_parts["jointnet"] = torch.nn.Module.to(copy.deepcopy(parts["jointnet"]), half)
                half_parts["vae"] = torch.nn.Module.to(copy.deepcopy(parts["vae"]), half)
                state["half_parts"] = half_parts
                state["meter"].attach(half_parts["jointnet"])
        return state["parts"]

    def half_backend():
        """The float16 copy with every speed setting off."""
        if "half" not in state:
            bf16_parts()
            state["half"] = make_backend(state["half_parts"], device, speed="off", memory="high")
        return state["half"]

    def request(steps=None, scheduler=None):
        def make(seed):
            return GenerateRequest(prompt=PROMPT, width=width, height=height, steps=steps or args.steps,
                                   guidance=7.5, seed=seed, scheduler=scheduler)
        return make

    results: dict[str, dict] = {}

    def record(row: dict, **extra) -> None:
        row.update(extra)
        row["achieved_tflops"] = row["flops_per_run"] / row["median_s"] / 1e12
        row["floor_s"] = row["flops_per_run"] / rate
        row["floor_ratio"] = row["median_s"] / row["floor_s"]
        row["quality"] = quality(row)
        if "published" in results and row["name"] != "published":
            row["agreement_with_published"] = agreement(results["published"], row)
            row["latent_diff_vs_published"] = latent_difference(results["published"], row)
        results[row["name"]] = row
        report["configs"].append({k: v for k, v in row.items() if not k.startswith("_")})
        report["flops_per_row"] = {f"{h}x{w}": v for (h, w), v in state["meter"].per_row.items()}
        save()
        log(f"[{row['name']}] median {row['median_s']:.3f} s, {row['achieved_tflops']:.0f} TFLOP/s, "
            f"elapsed {elapsed():.0f} s")

    def generate_config(name, speed, preset=None, description=""):
        parts = bf16_parts()
        if preset is None and args.whole_steps is not None:
            preset = published_with_whole_steps(args.steps, args.whole_steps)
        backend = make_backend(parts, device, speed=speed, memory="high", preset=preset)
        p = backend.preset
        tap = LatentTap(backend)
        steps = args.steps if p.name == "published" else p.steps  # --steps shortens the published recipe (dry runs)
        row = run_config(name, snapshot_outputs(backend, tap, request(steps, p.scheduler if p.name != "published"
                                                                      else None)),
                         state["meter"], steps, device, args.repeats, args.warmup)
        forward = parts["jointnet"].forward
        if tap.decode_s:
            row["vae_decode_s"] = round(statistics.median(tap.decode_s[-args.repeats:]), 4)
        record(row, description=description, preset=asdict(p), speed=asdict(backend.speed),
               wrapper=type(forward).__name__ if isinstance(forward, (perf.GraphedCall, perf.CompiledCall)) else None,
               wrapper_active=getattr(forward, "active", None),
               wrapper_error=str(getattr(forward, "error", "") or "")[:300] or None,
               graphs=len(getattr(forward, "graphs", {}) or {}))
        return backend

    for name in [c for c in args.configs.split(",") if c]:
        if elapsed() > args.budget_s:
            log(f"[{name}] skipped: past the time budget ({elapsed():.0f} s)")
            report.setdefault("skipped", []).append(name)
            continue
        try:
            if name == "memory":
                if device.type == "cuda":
                    report["memory"] = run_memory_child(args, out_dir)
                    log("[memory]", {k: v for k, v in report["memory"].items() if k != "log_tail"})
            elif name == "published":
                backend = generate_config("published", "auto",
                                          description="the published recipe as worldgen runs it by default on CUDA")
                if device.type == "cuda":
                    report["sync_free_loop"] = count_loop_syncs(backend, request()(99))
            elif name == "fast":
                generate_config("fast", "auto", PRESETS["fast"], description="the fast preset, default speed settings")
            elif name == "baseline":
                plain = half_backend()

                def baseline(seed, plain=plain):
                    return original_loop.generate(plain.pipe, PROMPT, width=width, height=height, steps=args.steps,
                                                  seed=seed, window=plain.window, stride=plain.window // 2)

                record(run_config("baseline", baseline, state["meter"], args.steps, device, args.repeats,
                                  args.warmup),
                       description="original-style: batches of 8 windows in sequence, scheduler copy per batch, "
                                   "fp16 eager, whole-panorama VAE decode")
            elif name == "plain":
                plain = half_backend()
                tap = LatentTap(plain)
                record(run_config("plain", snapshot_outputs(plain, tap, request()), state["meter"], args.steps,
                                  device, args.repeats, args.warmup),
                       description="worldgen sampler, every speed setting off: fp16 eager, PyTorch's attention")
            elif name == "candidates":
                for spec in filter(None, args.fast_candidates.split(";")):
                    fields = dict(item.split("=") for item in spec.split(","))
                    label = fields.pop("name")
                    base = asdict(PRESETS["fast"])
                    base.update({k: type(base[k])(v) for k, v in fields.items()})
                    base["name"] = label
                    generate_config(label, "auto", Preset(**base), description=f"fast-preset variant {fields}")
            elif name == "eager":
                generate_config("eager", "eager", description="default settings without CUDA graphs")
            elif name == "flash":
                auto = perf.SpeedSettings.for_device(device)
                generate_config("flash", replace(auto, attention=None),
                                description="default settings with PyTorch's own attention order (flash first)")
            elif name == "channels_last":
                auto = perf.SpeedSettings.for_device(device)
                generate_config("channels_last", replace(auto, channels_last=True),
                                description="default settings with channels-last (NHWC) weights and activations")
            elif name in COMPILE_CONFIGS:
                settings, description = compile_settings(name, device)
                generate_config(name, settings, description=description)
            elif name == "forward_check":
                report["forward_check"] = forward_check(bf16_parts()["jointnet"], device)
                log("[forward_check]", report["forward_check"])
            elif name == "warm":
                report["warm"] = run_warm_child(args, out_dir)
                log("[warm]", {k: v for k, v in report["warm"].items() if k != "log_tail"})
            elif name == "vae" and device.type == "cuda":
                report["vae_decode"] = vae_decode_times(make_backend(bf16_parts(), device, speed="eager",
                                                                     memory="high"), device)
                log("vae", report["vae_decode"])
            elif name == "profile" and device.type == "cuda":
                report["profile"] = profile_published(make_backend(bf16_parts(), device, speed="eager",
                                                                   memory="high"), request()(7))
            elif name == "repeat":
                for label in ("published", "fast"):
                    if label in results:
                        generate_config(label + "_again", "auto", PRESETS[label],
                                        description=f"{label} again, same process: the spread between runs")
        except Exception as exc:  # one failing configuration must not lose the others' numbers
            import traceback

            report.setdefault("errors", {})[name] = traceback.format_exc()[-3000:]
            log(f"[{name}] FAILED: {exc!r}")
        save()

    report["elapsed_s"] = round(elapsed(), 1)
    summarise(report, results)
    save()
    print_table(report)
    return 0


def profile_published(backend, request) -> dict:
    """One published-recipe panorama under torch.profiler (no CUDA graphs, so every kernel is seen):
    GPU time per kernel family and the top kernels, against the run's wall time."""
    from torch.profiler import ProfilerActivity, profile

    backend.generate(request)  # warm: cuDNN has picked its algorithms
    sync(backend.device)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        backend.generate(request)
        sync(backend.device)
    wall = time.perf_counter() - start
    families = {"attention": ("fmha", "flash", "attention", "sdpa", "cudnn_generated_fort_native_sdpa"),
                "conv": ("conv", "implicit", "winograd", "fprop", "dgrad", "nhwc", "nchw"),
                "gemm": ("gemm", "cutlass", "xmma", "cublas", "sm90_", "nvjet"),
                "norm": ("norm", "welford"), "copy": ("copy", "memcpy", "cat", "transpose", "permute")}
    kernels = {}
    for event in prof.key_averages():
        gpu = getattr(event, "device_time_total", None)
        if gpu is None:
            gpu = getattr(event, "cuda_time_total", 0)
        if gpu and getattr(event, "device_type", None) is not None and str(event.device_type).endswith("CUDA"):
            kernels[event.key] = kernels.get(event.key, 0) + gpu / 1e6
    totals: dict[str, float] = {}
    for key, seconds in kernels.items():
        lower = key.lower()
        family = next((f for f, words in families.items() if any(w in lower for w in words)), "elementwise/other")
        totals[family] = totals.get(family, 0.0) + seconds
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:25]
    return {"wall_s": round(wall, 3), "gpu_kernel_s": round(sum(kernels.values()), 3),
            "families_s": {k: round(v, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "top_kernels": [(k[:120], round(v, 4)) for k, v in top]}


def count_loop_syncs(backend, request) -> dict:
    """Host synchronisations inside the denoising loop, counted by CUDA's sync debug mode between the
    first and the last denoising step's progress report (the set-up before the loop is allowed one)."""
    import warnings

    state = {"on": False, "steps": 0}

    def progress(event):
        if event.stage != "denoise":
            return
        state["steps"] += 1
        if event.done == 1 and not state["on"]:
            torch.cuda.set_sync_debug_mode("warn")
            state["on"] = True
        elif event.done == event.total and state["on"]:
            torch.cuda.set_sync_debug_mode("default")
            state["on"] = False

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            backend.generate(request, progress=progress)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
    return {"steps_watched": max(0, state["steps"] - 1), "syncs": len(syncs), "first": syncs[:3]}


COMPILE_CONFIGS = ("compile_blocks", "compile_blocks_eager", "compile_pair", "compile_stages")
# Coarser regions: whole down/mid/up blocks of the UNet (fewer eager seams between compiled code).
STAGE_BLOCKS = ("CrossAttnDownBlock2D", "DownBlock2D", "UNetMidBlock2DCrossAttn", "CrossAttnUpBlock2D", "UpBlock2D")


def compile_settings(name: str, device):
    """The compiled variants, forced on where ``named("compile")`` would stay eager (a CPU dry run)."""
    from worldgen.sampler import perf

    base = replace(perf.SpeedSettings.named("compile", device), compile=True, channels_last=True)
    if name == "compile_blocks":
        return base, "speed='compile': UNet blocks compiled (static shapes, channels-last), CUDA graphs over the pair"
    if name == "compile_stages":
        return replace(base, compile_blocks=STAGE_BLOCKS), "whole UNet down/mid/up blocks compiled, CUDA graphs"
    if name == "compile_blocks_eager":
        return replace(base, cuda_graphs=False), "UNet blocks compiled, no CUDA graphs"
    return (replace(base, compile_scope="pair"),
            "the whole pair forward compiled (static shapes, channels-last), CUDA graphs over it")


@torch.no_grad()
def forward_check(pair, device) -> dict:
    """One guided-size window batch (16 x 64 x 64, fresh random inputs) through the pair compiled
    and eager (bf16), against a float32 copy of the same weights (no TF32): ||out - ref|| / ||ref||
    per branch. The compiled path computes the same function when its error matches eager's."""
    from worldgen.backends.jointnet.model import JointNetModel
    from worldgen.backends.jointnet.pair import JointNetPair
    from worldgen.sampler import perf

    g = torch.Generator(device).manual_seed(1234)
    h = pair.unet.config.sample_size
    x, y = (torch.randn(16, pair.in_channels, h, h, device=device, generator=g) for _ in range(2))
    ctx = torch.randn(16, 77, pair.unet.config.cross_attention_dim, device=device, generator=g)
    t = torch.tensor(601.0, device=device)
    outputs = {}
    for label, settings in (("compiled", compile_settings("compile_blocks", device)[0]),
                            ("eager", perf.SpeedSettings.named("auto", device))):
        perf.speed_up(pair, settings)
        with perf.kernels(settings):
            outputs[label] = [o.float() for o in pair(x.to(pair.dtype), y.to(pair.dtype), t, ctx.to(pair.dtype))]
    state = {k: v.float() for k, v in pair.state_dict().items()}
    with torch.device(device):
        ref_pair = JointNetPair(JointNetModel.from_config(pair.unet.config),
                                JointNetModel.from_config(pair.jointnet.config)).eval()
    missing, _ = ref_pair.load_state_dict(state, strict=False)  # fused to_qkv copies are the extra keys
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        ref = ref_pair(x, y, t, ctx)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    del ref_pair, state
    out = {"missing_keys": len(missing)}
    for label, values in outputs.items():
        out[label] = [round(float((o - r).norm() / r.norm()), 6) for o, r in zip(values, ref)]
        out[label + "_finite"] = all(bool(torch.isfinite(o).all()) for o in values)
    out["compiled_vs_eager_max_abs"] = [round(float((a - b).abs().max()), 5)
                                        for a, b in zip(outputs["compiled"], outputs["eager"])]
    return out


def published_with_whole_steps(steps: int, whole: int):
    """The published preset whose whole-panorama window runs for ``whole`` of ``steps`` steps (the
    original runs it for i <= int(0.4 * steps): 21 of 50); the sampler takes ceil(fraction * steps)."""
    from worldgen.sampler.presets import PUBLISHED

    return replace(PUBLISHED, global_fraction=(whole - 0.5) / steps)


def latent_difference(a: dict, b: dict) -> dict:
    """Final latents of two configurations from the same seeds: max |a - b| and ||a - b|| / ||a||."""
    worst, rel = 0.0, 0.0
    for (_, _, la), (_, _, lb) in zip(a["_outputs"], b["_outputs"]):
        if la is None or lb is None:
            continue
        worst = max(worst, float((la - lb).abs().max()))
        rel = max(rel, float((la - lb).norm() / la.norm()))
    return {"max_abs": round(worst, 5), "max_rel_norm": round(rel, 5),
            "latent_abs_max": round(max(float(la.abs().max()) for _, _, la in a["_outputs"] if la is not None), 3)}


def run_warm_child(args, out_dir: Path) -> dict:
    """A new process that loads the compiled code from ``--compile-cache`` (filled by this one)."""
    result_path = out_dir / "warm_child.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "warm", "--out", str(out_dir),
               "--steps", str(args.steps), "--device", args.device, "--repeats", "2"]
    command += (["--tiny"] if args.tiny else []) + (["--whole-steps", str(args.whole_steps)]
                                                     if args.whole_steps is not None else [])
    log("[warm] " + " ".join(command))
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=args.memory_timeout_s * 3)
    (out_dir / "warm_child.log").write_text(done.stdout[-200000:])
    warm = json.loads(result_path.read_text()) if result_path.exists() else {}
    warm["returncode"] = done.returncode
    warm["process_wall_s"] = round(time.perf_counter() - start, 1)
    if done.returncode != 0:
        warm["log_tail"] = done.stdout[-2000:]
    return warm


def warm_child(args) -> int:
    """speed="compile" in a fresh process: how long its first panorama takes with a warm cache."""
    from worldgen.backend import GenerateRequest

    started = time.perf_counter()
    device = torch.device(args.device)
    width, height = (512, 128) if args.tiny else (2048, 512)
    out: dict = {"cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR")}
    parts = sd21_models.build(device, torch.bfloat16 if device.type == "cuda" else torch.float32, tiny=args.tiny)
    sync(device)
    out["build_s"] = round(time.perf_counter() - started, 2)
    settings, _ = compile_settings("compile_blocks", device)
    preset = published_with_whole_steps(args.steps, args.whole_steps) if args.whole_steps is not None else None
    backend = make_backend(parts, device, speed=settings, memory="high", preset=preset)
    times = []
    for seed in range(args.repeats + 1):
        sync(device)
        start = time.perf_counter()
        backend.generate(GenerateRequest(prompt=PROMPT, width=width, height=height, steps=args.steps,
                                         guidance=7.5, seed=seed))
        sync(device)
        times.append(time.perf_counter() - start)
        log(f"[warm child] run {seed}: {times[-1]:.3f} s")
    out["first_run_s"] = round(times[0], 3)
    out["steady_s"] = round(statistics.median(times[1:]), 4)
    out["load_overhead_s"] = round(times[0] - statistics.median(times[1:]), 3)
    out["compiled_graphs_total"] = _graph_count()
    blocks = parts["jointnet"].__dict__.get("_worldgen_blocks")
    out["blocks_active"] = None if blocks is None else blocks.active
    out["child_wall_s"] = round(time.perf_counter() - started, 2)
    (Path(args.out) / "warm_child.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    return 0


def summarise(report: dict, results: dict) -> None:
    base, pub, fast = results.get("baseline"), results.get("published"), results.get("fast")
    if base and pub:
        report["speedup_vs_baseline"] = round(base["median_s"] / pub["median_s"], 3)
    if pub:
        report["published_s"] = round(pub["median_s"], 4)
        report["floor_s"] = round(pub["floor_s"], 4)
        report["floor_ratio"] = round(pub["floor_ratio"], 4)
        report["published_flops"] = pub["flops_per_run"]
    if fast:
        report["fast_default_s"] = round(fast["median_s"], 4)
        if pub:
            qf, qp = fast["quality"], pub["quality"]
            report["fast_seam_vs_published"] = {k: {"fast": qf.get(k), "published": qp.get(k)} for k in qp}
    repeats = {}
    for label in ("published", "fast"):
        again = results.get(label + "_again")
        if again and label in results:
            repeats[label] = round(again["median_s"] / results[label]["median_s"] - 1, 4)
    if repeats:
        report["repeat_difference"] = repeats
    goals = {}
    # "no worse" allows 10% + 0.05 on the seam ratios (noise between recipes); NOTES.md gives the raw numbers.
    if "floor_ratio" in report:
        goals["published_within_1.3x_floor"] = report["floor_ratio"] <= 1.3
    if "fast_default_s" in report:
        goals["fast_under_1s"] = report["fast_default_s"] < 1.0
        if pub and fast:
            goals["fast_seams_no_worse"] = all(
                fast["quality"].get(k, 0) <= pub["quality"].get(k, 0) * 1.1 + 0.05 for k in ("rgb", "depth"))
    memory = report.get("memory") or {}
    if "refine_peak_reserved_gib" in memory:
        goals["refine_4096_within_12gb"] = bool(memory.get("refine_ok")) and memory["refine_peak_process_gib"] <= 12.0
    if "generate_peak_reserved_gib" in memory:
        goals["generate_2048_within_12gb"] = (bool(memory.get("generate_ok"))
                                              and memory["generate_peak_process_gib"] <= 12.0)
    report["goals"] = goals


def print_table(report: dict) -> None:
    lines = [f"GPU {report['versions'].get('gpu', report['device'])} | torch {report['versions']['torch']} | "
             f"diffusers {report['versions']['diffusers']} | bf16 matmul {report.get('matmul_bf16_tflops', '-')} TFLOP/s",
             f"{'config':<16}{'s/pano':>9}{'spread':>8}{'evals/step':>11}{'TFLOP/run':>10}{'TFLOP/s':>9}"
             f"{'floor x':>8}{'peak GiB':>9}{'seam rgb':>9}{'seam d':>8}"]
    for row in report["configs"]:
        q = row.get("quality", {})
        lines.append(f"{row['name']:<16}{row['median_s']:>9.3f}{row['spread']:>8.1%}{row['evals_per_step']:>11.1f}"
                     f"{row['flops_per_run'] / 1e12:>10.0f}{row['achieved_tflops']:>9.0f}{row['floor_ratio']:>8.2f}"
                     f"{row.get('peak_reserved_gib', float('nan')):>9.1f}{q.get('rgb', float('nan')):>9.2f}"
                     f"{q.get('depth', float('nan')):>8.2f}")
    for row in report["configs"]:
        if "latent_diff_vs_published" in row:
            lines.append(f"{row['name']}: warm-up {row['warmup_s']} s, latents vs published "
                         f"{row['latent_diff_vs_published']}")
    if report.get("warm"):
        warm = report["warm"]
        lines.append(f"warm process: first run {warm.get('first_run_s')} s, steady {warm.get('steady_s')} s, "
                     f"build {warm.get('build_s')} s, rc {warm.get('returncode')}")
    memory = report.get("memory") or {}
    if memory:
        lines.append(f"memory cap {memory.get('cap_gib')} GiB: generate {memory.get('generate_s', '-')} s peak "
                     f"{memory.get('generate_peak_process_gib', '-')} GiB; refine {memory.get('refine_size')} "
                     f"{memory.get('refine_s', '-')} s peak {memory.get('refine_peak_process_gib', '-')} GiB "
                     f"(allocator reserved {memory.get('refine_peak_reserved_gib', '-')}); ok={memory.get('refine_ok')}")
    for key in ("speedup_vs_baseline", "floor_ratio", "fast_default_s", "repeat_difference", "sync_free_loop",
                "goals", "skipped"):
        if key in report:
            lines.append(f"{key}: {report[key]}")
    print("\n".join(lines), flush=True)


# The memory child --------------------------------------------------------------------------------

def run_memory_child(args, out_dir: Path) -> dict:
    result_path = out_dir / "memory_child.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "memory", "--cap-gb", str(args.cap_gb),
               "--out", str(out_dir), "--steps", str(args.steps)] + (["--tiny"] if args.tiny else [])
    log("[memory] " + " ".join(command))
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=args.memory_timeout_s)
    (out_dir / "memory_child.log").write_text(done.stdout)
    memory = json.loads(result_path.read_text()) if result_path.exists() else {}
    memory["returncode"] = done.returncode
    memory["wall_s"] = round(time.perf_counter() - start, 1)
    if done.returncode != 0:
        memory["log_tail"] = done.stdout[-2000:]
    return memory


def _device_used_gib() -> float | None:
    """Memory in use on GPU 0 as the driver counts it (all processes, contexts included)."""
    try:
        text = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                              capture_output=True, text=True, timeout=20).stdout
        return round(float(text.split()[0]) / 1024, 3)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _process_gib() -> float | None:
    """This process's GPU memory as the driver counts it (context included), from nvidia-smi."""
    try:
        listing = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.splitlines():
        pid, _, used = line.partition(",")
        if pid.strip() == str(os.getpid()):
            return round(float(used) / 1024, 3)
    return None


def memory_child(args) -> int:
    """Generation (2048x512) and refinement (to 4096x1024) under a hard cap on this process's memory."""
    from worldgen.backend import GenerateRequest
    from worldgen.sampler.requests import RefineRequest

    device = torch.device("cuda")
    before = _device_used_gib()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = args.cap_gb * GIB
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), 0)
    torch.zeros(1, device=device)
    torch.cuda.synchronize()
    after = _device_used_gib()
    # The CUDA context alone (nothing allocated yet): this process's line in nvidia-smi, else the
    # rise of the device's used memory across its start (the parent process is idle meanwhile).
    context_gib = _process_gib()
    if context_gib is None and before is not None and after is not None:
        context_gib = round(after - before - torch.cuda.memory_reserved() / GIB, 3)
    width, height = (512, 128) if args.tiny else (2048, 512)
    out = {"cap_gib": args.cap_gb, "context_gib": context_gib,
           "fraction_api": hasattr(torch.cuda, "get_per_process_memory_fraction")}
    result_path = Path(args.out) / "memory_child.json"

    def save():
        result_path.write_text(json.dumps(out, indent=1, default=str) + "\n")

    parts = sd21_models.build(device, torch.bfloat16, tiny=args.tiny)
    backend = make_backend(parts, device, speed="auto", memory="low")
    out["weights_gib"] = torch.cuda.memory_allocated() / GIB
    out["settings"] = backend.settings()
    save()

    def phase(name, fn):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            value = fn()
            ok = True
        except torch.OutOfMemoryError as exc:
            value, ok = None, False
            out[f"{name}_error"] = str(exc).splitlines()[0][:300]
        torch.cuda.synchronize()
        out[f"{name}_s"] = round(time.perf_counter() - start, 3)
        out[f"{name}_ok"] = ok
        out[f"{name}_peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 3)
        out[f"{name}_peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 3)
        if context_gib is not None:
            out[f"{name}_peak_process_gib"] = round(out[f"{name}_peak_reserved_gib"] + context_gib, 3)
        else:
            out[f"{name}_peak_process_gib"] = out[f"{name}_peak_reserved_gib"]
        out[f"{name}_window_batch"] = getattr(backend, "planned_window_batch", None)
        out[f"{name}_vae_tiles_per_call"] = backend.vae.batch
        save()
        return value

    snap = phase("generate", lambda: backend.generate(GenerateRequest(prompt=PROMPT, width=width, height=height,
                                                                       steps=args.steps, seed=1)))
    out["refine_size"] = f"{2 * width}x{2 * height}"
    if snap is not None:
        refined = phase("refine", lambda: backend.refine(RefineRequest(prompt=PROMPT, steps=args.steps, scale=2.0,
                                                                       strength=0.4, seed=1), snap))
        if refined is not None:
            out["refine_seam_rgb"] = metrics.wrap_seam_ratio(refined.image)
            out["refine_shape"] = list(refined.image.shape)
    out["driver_process_gib_at_end"] = _process_gib()
    save()
    return 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="test-sized models and a 512x128 panorama (dry run)")
    parser.add_argument("--out", default="benchmarks/results/latest")
    parser.add_argument("--results", default=None, help="also write the JSON here")
    parser.add_argument("--tag", default="run")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help="what to run, in order: memory, published, fast, baseline, candidates, eager, flash, "
                             "channels_last, plain, compile_blocks, compile_blocks_eager, compile_pair, warm, vae, "
                             "profile, repeat")
    parser.add_argument("--fast-candidates", default="",
                        help="extra fast presets: 'name=f2,stride=0.5;name=f3,steps=16' (fields of Preset)")
    parser.add_argument("--budget-s", type=float, default=430.0,
                        help="skip the remaining configurations after this many seconds")
    parser.add_argument("--cap-gb", type=float, default=11.0, help="allocator cap for the memory phase (GiB)")
    parser.add_argument("--memory-timeout-s", type=float, default=180.0)
    parser.add_argument("--compile-cache", default=None,
                        help="inductor cache folder for the compile configs (empty: a cold compile)")
    parser.add_argument("--whole-steps", type=int, default=None,
                        help="steps with the whole-panorama window in the published recipe (the original: 21 of 50)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--skip-gpu-tests", action="store_true", help="do not run `pytest -m gpu` first")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
