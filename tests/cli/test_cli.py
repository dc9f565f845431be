import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from worldgen.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def all_commands():
    names = []
    for name, command in cli.commands.items():
        names.append((name,))
        for sub in getattr(command, "commands", {}):
            names.append((name, sub))
    return names


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p))
def test_help_of_every_command(path):
    result = run(*path, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_help_does_not_import_torch():
    code = "import sys; from worldgen.cli.main import cli; print(sorted(m for m in ('torch', 'diffusers', 'open3d') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_pano_on_the_procedural_default_writes_scene_and_glb(tmp_path):
    out = tmp_path / "fjord.glb"
    result = CliRunner().invoke(cli, ["pano", "a misty fjord at dawn", "-o", str(out), "--size", "512x128"])
    assert result.exit_code == 0, result.output
    assert "procedural backend" in result.stderr and "worldgen models add" in result.stderr
    assert out.read_bytes()[:4] == b"glTF"
    manifest = json.loads((tmp_path / "fjord" / "scene.json").read_text())
    assert manifest["versions"][0]["backend"]["name"] == "procedural"
    assert manifest["versions"][0]["size"] == [512, 128]
    history = run("history", str(tmp_path / "fjord"))
    assert history.exit_code == 0 and "pano" in history.output and "a misty fjord at dawn" in history.output


def test_quiet_silences_notes(tmp_path):
    result = CliRunner().invoke(cli, ["pano", "hills", "-o", str(tmp_path / "h.glb"), "--size", "256x64", "-q"])
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.parametrize("args, message", [
    (["pano", "hills", "--size", "1001x128"], "multiple of 8"),
    (["pano", "hills", "--span", "0"], "outside (0, 360]"),
    (["pano", "   "], "prompt is empty"),
    (["pano", "hills", "--backend", "nope"], "unknown backend 'nope'"),
    (["pano", "hills", "-o", "x.png"], "must end in .glb"),
    (["history", "does-not-exist"], "is not a scene"),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert "Traceback" not in result.output


def test_existing_scene_is_never_overwritten(tmp_path):
    out = tmp_path / "w.glb"
    assert run("pano", "hills", "-o", str(out), "--size", "256x64", "-q").exit_code == 0
    before = (tmp_path / "w" / "scene.json").read_bytes()
    result = CliRunner().invoke(cli, ["pano", "dunes", "-o", str(out), "--size", "256x64", "-q"])
    assert result.exit_code == 1 and "already holds a scene" in result.stderr
    assert (tmp_path / "w" / "scene.json").read_bytes() == before


def test_plugins_lists_builtins_with_distribution():
    result = run("plugins", "--json")
    rows = json.loads(result.output)
    procedural = [r for r in rows if r["name"] == "procedural"][0]
    assert procedural["group"] == "worldgen.backends" and procedural["distribution"] == "worldgen"
    assert procedural["version"] not in ("", "?")
