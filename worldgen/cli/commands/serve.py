"""`worldgen serve`: keep the model loaded and make worlds over a local HTTP API (docs/server.md).

Also the options half of `worldgen pano --server URL` (``pano_on_server``; its logic is
``worldgen.server.remote``). Top level imports only click: `worldgen pano --server` never imports torch.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Optional

import click

from ..options import (backend_option, base_option, dtype_option, extra_model_option, model_option, note, option_set,
                       quiet_option, window_batch_option)

DEFAULT_OUT = Path("served-worlds")
STOP_TIMEOUT_S = 120  # a running job stops at its next step; this bounds a step that never ends


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any address but loopback needs a token (WORLDGEN_SERVE_TOKEN or --token-file).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default 8765; 0 takes any free port, and the printed URL says which).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A file holding the token every request must send (Authorization: Bearer TOKEN); default: the "
                   "WORLDGEN_SERVE_TOKEN environment variable, if set.")
@click.option("--client-timeout", type=click.FloatRange(0.5, 600), default=20.0, show_default=True,
              help="Seconds a client has to send a request's headers, and again its body.")
@click.option("-o", "--output", "--out", "out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True,
              help="Output root: every world is written under it (requests can name folders inside it only). "
                   "(--out: old name.)")
@option_set(backend_option(), model_option, base_option, extra_model_option, dtype_option, window_batch_option)
@click.option("--device", "devices", multiple=True,
              help="A torch device to run jobs on, repeatable: one worker (one job at a time) per device. "
                   "Default: every CUDA GPU, else the best device.")
@click.option("--preset", type=click.Choice(["published", "fast"]), default="published", show_default=True,
              help="Sampling recipe for requests that name none.")
@click.option("--max-queued", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="Jobs that may wait; more are refused (429) until some finish.")
@quiet_option
def serve(host, port, token_file, client_timeout, out, backend, model, base, extra_model, dtype, window_batch,
          devices, preset, max_queued, quiet):
    """Load a model once and make worlds from a queue over HTTP on 127.0.0.1.

    \b
    Prints the URL on stdout when ready. Submit with `worldgen pano PROMPT --server URL`, or:
      curl -H 'Content-Type: application/json' -d '{"prompt": "a misty fjord"}' URL/v1/jobs
    Worlds go to OUT/NAME/ + OUT/NAME.glb. SIGINT/SIGTERM stop it: queued jobs are cancelled,
    the running one stops at its next step, and nothing half-written is left in OUT.
    """
    from ...server import DEFAULT_PORT
    from ...server.http import check_bind, make_server
    from ...server.outputs import OutputRoot
    from ...world.backends import REAL_WEIGHTS_HINT, choose_backend

    token = _token(token_file)
    if not check_bind(host, token):
        note(f"serving on {host}, beyond this machine: every request must carry the token", quiet)
    root = OutputRoot(out)
    root.clean_staging()  # before loading: a symlinked OUT/.serve is refused at once, not after minutes
    spec, fell_back = choose_backend(backend, model)
    if fell_back:
        note(REAL_WEIGHTS_HINT, quiet)
    settings = {k: v for k, v in {"model": model, "base": base, "extra_model": extra_model, "dtype": dtype,
                                  "window_batch": window_batch}.items() if v is not None}
    if preset != "published" and spec.name == "jointnet":
        settings["preset"] = preset  # the loaded default; each job still passes its own preset
    httpd = make_server(None, host, DEFAULT_PORT if port is None else port, token=token,
                        client_timeout=client_timeout, on_error=None if quiet else lambda text: click.echo(text, err=True))
    _run_until_signal(httpd, spec, settings, devices, root, preset, max_queued, quiet)


def _run_until_signal(httpd, spec, settings: dict, devices, root, preset: str, max_queued: int, quiet: bool) -> None:
    """Load the model on each device, serve until SIGINT/SIGTERM, then stop cleanly."""
    from ...server.service import WorldService

    try:
        workers = _devices(spec.name, devices)
        note(f"loading {spec.name} once on {', '.join(d or 'the default device' for d in workers)}", quiet)
        service = WorldService.load(spec, settings, workers, root, default_preset=preset, max_queued=max_queued,
                                    on_event=None if quiet else _log_event)
        httpd.service = service
        service.start()
        httpd.start()
        click.echo(httpd.url)  # stdout, one line: what scripts (and the benchmark) read
        note(f"serving {spec.name} at {httpd.url} (loaded in {service.load_seconds:.1f} s); worlds go to "
             f"{root.path}; stop with Ctrl-C", quiet)
        _wait_for_signal()
        note("stopping: queued jobs are cancelled, the running one stops at its next step", quiet)
        running = service.stop(timeout=STOP_TIMEOUT_S)
        if running:
            note(f"job {running[0].id} did not stop in {STOP_TIMEOUT_S} s; its staging folder is removed at the "
                 f"next start, nothing reached {root.path}", quiet)
        httpd.shutdown()
    finally:
        httpd.server_close()
    note("stopped", quiet)


def _token(token_file):
    """The server's token: --token-file's first line, else WORLDGEN_SERVE_TOKEN, else None."""
    import os

    from ...errors import UserInputError
    from ...server.http import TOKEN_ENV

    if token_file is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read --token-file {token_file} ({exc}); give a text file with the token") from None
    if not token:
        raise UserInputError(f"--token-file {token_file} is empty; put the token on its first line")
    return token


def _devices(backend: str, devices) -> list:
    """One worker per device: the given ones (repeats collapse), else every CUDA GPU for JointNet,
    else one worker on the backend's default device."""
    if devices:
        return list(dict.fromkeys(devices))
    if backend == "jointnet":
        import torch

        count = torch.cuda.device_count()
        if count > 1:
            return [f"cuda:{index}" for index in range(count)]
    return [None]


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM; a second one stops at once (KeyboardInterrupt)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a second SIGTERM interrupts the shutdown


