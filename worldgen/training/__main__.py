"""``python -m worldgen.training [options]`` is ``worldgen train [options]``.

This is the form Accelerate's launcher starts once per GPU:
``accelerate launch [--multi_gpu --num_processes N --mixed_precision bf16] -m worldgen.training --modality ...``.
It goes through the ``worldgen`` command group so errors are reported the same way.
"""

import sys

from worldgen.cli.main import cli


def main() -> None:
    cli(["train", *sys.argv[1:]], prog_name="worldgen")


if __name__ == "__main__":
    main()
