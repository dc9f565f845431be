"""Child process for test_interrupts.py: runs one real `worldgen` command over and over until it is
killed, so a signal sent at a random moment lands inside the command's own work (generation,
layer writes, manifest replace, export) rather than in interpreter start-up.

    python interrupt_driver.py pano|export|refine ROOT

Prints ``ready`` once everything is imported, then ``done N`` after each completed command.
``refine`` swaps the JointNet backend for a cheap deterministic one (each version's image is the
previous one plus 1/255), so the kill points are in worldgen's write path, not in a model.
Exit code 130 means a SIGINT was handled (inside a command by the CLI, or between commands here).
"""

from __future__ import annotations

import sys
from pathlib import Path


class StepRefiner:
    """Stands in for the JointNet backend in ``worldgen refine``: image + 1/255, depth unchanged."""

    name = "step-refiner"
    modality = "depth"

    def settings(self) -> dict:
        return {}

    def refine(self, request, snapshot, progress=None):
        import numpy as np

        from worldgen.scene.snapshot import Snapshot

        image = np.clip(np.round(snapshot.image * 255.0) + 1.0, 0.0, 255.0) / 255.0
        return Snapshot(image=image.astype(np.float32), modalities=dict(snapshot.modalities),
                        projection=snapshot.projection, geometry=dict(snapshot.geometry), prompt=snapshot.prompt)


def use_step_refiner() -> None:
    from worldgen.world import backends as _taskcli  # the task model loader (was cli/commands/_taskcli)

    _taskcli.load_task_backend = lambda kw, scene=None: StepRefiner()


def arguments(mode: str, root: Path, index: int) -> list[str]:
    if mode == "pano":
        return ["pano", "hills by a lake", "-o", str(root / f"w{index}.glb"), "--size", "128x64", "-q"]
    if mode == "export":
        return ["export", str(root / "scene"), "-o", str(root / "out.glb"), "-O", f"step={1 + index % 2}", "-q"]
    if mode == "refine":
        return ["refine", str(root / "scene"), "--scale", "1", "-q"]
    raise SystemExit(f"unknown mode {mode}")


def main() -> int:
    import click

    mode, root = sys.argv[1], Path(sys.argv[2])
    try:
        from worldgen.cli.main import cli
        from worldgen.export_files import export_to_file  # noqa: F401  (import before "ready")
        from worldgen.scene.store import Scene  # noqa: F401

        if mode == "refine":
            use_step_refiner()
        print("ready", flush=True)
        index = 0
        while True:
            code = cli.main(arguments(mode, root, index), prog_name="worldgen", standalone_mode=False)
            if code == 130:
                return 130
            if code not in (None, 0):
                print(f"failed {index} {code}", flush=True)
                return 3
            print(f"done {index}", flush=True)
            index += 1
    except (KeyboardInterrupt, click.exceptions.Abort):  # a SIGINT between commands, or in click's parsing
        return 130


if __name__ == "__main__":
    sys.exit(main())
