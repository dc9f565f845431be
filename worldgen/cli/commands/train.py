"""`worldgen train`: teach JointNet a new modality (a fine-tune, not a new model).

Runs as is on one CPU or GPU; for several GPUs or a saved Accelerate set-up, start it through
Accelerate: ``accelerate launch -m worldgen.training --modality ... `` (same options).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..options import json_option, note, option_set, quiet_option, seed_option

STAGE_HELP = ("1: copy the base UNet into a modality branch and train it with the RGB branch locked; "
              "2: unlock everything (lower lr, more text dropout); "
              "inpaint: add the masked-latent input and train with random masks")


def _estimator_option(values: tuple[str, ...]) -> dict:
    options = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE, e.g. model=Intel/dpt-hybrid-midas",
                                     param_hint="--estimator-option")
        try:
            value = json.loads(raw)  # numbers and booleans keep their type
        except ValueError:
            value = raw
        options[key.strip()] = value
    return options


_dir = click.Path(file_okay=False, path_type=Path)


def _from_model(name: str, components, stage: str):
    """(checkpoint, components folder, "branch") for --from: the VAE and text encoder come from the
    model's registered or bundled base unless --components names them."""
    from ...errors import UserInputError
    from ...backends.jointnet.store import resolve_model

    if stage != "1":
        raise UserInputError("--from trains a new branch; drop --stage")
    checkpoint, base_dir = resolve_model(name, None if components is None else str(components))
    return checkpoint, components or base_dir, "branch"


_SETUP_OPTIONS = (
    click.option("--modality", required=True,
                 help="Modality plugin to learn (see `worldgen plugins`), e.g. depth, normal, edges."),
    click.option("--base", default=None, type=_dir,
                 help="Stage 1: a diffusers Stable Diffusion (or IF) folder. Stage 2/inpaint: a JointNet checkpoint."),
    click.option("--from", "from_model", default=None, metavar="MODEL",
                 help="Add the modality as a new branch to this JointNet (a folder or registered name): only the "
                      "new branch and its connections train; the model's other outputs stay as they were."),
    click.option("--data", required=True, type=_dir,
                 help="Images with captions (NAME.txt or metadata.jsonl), optionally NAME.<modality>.npy/.png."),
    click.option("-o", "--output", "--out", "out", required=True, type=_dir,
                 help="Run folder: checkpoints/, samples/, logs/, and the final model/. (--out: old name.)"),
    click.option("--stage", type=click.Choice(["1", "2", "inpaint"]), default="1", show_default=True, help=STAGE_HELP),
    click.option("--resume", is_flag=True,
                 help="Continue from the newest checkpoint in -o, exactly where it stopped (fresh if there is none)."),
    click.option("--components", type=_dir, default=None,
                 help="Stable Diffusion folder for the VAE, text encoder, tokenizer and scheduler when --base "
                      "lacks them."),
)
_OPTIMIZER_OPTIONS = (
    click.option("--steps", type=int, default=10_000, show_default=True,
                 help="Optimizer steps to reach (a resumed run continues to this)."),
    click.option("--resolution", type=int, default=512, show_default=True,
                 help="Training crop size in pixels (multiple of 8)."),
    click.option("--batch-size", type=int, default=4, show_default=True, help="Examples per GPU per step."),
    click.option("--lr", type=float, default=None, help="Learning rate [stage 1: 1e-4; stage 2 and inpaint: 1e-5]."),
    click.option("--gradient-accumulation", type=int, default=1, show_default=True, help="Batches per optimizer step."),
    click.option("--warmup-steps", type=int, default=1000, show_default=True, help="Linear learning-rate warm-up."),
    click.option("--text-dropout", type=float, default=None,
                 help="Probability of an empty caption [stage 1/inpaint: 0.15; 2: 0.5]."),
    click.option("--noise-offset", type=float, default=0.05, show_default=True, help="Per-channel noise offset."),
    click.option("--train-rgb/--freeze-rgb", default=None, help="Train the RGB branch's own layers [frozen in stage 1 only]."),
    click.option("--mixed-precision", type=click.Choice(["no", "fp16", "bf16"]), default=None,
                 help="Default: what `accelerate launch`/`accelerate config` says, else no."),
    click.option("--gradient-checkpointing", is_flag=True,
                 help="Recompute activations in the backward pass: less memory, ~30% slower."),
    click.option("--optimizer", type=click.Choice(["auto", "adamw", "adamw8bit"]), default="auto", show_default=True,
                 help="auto: 8-bit AdamW when bitsandbytes is installed on a CUDA machine, else (fused) AdamW."),
    click.option("--ema", is_flag=True, help="Keep an exponential moving average of the weights; export it."),
    click.option("--ema-decay", type=float, default=0.9999, show_default=True),
)
_RUN_OPTIONS = (
    click.option("--checkpoint-every", type=int, default=500, show_default=True,
                 help="Steps between resumable checkpoints (0: only at the end)."),
    click.option("--keep-checkpoints", type=int, default=3, show_default=True),
    click.option("--validation-every", type=int, default=500, show_default=True,
                 help="Steps between validation samples (0: only at the end)."),
    click.option("--validation-prompt", default="a cozy living room with a large window, photograph", show_default=True),
    click.option("--validation-seed", type=int, default=0, show_default=True),
    click.option("--validation-steps", type=int, default=25, show_default=True,
                 help="Denoising steps of a validation sample."),
    click.option("--log-every", type=int, default=10, show_default=True, help="Steps between loss/throughput log lines."),
    click.option("--report-to", type=click.Choice(["auto", "tensorboard", "none"]), default="auto", show_default=True,
                 help="auto: TensorBoard when it is installed."),
)
_DATA_OPTIONS = (
    click.option("--streaming", is_flag=True,
                 help="Read the data folder lazily (for folders too large to index in memory)."),
    click.option("--shuffle-buffer", type=int, default=1000, show_default=True, help="Streaming mode's shuffle buffer."),
    click.option("--num-workers", type=int, default=2, show_default=True, help="Data loader worker processes."),
    click.option("--min-crop", type=float, default=0.8, show_default=True,
                 help="Smallest random crop, as a fraction of the short side."),
    click.option("--cache-dir", type=_dir, default=None, help="Where estimated modality maps are cached [OUT/estimates]."),
    click.option("--no-precompute", is_flag=True,
                 help="Estimate missing modality maps lazily, in the loader workers (CPU estimators only), not "
                      "before the first step."),
    click.option("--estimator-option", multiple=True, metavar="KEY=VALUE",
                 help="Option for the modality's estimator, repeatable, e.g. model=Intel/dpt-hybrid-midas."),
)


