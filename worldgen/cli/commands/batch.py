"""`worldgen batch`: many worlds from a JOBS file, one process per GPU under `accelerate launch`."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import (backend_option, base_option, checked, device_option, dtype_option, guidance_option, model_option,
                       negative_option, note, option_set, parse_size, preset_option, quiet_option, scheduler_option,
                       span_option, steps_option, window_batch_option)

# A rank that finishes its shard early waits at the final barrier for the slowest one; that wait can
# be as long as a few worlds, far past torch's default collective timeout.
BARRIER_TIMEOUT_HOURS = 24


@click.command()
@click.argument("jobs", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the worlds (OUT/NAME/ + OUT/NAME.glb). Default: named after JOBS. (--out: old name.)")
@option_set(backend_option(), model_option, base_option)
@click.option("--size", default="2048x512", show_default=True, help="Default panorama WIDTHxHEIGHT for jobs without one.")
@option_set(span_option, preset_option(), steps_option, guidance_option, negative_option)
@click.option("--modality", default="depth", show_default=True, help="Default modality generated with the RGB.")
@option_set(scheduler_option, dtype_option, window_batch_option)
@click.option("--seed", type=int, default=0, show_default=True, callback=checked("seed"),
              help="Batch seed: jobs without a seed get one derived from it and their name.")
@click.option("--shard", default=None, metavar="I/N",
              help="Run only shard I of N (0 <= I < N) of JOBS: for job arrays and several machines writing into "
                   "the same OUT (docs/scale-out.md). Each shard writes OUT/.batch/summary-shard-I-of-N.json.")
@click.option("--dry-run", is_flag=True, help="Check every job and show what would run; generate nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON on stdout.")
@device_option
@quiet_option
def batch(jobs, out, backend, model, base, size, span, preset, steps, guidance, negative_prompt, modality, scheduler, dtype,
          window_batch, seed, shard, dry_run, as_json, device, quiet):
    """Generate every world listed in JOBS (.jsonl, .toml or .txt) into OUT.

    \b
    JSONL:  {"prompt": "a misty fjord at dawn", "seed": 7, "size": "2048x512", "name": "fjord"}
    TOML:   [[job]]  prompt = "a misty fjord at dawn"  steps = 30
    TXT:    one prompt per line
    Fields: name, prompt, seed, size, span, steps, guidance, negative, modality, scheduler (or
    recipe = "scene.toml" with name and seed). Jobs without a name are called SLUG-INDEX.

    Finished worlds are skipped, so rerunning the same command resumes. A failing job is recorded
    and the rest go on; OUT/.batch/summary.json has the outcome. On several GPUs:

    \b
      accelerate launch --multi_gpu --num_processes 2 -m worldgen.cli.main batch JOBS -o OUT
    Each process takes every N-th job; the worlds are the same whatever the number of processes.
    A job array: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT (see docs/scale-out.md).
    """
    from ...batch.shards import parse_shard
    from ...world.outputs import output_folder
    from ...sampler.presets import resolve_sampling

    shard_of = parse_shard(shard) if shard is not None else (0, 1)
    sampling = resolve_sampling(preset, steps, scheduler)
    job_list = _jobs(jobs, size, span, sampling, guidance, negative_prompt, modality, scheduler, seed)
    out = out or Path(jobs.stem)
    output_folder(out)
    if dry_run:
        _dry_run(job_list, out)
        return
    _run(job_list, out, shard_of, backend, model, base, dtype, device, scheduler, window_batch, preset, sampling,
         quiet, as_json)


def _jobs(jobs, size, span, sampling, guidance, negative_prompt, modality, scheduler, seed):
    from ...batch import JobDefaults, load_jobs

    width, height = parse_size(size)
    defaults = JobDefaults(width=width, height=height, span_deg=span, steps=sampling.steps, guidance=guidance,
                           negative=negative_prompt, modality=modality, scheduler=scheduler,
                           preset=sampling.preset.name)
    return load_jobs(jobs, defaults, batch_seed=seed)


def _run(job_list, out, shard_of, backend, model, base, dtype, device, scheduler, window_batch, preset, sampling,
         quiet, as_json):
    """Load the model once in each process and run this process's part of the jobs."""
    from ...api import WorldPipeline
    from ...batch import PanoWorldMaker, run_batch
    from ...world.backends import REAL_WEIGHTS_HINT

    state = _processes(device)
    rank, world = state.process_index, state.num_processes
    pipe = WorldPipeline.from_pretrained(model or "auto", backend=backend, base=base, dtype=dtype,
                                         device=device or str(state.device), scheduler=scheduler,
                                         window_batch=window_batch)
    if pipe.fell_back and rank == 0:
        note(REAL_WEIGHTS_HINT, quiet)
    # The preset travels in each prompt job's request (JobDefaults); recipe jobs keep their own unless
    # --preset was given. An explicit --backend holds for recipe jobs too.
    maker = PanoWorldMaker(pipe.spec, pipe.settings, preset=sampling.preset.name if preset is not None else None,
                           backend_name=None if backend == "auto" else backend)
    who = f"[rank {rank}/{world}] " if world > 1 else ""
    who += f"[shard {shard_of[0]}/{shard_of[1]}] " if shard_of[1] > 1 else ""
    summary = run_batch(job_list, out, maker, rank=rank, world=world, shard_of=shard_of,
                        barrier=state.wait_for_everyone if world > 1 else None,
                        on_result=lambda result, position, total: note(f"{who}{position}/{total} {result.name}: "
                                                                       f"{_outcome(result)}", quiet))
    if summary is not None:  # rank 0 reports for everyone
        _report(summary, out, as_json)


