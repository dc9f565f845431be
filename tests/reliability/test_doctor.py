"""`worldgen doctor`: versions, devices, plugins, registered models and what each command needs, with a
fix for every problem; it reports broken installations instead of crashing on them."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
from reliability_support import fixture_dir, invoke, writable_copy

from worldgen import doctor
from worldgen.doctor import ADD_MODEL_FIX, FAIL, INFO, OK, WARN, run_checks


@pytest.fixture
def store(tmp_path, monkeypatch):
    from worldgen.backends.jointnet.store import ModelStore

    monkeypatch.setenv("WORLDGEN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WORLDGEN_DEV_PLUGINS", raising=False)
    monkeypatch.delenv("WORLDGEN_PLUGINS", raising=False)
    return ModelStore(tmp_path / "home")


def _by_name(report, section):
    return {f.name: f for f in report.section(section)}


def test_fresh_install_without_weights(store):
    report = run_checks(store=store)
    versions = _by_name(report, "versions")
    for name in ("python", "worldgen", "torch", "diffusers", "transformers", "numpy"):
        assert versions[name].status == OK and versions[name].detail
    assert versions["torch"].detail.startswith(__import__("torch").__version__.split("+")[0])
    assert _by_name(report, "devices")["cpu"].status == OK
    plugins = _by_name(report, "plugins")
    for name in ("backend procedural", "backend jointnet", "modality depth", "modality normal", "exporter glb"):
        assert plugins[name].status == OK and plugins[name].detail.startswith("worldgen ")
    models = _by_name(report, "models")
    assert models["store"].status == INFO and "0 registered" in models["store"].detail
    assert models["store"].fix == ADD_MODEL_FIX
    commands = _by_name(report, "commands")
    assert commands["pano"].status == INFO and "procedural" in commands["pano"].detail
    needing = commands["refine/outpaint/depth/paint/edit"]
    assert needing.status == WARN and needing.fix == ADD_MODEL_FIX
    assert commands["export"].status == OK
    assert all(f.fix for f in report.problems)  # every problem says what to do


def test_a_registered_model_is_checked_and_used(store):
    store.add(fixture_dir() / "model", "tiny", base=fixture_dir() / "base", make_default=True)
    store.add(fixture_dir() / "model_inpaint", "tiny-inpaint", base=fixture_dir() / "base")
    report = run_checks(store=store)
    models = _by_name(report, "models")
    assert models["*tiny"].status == OK and "depth/generate" in models["*tiny"].detail
    assert models["tiny-inpaint"].status == OK and "inpaint" in models["tiny-inpaint"].detail
    commands = _by_name(report, "commands")
    assert commands["pano"].status == OK and "'tiny'" in commands["pano"].detail
    assert commands["refine/outpaint/depth/paint/edit"].status == OK
    assert commands["edit --method masked"].status == OK
    assert not [f for f in report.findings if f.status == FAIL]


@pytest.mark.parametrize("breakage, expect", [
    ("delete-weights", "has no weights file"),
    ("empty-weights", "is empty"),
    ("corrupt-safetensors", "not a readable safetensors file"),
    ("delete-config", "config.json is missing"),
    ("delete-checkpoint", "is missing"),
])
def test_a_broken_registered_model_fails_with_a_fix(breakage, expect, store, tmp_path):
    import shutil

    model = writable_copy(fixture_dir() / "model", tmp_path / "model")
    store.add(model, "tiny", base=fixture_dir() / "base", make_default=True)
    weights = model / "unet" / "diffusion_pytorch_model.bin"
    if breakage == "delete-weights":
        weights.unlink()
    elif breakage == "empty-weights":
        weights.write_bytes(b"")
    elif breakage == "corrupt-safetensors":
        weights.unlink()
        (model / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    elif breakage == "delete-config":
        (model / "jointnet" / "config.json").unlink()
    else:
        shutil.rmtree(model)
    report = run_checks(store=store)
    finding = _by_name(report, "models")["*tiny"]
    assert finding.status == FAIL and expect in finding.detail and finding.fix
    commands = _by_name(report, "commands")
    assert commands["pano"].status == INFO and "unusable" in commands["pano"].detail
    assert commands["refine/outpaint/depth/paint/edit"].status == WARN


def test_a_missing_base_model_fails_with_a_fix(store, tmp_path):
    base = writable_copy(fixture_dir() / "base", tmp_path / "base")
    store.add(fixture_dir() / "model", "tiny", base=base)
    import shutil

    shutil.rmtree(base)
    finding = _by_name(run_checks(store=store), "models")["tiny"]
    assert finding.status == FAIL and "(missing)" in finding.detail and "--base" in finding.fix


def test_a_corrupt_store_index_is_reported_not_raised(store):
    store.root.mkdir(parents=True)
    store.index_path.write_text("{not json")
    report = run_checks(store=store)
    finding = _by_name(report, "models")["store"]
    assert finding.status == FAIL and "corrupt" in finding.detail and "worldgen models add" in finding.fix
    assert _by_name(report, "commands")["refine/outpaint/depth/paint/edit"].status == WARN


def test_a_plugin_that_fails_to_load_is_listed_as_skipped(store, monkeypatch):
    monkeypatch.setenv("WORLDGEN_DEV_PLUGINS", "no_such_module_anywhere:SPEC")
    plugins = run_checks(store=store).section("plugins")
    skipped = [f for f in plugins if f.name == "skipped"]
    assert len(skipped) == 1 and "no_such_module_anywhere" in skipped[0].detail and skipped[0].status == WARN
    assert any(f.name == "WORLDGEN_DEV_PLUGINS" and f.status == WARN for f in plugins)
    assert any(f.name == "backend procedural" for f in plugins)  # the rest still loads


def test_an_allowlist_is_shown(store, monkeypatch):
    monkeypatch.setenv("WORLDGEN_PLUGINS", "worldgen-edges")
    finding = _by_name(run_checks(store=store), "plugins")["WORLDGEN_PLUGINS"]
    assert "worldgen-edges" in finding.detail


def test_too_old_and_missing_packages_fail_with_the_install_command(store, monkeypatch):
    real = metadata.version

    def version(name):
        if name == "diffusers":
            return "0.19.3"
        if name == "open3d":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    real_find_spec = doctor.importlib.util.find_spec
    monkeypatch.setattr(doctor.metadata, "version", version)
    monkeypatch.setattr(doctor.importlib.util, "find_spec",
                        lambda name, *a: None if name == "open3d" else real_find_spec(name, *a))
    report = run_checks(store=store)
    versions = _by_name(report, "versions")
    assert versions["diffusers"].status == FAIL and versions["diffusers"].fix == "pip install -U 'diffusers>=0.31'"
    # open3d is the [view] extra (issue 25): missing, it is named with its extra, and `view` cannot run
    assert versions["open3d"].status == INFO and versions["open3d"].fix == "pip install 'worldgen[view]' to use it"
    assert _by_name(report, "commands")["view"].status == FAIL


def test_a_crashing_check_becomes_a_finding(store, monkeypatch):
    def broken():
        raise RuntimeError("driver exploded\nwith detail")

    monkeypatch.setattr(doctor, "check_devices", broken)
    report = run_checks(store=store)
    (finding,) = report.section("devices")
    assert finding.status == FAIL and "driver exploded with detail" in finding.detail
    assert report.section("commands")  # later sections still ran


def test_cli_renders_every_section_and_json(store):
    result = invoke(["doctor"])
    assert result.exit_code == 0, result.output
    for section in ("versions:", "devices:", "plugins:", "models:", "commands:"):
        assert section in result.stdout
    assert "-> " + ADD_MODEL_FIX in result.stdout
    data = json.loads(invoke(["doctor", "--json"]).stdout)
    assert data["problems"] >= 1 and {f["section"] for f in data["findings"]} == set(doctor.SECTIONS)
    problems = invoke(["doctor", "--problems"]).stdout
    assert "torch" not in problems and "refine/outpaint/depth/paint/edit" in problems
