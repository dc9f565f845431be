"""``worldgen models``: register JointNet checkpoints, list them, pick a default, write tiny ones."""

from __future__ import annotations

import re

import click

from ..options import json_option, note, quiet_option

MODALITY_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _check_modality(ctx, param, value):
    if value is not None and not MODALITY_RE.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a modality name like 'depth' or 'normal'")
    return value


@click.group()
def models() -> None:
    """Manage JointNet checkpoints in the local model store.

    \b
    Official checkpoints: rgbd_finetune_sd21b.zip (generation), rgbd_inpaint_sd21b.zip (inpainting),
    used with a diffusers-layout copy of stabilityai/stable-diffusion-2-1-base (--base).
    Store: $WORLDGEN_HOME, else $XDG_DATA_HOME/worldgen, else ~/.local/share/worldgen.
    """


@models.command("add")
@click.argument("source")
@click.option("--name", required=True, help="Name to use with --model, e.g. rgbd.")
@click.option("--base", default=None,
              help="Base model: a folder (diffusers layout of stable-diffusion-2-1-base) or a Hub id such as "
                   "stabilityai/stable-diffusion-2-1-base (read from the Hugging Face cache).")
@click.option("--modality", default=None, callback=_check_modality,
              help="Modality the checkpoint carries (default: from its worldgen.json, else depth).")
@click.option("--default", "make_default", is_flag=True, help="Use this model when --model is not given.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default=None,
              help="Compute dtype of the converted copy (default: what `worldgen pano` uses on this machine: "
                   "bfloat16 on GPUs that have it, else float16; float32 on CPU).")
@click.option("--no-convert", is_flag=True,
              help="Keep only the original files (else pickled .bin weights are converted once to safetensors "
                   "in the compute dtype, into the store, for fast loading; the originals are never changed).")
@click.option("--license", "license_name", default=None,
              help="The weights' licence (SPDX id or name), shown by `models list` (default: from a Hub model's card).")
@quiet_option
@json_option
def add(source, name, base, modality, make_default, dtype, no_convert, license_name, quiet, as_json):
    """Register SOURCE: a checkpoint folder, a .zip (unpacked into the store), or a Hub id (org/name[@rev],
    its snapshot in the Hugging Face cache; HF_HUB_OFFLINE=1 reads only the cache). The weights' SHA-256
    hashes are computed once here and recorded by every scene made with the model."""
    from worldgen.backends.jointnet.store import ModelStore

    store = ModelStore()
    entry = store.add(source, name, base=base, modality=modality, make_default=make_default, license=license_name)
    if not no_convert:
        from worldgen.backends.jointnet.settings import compute_dtype_name

        chosen = dtype or compute_dtype_name()
        try:
            converted = store.convert(name, chosen)
        except BaseException:
            store.remove(name)  # registered fully or not at all
            raise
        if converted is not None:
            note(f"converted {name!r} to {chosen} safetensors in {converted} (read straight onto the device at load)", quiet)
    if entry.base_dir is None:
        note(f"{name!r} has no base model yet: pass --base PATH to `worldgen pano`, or re-add it with --base", quiet)
    if as_json:
        from ..grammar import report

        return report("", quiet=True, as_json=True, **_entry_record(entry, False))
    click.echo(f"{entry.name}\t{entry.path}")


def _entry_record(entry, is_default: bool) -> dict:
    return {"name": entry.name, "default": is_default, "modality": entry.modality, "inpaint": entry.inpaint,
            "path": entry.path, "base": str(entry.base_dir) if entry.base_dir else None,
            "license": entry.license, "weights_sha256": entry.weights}


@models.command("list")
@json_option
def list_models(as_json):
    """List registered models (* marks the default) with their modality, kind, licence and folders."""
    from worldgen.backends.jointnet.store import ModelStore

    store = ModelStore()
    entries = store.entries()
    if as_json:
        from ..grammar import report

        default = store.default_name()
        return report("", quiet=True, as_json=True, models=[_entry_record(e, e.name == default) for e in entries])
    if not entries:
        from ..grammar import is_quiet

        note("no models registered; add one with `worldgen models add PATH_OR_ZIP --name NAME`", is_quiet())
        return
    default = store.default_name()
    for e in entries:
        base = str(e.base_dir) if e.base_dir else "(no base: pass --base)"
        kind = "inpaint" if e.inpaint else "generate"
        licence = f"licence {e.license}" if e.license else "licence unknown"
        click.echo(f"{'*' if e.name == default else ' '} {e.name}\t{e.modality}\t{kind}\t{licence}\t{e.path}\t{base}")


@models.command("remove")
@click.argument("name")
def remove(name):
    """Forget NAME; files are deleted only if they were unpacked into the store."""
    from worldgen.backends.jointnet.store import ModelStore

    entry = ModelStore().remove(name)
    click.echo(f"removed {entry.name}" + (" and its unpacked files" if entry.managed else ""))


@models.command("default")
@click.argument("name", required=False)
@click.option("--clear", is_flag=True, help="Have no default (the procedural backend is used).")
def default(name, clear):
    """Show the default model, set it to NAME, or --clear it."""
    from worldgen.backends.jointnet.store import ModelStore

    store = ModelStore()
    if clear or name:
        store.set_default(None if clear else name)
    click.echo(store.default_name() or "(none: the procedural backend is the default)")


@models.command("tiny")
@click.argument("directory", type=click.Path(path_type=str))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--inpaint", is_flag=True, help="With masked-latent input, like rgbd_inpaint_sd21b.")
@click.option("--modality", default="depth", show_default=True, callback=_check_modality)
@click.option("--family", type=click.Choice(["sd", "if"]), default="sd", show_default=True,
              help="Base model: sd (Stable Diffusion, latent space) or if (DeepFloyd-IF, pixel space).")
@json_option
def tiny(directory, seed, inpaint, modality, family, as_json):
    """Write a tiny random checkpoint with its own base to DIRECTORY (for tests and demos).

    The result works with `worldgen pano --model DIRECTORY` without --base; its pictures are noise.
    """
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint
    from worldgen.output_paths import check_output_path

    check_output_path(directory, what="DIRECTORY", folder=True)
    written = write_tiny_checkpoint(directory, seed=seed, inpaint=inpaint, modality=modality, family=family)
    if as_json:
        from ..grammar import report

        return report("", quiet=True, as_json=True, path=written)
    click.echo(str(written))


commands = [models]