@click.command("train")
@option_set(*_SETUP_OPTIONS, *_OPTIMIZER_OPTIONS, *_RUN_OPTIONS, *_DATA_OPTIONS, seed_option, quiet_option, json_option)
def train(from_model, no_precompute, estimator_option, quiet, as_json, **kw):
    """Fine-tune JointNet to generate a new dense modality together with RGB.

    Writes resumable checkpoints, validation samples and logs under OUT, and the trained model in
    the official checkpoint layout to OUT/model (usable by every worldgen command). Prints that
    folder on stdout (with --json: an object with it, the steps and the loss).
    Several GPUs: accelerate launch -m worldgen.training [same options].
    """
    from ...training.config import TrainConfig
    from ...output_paths import check_output_path

    check_output_path(kw["out"], what="-o", folder=True)  # never inside a scene folder, never a device
    if (kw["base"] is None) == (from_model is None):
        raise click.UsageError("give --base (train a model) or --from MODEL (add a branch to one), not both")
    if from_model is not None:
        kw["base"], kw["components"], kw["stage"] = _from_model(from_model, kw["components"], kw["stage"])
    config = TrainConfig(**kw, precompute=not no_precompute, estimator_options=_estimator_option(estimator_option))
    _train(config, quiet, as_json)


def _train(config, quiet: bool, as_json: bool) -> None:
    from ...training.loop import train as run_training
    from ..grammar import report
    from ..progress import progress_for

    bar = progress_for(quiet)
    try:
        result = run_training(config, progress=bar)
    finally:
        if bar is not None:
            bar.close()

    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    if result.resumed_from is not None:
        note(f"resumed from {result.resumed_from}", quiet)
    loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "n/a"
    rate = f"{result.samples_per_second:.2f} samples/s" if result.samples_per_second else "no steps run"
    note(f"trained steps {result.start_step}->{result.step}: loss {loss}, {rate}", quiet)
    if result.samples:
        note(f"validation samples in {result.samples[-1].parent}", quiet)
    if as_json:
        report("", quiet=True, as_json=True, model=result.export_dir, steps=[result.start_step, result.step],
               loss=result.final_loss, samples_per_second=result.samples_per_second)
    else:
        click.echo(str(result.export_dir))


commands = [train]
