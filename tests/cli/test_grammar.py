"""One command-line grammar over every command (issue 25, docs/cli.md): the same option names for
the same things, -q/-v everywhere, exit 2 for a command line click cannot parse and 1 for the rest,
--json that parses, no progress bars in files, nothing from open3d under -q."""

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from worldgen.cli.main import cli

# Commands that make or list something, and so take --json.
MAKES_OR_LISTS = {"pano", "build", "batch", "depth", "paint", "refine", "outpaint", "edit", "place", "export",
                  "history", "train", "view", "doctor", "plugins", "models add", "models list", "models tiny",
                  "sphere", "layers"}


def leaves(group=cli, prefix=()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaves(command, prefix + (name,))
        else:
            yield prefix + (name,), command


LEAVES = list(leaves())


def options_of(command) -> dict:
    """option string -> the click Option that has it."""
    return {opt: p for p in command.params if isinstance(p, click.Option) for opt in p.opts + p.secondary_opts}


@pytest.mark.parametrize("path,command", LEAVES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_speaks_the_same_options(path, command):
    opts = options_of(command)
    assert {"-q", "--quiet", "-v", "--verbose"} <= set(opts), path
    assert opts["-q"] is opts["--quiet"] and opts["-v"] is opts["--verbose"]
    if "-o" in opts or "--out" in opts or "--output" in opts:  # one spelling: -o/--output (--out only as an alias)
        assert opts.get("-o") is opts.get("--output") is not None, path
    if "--modality" in opts:  # always a name, never a file
        assert not isinstance(opts["--modality"].type, click.Path), path
    if "--photo" in opts:  # an alias of --image
        assert opts["--photo"] is opts.get("--image"), path
    assert ("--json" in opts) == (" ".join(path) in MAKES_OR_LISTS), path


@pytest.mark.parametrize("path,command", LEAVES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_an_unknown_option_is_a_usage_error_everywhere(path, command):
    result = CliRunner().invoke(cli, [*path, "--no-such-option"])
    assert result.exit_code == 2, (path, result.output)


def test_size_syntax_is_a_usage_error_and_a_refused_size_is_exit_1(tmp_path):
    runner = CliRunner()
    malformed = runner.invoke(cli, ["pano", "a lake", "--size", "abc", "-o", str(tmp_path / "a.glb")])
    refused = runner.invoke(cli, ["pano", "a lake", "--size", "100x10", "-o", str(tmp_path / "b.glb")])
    assert malformed.exit_code == 2, malformed.output
    assert refused.exit_code == 1 and "8" in refused.output, refused.output
    assert not (tmp_path / "b").exists()


def worldgen(*args, cwd, stderr_file=None, env=None):
    exe = Path(sys.executable).with_name("worldgen")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **(env or {}))
    if stderr_file is None:
        return subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
    with open(stderr_file, "w") as err:
        return subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err,
                              text=True, timeout=600)


def test_pano_json_is_one_object_and_no_bars_go_into_a_log_file(tmp_path):
    log = tmp_path / "stderr.log"
    done = worldgen("pano", "a calm lake", "--backend", "procedural", "--size", "128x32", "-o", "w.glb", "--json",
                    cwd=tmp_path, stderr_file=log)
    assert done.returncode == 0, log.read_text()
    out = json.loads(done.stdout)
    assert out["scene"] == "w" and out["version"] == 1 and out["glb"] == "w.glb" and out["backend"] == "procedural"
    assert isinstance(out["seconds"], float) and out["worldgen"]
    text = log.read_text()
    assert "wrote scene" in text  # the note still reaches the person...
    assert "\r" not in text and "\x1b[" not in text and "it/s" not in text and "%|" not in text  # ...bars do not


def test_json_of_the_listing_and_exporting_commands_parses(tmp_path):
    runner = CliRunner()
    made = runner.invoke(cli, ["pano", "a hill", "--backend", "procedural", "--size", "128x32",
                               "-o", str(tmp_path / "h.glb"), "-q"])
    assert made.exit_code == 0, made.output
    history = json.loads(runner.invoke(cli, ["history", str(tmp_path / "h"), "--json"]).output)
    assert history["current"] == 1 and history["versions"][0]["operation"] == "pano"
    exported = runner.invoke(cli, ["export", str(tmp_path / "h"), "-f", "ply", "-o", str(tmp_path / "h.ply"),
                                   "--json", "-q"])
    assert exported.exit_code == 0, exported.output
    record = json.loads(exported.output)
    assert record["path"] == str(tmp_path / "h.ply") and record["bytes"] == (tmp_path / "h.ply").stat().st_size
    assert json.loads(runner.invoke(cli, ["models", "list", "--json"]).output)["models"] == []
    assert isinstance(json.loads(runner.invoke(cli, ["plugins", "--json"]).output), list)


def test_quiet_silences_open3d_native_lines(tmp_path):
    made = worldgen("pano", "a lake", "--backend", "procedural", "--size", "128x32", "-o", "w.glb", "-q", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    shot = worldgen("view", "w", "--screenshot", "s.png", "--size", "64x48", "-q", cwd=tmp_path)
    if shot.returncode != 0 and "headless rendering is not available" in shot.stderr:
        pytest.skip("no offscreen renderer here")
    assert shot.returncode == 0, shot.stderr
    assert (tmp_path / "s.png").is_file()
    assert shot.stdout == "" and shot.stderr == "", (shot.stdout, shot.stderr)  # no FEngine/Vulkan lines


def test_view_names_the_extra_when_open3d_is_missing(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "open3d" else real(name, *a))
    made = CliRunner().invoke(cli, ["pano", "a lake", "--backend", "procedural", "--size", "128x32",
                                    "-o", str(tmp_path / "w.glb"), "-q"])
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(cli, ["view", str(tmp_path / "w"), "--screenshot", str(tmp_path / "s.png")])
    assert result.exit_code == 1 and "pip install 'worldgen[view]'" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["paint"],                                          # neither a scene nor a modality file
    ["refine"],
    ["outpaint"],
    ["pano"],                                           # neither a prompt nor --from
    ["depth", "."],                                     # a folder is a scene: -o does not go with it
])
def test_missing_or_conflicting_inputs_are_usage_errors(args, tmp_path):
    if args[0] == "depth":
        args = ["depth", str(tmp_path), "-o", str(tmp_path / "x")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_shell_completion_script_is_what_docs_cli_md_says(tmp_path):
    done = worldgen(cwd=tmp_path, env={"_WORLDGEN_COMPLETE": "bash_source"})
    assert done.returncode == 0 and "complete" in done.stdout and "_WORLDGEN_COMPLETE" in done.stdout
    assert "_WORLDGEN_COMPLETE=bash_source worldgen" in (Path(__file__).parents[2] / "docs/cli.md").read_text()