def _processes(device):
    """Accelerate's view of this launch, checked: one process per GPU, or CPU processes."""
    from datetime import timedelta

    from accelerate import PartialState

    from ...errors import UserInputError

    state = PartialState(cpu=_on_cpu(device), timeout=timedelta(hours=BARRIER_TIMEOUT_HOURS))
    world = state.num_processes
    launched = _launched_world_size()
    if launched != world:  # each process would run every job, all into the same OUT
        raise UserInputError(f"the launcher started {launched} processes but this one sees {world}; with torchrun "
                             f"or accelerate launch on GPUs leave --device unset, on CPUs pass --device cpu")
    if device and world > 1 and device != "cpu":
        raise UserInputError(f"--device {device} names one device, but this batch runs {world} processes, each on "
                             f"its own GPU; drop --device")
    return state


def _outcome(result) -> str:
    if result.status == "done":
        return f"done in {result.seconds:.1f}s"
    if result.status == "skipped":
        return "already complete, skipped"
    return f"FAILED: {result.reason}"


def _report(summary: dict, out: Path, as_json: bool) -> None:
    from ...errors import WorldgenError

    if as_json:
        import json

        from ... import __version__

        click.echo(json.dumps({**summary, "output": str(out), "worldgen": __version__}, indent=2))
    else:
        _print_summary(summary, out)
    if summary["failed"] or summary["missing"]:
        raise WorldgenError(f"{summary['failed'] + summary['missing']} of {summary['jobs']} jobs did not finish "
                            f"(see {out}/.batch/); fix them and rerun the same command: finished "
                            f"worlds are skipped")


def _on_cpu(device) -> bool:
    """Whether the processes run on CPUs: Accelerate sets up gloo for several CPU processes only when told."""
    import os

    import torch

    if device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    return not torch.cuda.is_available() and device is None


def _launched_world_size() -> int:
    import os

    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _print_summary(summary: dict, out: Path) -> None:
    per_world = summary["seconds_per_world"]
    timing = f"; {per_world['mean']:.1f} s per world" if per_world else ""
    rate = f", {summary['worlds_per_minute']:.2f} worlds/min" if summary["worlds_per_minute"] else ""
    processes = f" on {summary['world']} processes" if summary["world"] > 1 else ""
    click.echo(f"{summary['jobs']} jobs: {summary['done']} done, {summary['skipped']} skipped, "
               f"{summary['failed']} failed{timing}{rate}{processes} -> {out}/")
    for failure in summary["failures"]:
        click.echo(f"  failed {failure['name']} (line {failure['line']}): {failure['reason']}")
    for name in summary["missing_jobs"]:
        click.echo(f"  missing {name}: its process ended before reaching it")


def _dry_run(job_list, out: Path) -> None:
    from ...batch import check_job
    from ...errors import WorldgenError

    problems = 0
    for job in job_list:
        state, why = check_job(out, job)
        problems += state in ("invalid", "conflict")
        what = job.prompt if job.recipe is None else f"recipe {job.recipe}"
        click.echo(f"{job.index:>5}  {job.name:<40} seed {job.seed:<11} {state:<9} {why or what}")
    click.echo(f"{len(job_list)} jobs, {problems} with problems; nothing was generated (--dry-run)")
    if problems:
        raise WorldgenError(f"{problems} of {len(job_list)} jobs would fail; fix the lines above or leave them "
                            f"to fail alone")


commands = [batch]
