"""`worldgen view`: look at a world from inside (window, headless screenshot, or browser)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import json_option, parse_size, quiet_option


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Render one image from the eye to this PNG, headless (no display needed), and exit.")
@click.option("--web", is_flag=True, help="Serve the world in the browser (viser) instead of opening a window.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address for --web. The default is reachable from this machine only; 0.0.0.0 shares it on the network.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port for --web.")
@click.option("--size", default="1280x720", show_default=True, help="Screenshot WIDTHxHEIGHT.")
@click.option("--yaw", type=float, default=0.0, show_default=True,
              help="Screenshot direction, degrees to the right of the panorama's first column.")
@click.option("--pitch", type=float, default=0.0, show_default=True, help="Screenshot direction, degrees up.")
@click.option("--fov", type=float, default=75.0, show_default=True, help="Vertical field of view, degrees.")
@click.option("--max-vertices", type=int, default=None,
              help="Decimate a scene folder to about this many vertices (default: 2M window/screenshot, 1M web).")
@click.option("--position", default=None, metavar="X,Y,Z",
              help="Screenshot from this many metres off the eye (x right, y up, z back), e.g. 2,0,-1.")
@quiet_option
@json_option
def view(source, screenshot, web, host, port, size, yaw, pitch, fov, max_vertices, quiet, as_json, position=None):
    """Look at SOURCE (a scene folder, .glb, point-cloud .ply or splat .ply) from where the panorama was taken.

    Needs the viewer extra: pip install 'worldgen[view]'. --json reports the screenshot written.
    """
    from ...errors import UserInputError
    from ..grammar import native_output_silenced, report

    viewer = _viewer(needs_open3d=not web)

    from ...output_paths import check_output_path
    from ...validation import check, check_optional, check_screenshot_size

    if screenshot and web:
        raise UserInputError("choose one of --screenshot and --web")
    fov = check("fov", fov, "--fov")
    yaw, pitch = check("angle", yaw, "--yaw"), check("pitch", pitch, "--pitch")
    max_vertices = check_optional("max_vertices", max_vertices, "--max-vertices")
    if screenshot:
        width, height = check_screenshot_size(*parse_size(size))
        check_output_path(screenshot, what="--screenshot")
        with native_output_silenced(quiet):  # open3d's renderer logs straight to fds 1 and 2
            if position is not None:  # issue 22: off the eye (worldgen.explore.off_eye)
                from ...explore.off_eye import parse_position, screenshot_from

                written = screenshot_from(source, screenshot, parse_position(position), width, height, yaw, pitch,
                                          fov, max_vertices or viewer.DEFAULT_MAX_VERTICES)
            else:
                written = viewer.screenshot(source, screenshot, width, height, yaw, pitch, fov,
                                            max_vertices=max_vertices or viewer.DEFAULT_MAX_VERTICES)
        return report(f"wrote {written}", quiet=quiet, as_json=as_json, path=written, size=[width, height])
    if web:
        server = viewer.start_web(source, host=host, port=port, max_vertices=max_vertices or viewer.WEB_MAX_VERTICES)
        click.echo(f"worldgen: serving {source} at http://{host}:{server.get_port()} (Ctrl-C to stop)", err=True)
        try:
            server.sleep_forever()
        finally:
            server.stop()
        return
    with native_output_silenced(quiet):
        viewer.open_window(source, max_vertices=max_vertices or viewer.DEFAULT_MAX_VERTICES, fov_deg=fov)


def _viewer(needs_open3d: bool):
    """The viewer module, or one line naming the extra when its dependencies are missing."""
    import importlib.util

    from ...errors import UserInputError

    missing = [name for name in (["open3d"] if needs_open3d else []) + ["viser"] * (not needs_open3d)
               if importlib.util.find_spec(name) is None]
    if missing:
        extra = "view" if missing[0] == "open3d" else "web"
        raise UserInputError(f"`worldgen view{' --web' if extra == 'web' else ''}` needs {missing[0]}: "
                             f"pip install 'worldgen[{extra}]'")
    from ...viewer import window

    return window


commands = [view]
