"""worldgen.world: each decision made in one place (issue 20), and the CLI holding no library logic."""

import ast
import errno
from pathlib import Path

import pytest

from worldgen.errors import UserInputError

COMMANDS = Path(__file__).resolve().parents[2] / "worldgen" / "cli" / "commands"


def test_auto_is_jointnet_with_a_model_else_procedural_with_the_reason():
    from worldgen.world.backends import choose_backend

    # The test home has no registered model (tests/conftest.py), so auto falls back and says so.
    assert [(spec.name, fell) for spec, fell in [choose_backend("auto"), choose_backend(None)]] == \
        [("procedural", True)] * 2
    assert (choose_backend("auto", "some/checkpoint")[0].name, choose_backend("auto", "x")[1]) == ("jointnet", False)
    assert choose_backend("procedural", "some/checkpoint")[0].name == "procedural"
    with pytest.raises(Exception, match="unknown backend 'nope'"):
        choose_backend("nope")


def test_every_front_end_resolves_auto_with_the_same_function():
    """The four copies of `auto` are gone: pano, batch, serve and recipes all call world.backends."""
    from worldgen.registry import get_registry
    from worldgen.world.backends import load_settings

    notes = []
    procedural = get_registry().backend("procedural")
    assert load_settings(procedural, {"device": "cpu", "dtype": None}, notes.append) == {}
    assert notes == ["the procedural backend takes no settings; ignoring device"]
    sources = {p.name: p.read_text() for p in [*COMMANDS.glob("*.py"), *(COMMANDS.parents[1] / "recipes").glob("*.py")]}
    assert not [name for name, text in sources.items() if ".available is not None" in text]


def test_command_modules_hold_commands_only_and_import_each_other_without_cycles():
    """No helper modules in cli/commands (they moved to worldgen/world and cli/options), and no import
    cycle between commands (pano <-> serve was one: serve took `choose_backend` from pano)."""
    graph = {}
    for path in sorted(COMMANDS.glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        assert any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "commands" for t in node.targets)
                   for node in tree.body), f"{path.name} defines no commands"
        graph[path.stem] = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                            and node.level == 1 and node.module}
    assert not any(path.name.startswith("_") for path in COMMANDS.glob("_*.py") if path.name != "__init__.py")

    def reaches(start, target, seen=()):
        return any(nxt == target or (nxt not in seen and reaches(nxt, target, (*seen, nxt)))
                   for nxt in graph.get(start, ()))

    assert [name for name in graph if reaches(name, name)] == []


def test_a_world_path_is_checked_before_any_work(tmp_path):
    from worldgen.world.outputs import new_world_paths, slug

    assert new_world_paths(None, "A misty fjord, at dawn!")[0] == Path("a-misty-fjord-at-dawn.glb")
    assert slug("!!!") == "world"
    with pytest.raises(UserInputError, match="must end in .glb"):
        new_world_paths(tmp_path / "fjord.ply", "x")
    (tmp_path / "fjord").mkdir()
    (tmp_path / "fjord" / "scene.json").write_text("{}")
    with pytest.raises(UserInputError, match="already holds a scene"):
        new_world_paths(tmp_path / "fjord.glb", "x")


def test_the_glb_refresh_policy(tmp_path):
    from worldgen.world.outputs import glb_target

    scene = tmp_path / "lake"
    assert glb_target(scene, None) is None  # no sibling GLB: nothing is exported
    (tmp_path / "lake.glb").write_bytes(b"glTF")
    assert glb_target(scene, None) == tmp_path / "lake.glb"  # pano wrote one: it follows the scene
    assert glb_target(scene, tmp_path / "other.glb") == tmp_path / "other.glb"


def test_one_message_for_every_fault_for_the_cli_and_the_server():
    from worldgen.world.advice import DEBUG_ENV, message_for

    assert message_for(UserInputError("size 7x7 must be a multiple of 8\n")) == "size 7x7 must be a multiple of 8"
    assert "ran out of memory" in message_for(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    full = message_for(OSError(errno.ENOSPC, "No space left on device", "/out/x.glb"))
    assert "/out/x.glb" in full and "space" in full
    assert message_for(KeyError("x")).startswith("internal error KeyError") and DEBUG_ENV in message_for(KeyError("x"))
    assert "\x1b" not in message_for(UserInputError("bad \x1b[31mred"))


def test_placement_painter_choice(tmp_path):
    from worldgen.api import WorldPipeline
    from worldgen.world.backends import painter_is_model

    assert painter_is_model("procedural", "rgbd", None) is False
    assert painter_is_model("jointnet", None, None) is True
    assert painter_is_model("auto", "rgbd", None) is True
    assert painter_is_model("auto", None, None) is False  # no model given, none registered, no scene record
    pipe = WorldPipeline.from_pretrained("procedural")
    scene = pipe("a hill", width=128, height=32).save(tmp_path / "hill")
    assert painter_is_model("auto", None, scene) is False  # made by the procedural backend