def _log_event(kind: str, job, detail: str) -> None:
    reason = f": {job.error}" if job.error and kind in ("failed", "cancelled") else ""
    click.echo(f"worldgen: job {job.id} {kind} ({job.target.name}){reason}", err=True)
    if detail:
        click.echo(detail.rstrip(), err=True)


def pano_on_server(server: str, prompt: str, *, size: str, span: float, preset: str, steps, guidance: float,
                   negative_prompt: str, modality: Optional[str], scheduler, seed: int, regions, output: Path, scene_dir: Path,
                   quiet: bool) -> None:
    """`worldgen pano ... --server URL`: the same request, made by the server, downloaded to -o
    (``worldgen.server.remote``); here only which options were given, and the notes."""
    from ...server.remote import PROCEDURAL_NOTE, job_request, make_world_on_server, refuse_server_side
    from ..options import parse_size
    from ..progress import progress_for

    ctx = click.get_current_context()
    explicit = {name for name in ctx.params if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
    refuse_server_side(explicit)
    width, height = parse_size(size)
    # --steps and --preset only when given: pano filled in its preset's steps, the server fills in its own.
    payload = job_request(prompt, width=width, height=height, span=span, guidance=guidance,
                          negative_prompt=negative_prompt, seed=seed, regions=regions, scheduler=scheduler,
                          modality=modality, steps=steps if "steps" in explicit else None,
                          preset=preset if "preset" in explicit else None)
    progress = progress_for(quiet)
    try:
        job = make_world_on_server(server, payload, scene_dir, output, progress)
    finally:
        if progress is not None:
            progress.close()
    if job.get("backend") == "procedural":
        note(PROCEDURAL_NOTE, quiet)
    note(f"wrote scene {scene_dir}/ (version 1) and {output}", quiet)


commands = [serve]
