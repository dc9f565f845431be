"""`worldgen view`: look at a world from inside (window, headless screenshot, or browser)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import note, parse_size, quiet_option


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
def view(source, screenshot, web, host, port, size, yaw, pitch, fov, max_vertices, quiet, position=None):
    """Look at SOURCE (a scene folder, .glb, point-cloud .ply or splat .ply) from where the panorama was taken."""
    from ...viewer import window as viewer
    from ...errors import UserInputError

    from ...output_paths import check_output_path
    from ...validation import check, check_optional, check_screenshot_size

    if screenshot and web:
        raise UserInputError("choose one of --screenshot and --web")
    if position is not None and not screenshot:
        raise UserInputError("--position is for --screenshot FILE.png; the window and --web start at the eye")
    fov = check("fov", fov, "--fov")
    yaw, pitch = check("angle", yaw, "--yaw"), check("pitch", pitch, "--pitch")
    max_vertices = check_optional("max_vertices", max_vertices, "--max-vertices")
    if screenshot:
        width, height = check_screenshot_size(*parse_size(size))
        check_output_path(screenshot, what="--screenshot")
        if position is not None:  # issue 22: off the eye (worldgen.explore.off_eye)
            from ...explore.off_eye import parse_position, screenshot_from

            written = screenshot_from(source, screenshot, parse_position(position), width, height, yaw, pitch, fov,
                                      max_vertices or viewer.DEFAULT_MAX_VERTICES)
        else:
            written = viewer.screenshot(source, screenshot, width, height, yaw, pitch, fov,
                                        max_vertices=max_vertices or viewer.DEFAULT_MAX_VERTICES)
        note(f"wrote {written}", quiet)
        return
    if web:
        server = viewer.start_web(source, host=host, port=port, max_vertices=max_vertices or viewer.WEB_MAX_VERTICES)
        click.echo(f"worldgen: serving {source} at http://{host}:{server.get_port()} (Ctrl-C to stop)", err=True)
        try:
            server.sleep_forever()
        finally:
            server.stop()
        return
    viewer.open_window(source, max_vertices=max_vertices or viewer.DEFAULT_MAX_VERTICES, fov_deg=fov)


commands = [view]
