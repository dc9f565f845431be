"""Options shared by several commands, so each is spelled and documented once."""

from __future__ import annotations

from pathlib import Path

import click

from .grammar import json_option, note, quiet_option  # noqa: F401  (re-exported: every command imports options)


def checked(field: str):
    """A click callback that checks an option with ``worldgen.validation`` (the rules every entry point
    shares); a bad value is a one-line error with exit code 1, like any other bad input."""

    def callback(ctx, param, value):
        from ..validation import check

        if value is None:
            return None
        return check(field, value, f"--{param.name.replace('_', '-')}")

    return callback


seed_option = click.option("--seed", type=int, default=0, show_default=True, callback=checked("seed"),
                           help="Random seed, 0 to 2**64-1; same seed, same world.")
device_option = click.option("--device", default=None, help="torch device (cuda, cuda:1, mps, cpu); default: the best available.")


def parse_size(value: str) -> tuple[int, int]:
    """'2048x512' -> (2048, 512), with a usable error. Text that is not WIDTHxHEIGHT is a usage error
    (exit 2, like any value click cannot parse); a well-formed size that worldgen's rules refuse (not a
    multiple of 8, too large) is refused later with exit 1 (docs/cli.md, "Exit codes")."""
    try:
        w, h = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 2048x512") from None
    return w, h




SCHEDULER_HELP = "ddim (default, the published recipe), dpm++, unipc, euler, euler-a, ddpm, pndm."


def model_options(func):
    """--model/--base/--dtype/--scheduler/--window-batch/--device: which model, where, how."""
    for option in reversed([
        click.option("--model", default=None,
                     help="JointNet checkpoint: a folder or a registered name (default: the scene's model, "
                          "else the registered default; see `worldgen models`)."),
        click.option("--base", default=None, help="Stable Diffusion 2.1-base folder (diffusers layout)."),
        click.option("--dtype", default=None, help="float32, float16 or bfloat16 (default: float16 on GPU)."),
        click.option("--scheduler", default=None, help=SCHEDULER_HELP),
        click.option("--window-batch", type=click.IntRange(min=1), default=None,
                     help="Windows per model call (default: all of a step; halves itself if memory runs out)."),
        device_option,
    ]):
        func = option(func)
    return func


glb_option = click.option("--glb", type=click.Path(dir_okay=False, path_type=Path), default=None,
                          help="Export the result to this GLB (default: NAME.glb beside a new scene folder; for a "
                               "SCENE, refresh SCENE.glb beside it when it exists).")


def sampling_options(default_guidance: float = 7.5, prompt_help: str = "Prompt (default: the scene's)."):
    """--prompt/--negative/--steps/--guidance/--method/--glb/--seed/--quiet."""

    def decorate(func):
        for option in reversed([
            click.option("--prompt", default=None, help=prompt_help),
            click.option("--negative", "negative_prompt", default="", help="Negative prompt."),
            click.option("--steps", type=int, default=50, show_default=True, help="Denoising steps."),
            click.option("--guidance", type=float, default=default_guidance, show_default=True,
                         help="Classifier-free guidance scale."),
            click.option("--method", type=click.Choice(["auto", "masked", "blend"]), default="auto",
                         show_default=True,
                         help="How known content conditions the model: masked = the inpainting checkpoint's "
                              "mask input (needs one), blend = re-noise and blend it every step, auto = masked "
                              "when the model has it."),
            glb_option,
            seed_option,
            quiet_option,
            json_option,
        ]):
            func = option(func)
        return func

    return decorate


MODEL_KEYS = ("model", "base", "device", "dtype", "scheduler", "window_batch")
TASK_KEYS = ("prompt", "negative_prompt", "steps", "guidance", "seed", "scheduler", "method")


def model_settings(kw: dict) -> dict:
    """The model options of a task command, as ``WorldPipeline.for_scene`` takes them."""
    return {k: kw.get(k) for k in MODEL_KEYS}


def task_options(kw: dict) -> dict:
    """The sampling options of a task command, as the API's task methods take them."""
    return {k: kw.get(k) for k in TASK_KEYS}


def task_pipeline(kw: dict, scene=None):
    """The API pipeline a task command runs on (the scene's recorded model unless --model is given)."""
    from ..api import WorldPipeline

    return WorldPipeline.for_scene(scene, **model_settings(kw))


def new_scene_glb(output: Path, glb) -> Path:
    """The GLB of a scene made from outside files: ``--glb``, else NAME.glb beside the new folder NAME/
    (as `worldgen pano`, `build` and `batch` write one)."""
    return Path(glb) if glb is not None else output.with_name(output.name + ".glb")


def report_world(world, kw: dict, message: str, glb=None) -> None:
    """End a scene task: the note on stderr, and with --json the scene, version, GLB and backend."""
    from ..world.outputs import glb_target
    from .grammar import report

    written = glb_target(world.scene.path, glb if glb is not None else kw.get("glb"))
    report(message, quiet=kw["quiet"], as_json=kw.get("as_json", False), scene=world.scene.path,
           version=world.version, glb=written, backend=world.backend, operation=world.operation)


# Option sets of the commands that make new worlds (pano, batch, build, serve): one spelling each ----

def option_set(*options):
    """Several click options as one decorator (applied so that --help lists them in this order)."""
    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def backend_option(default="auto"):
    return click.option("--backend", default=default, show_default=default is not None,
                        help="auto, jointnet, procedural, or a plugin's name.")


model_option = click.option("--model", default=None,
                            help="JointNet checkpoint: a registered name or a folder (see `worldgen models`).")
base_option = click.option("--base", default=None,
                           help="Stable Diffusion 2.1-base: a folder (diffusers layout) or a Hub id in the local "
                                "Hugging Face cache.")
extra_model_option = click.option("--extra-model", default=None,
                                  help="A second JointNet checkpoint with the same RGB branch (e.g. normals beside "
                                       "depth): generate three layers at once.")
dtype_option = click.option("--dtype", default=None,
                            help="float32, float16 or bfloat16 (default: bfloat16 on GPUs that have it, else "
                                 "float16; float32 on CPU).")
window_batch_option = click.option("--window-batch", type=click.IntRange(min=1), default=None,
                                   help="Windows per model call (default: from free memory; pin it when outputs "
                                        "must match across machines).")


def preset_option(default=None):
    return click.option("--preset", type=click.Choice(["published", "fast"]), default=default,
                        show_default=default is not None,
                        help="Sampling recipe: published (DDIM 50, the paper's windows) or fast (DPM-Solver++ 14 "
                             "steps, half the windows, guidance in the first half).")


steps_option = click.option("--steps", type=int, default=None, help="Denoising steps (default: the preset's, 50 or 14).")
guidance_option = click.option("--guidance", type=float, default=7.5, show_default=True,
                               help="Classifier-free guidance scale.")
negative_option = click.option("--negative", "negative_prompt", default="", help="Negative prompt.")
scheduler_option = click.option("--scheduler", default=None, help=SCHEDULER_HELP + " Default: the preset's.")
span_option = click.option("--span", type=float, default=360.0, show_default=True,
                           help="Horizontal span in degrees, (0, 360].")
