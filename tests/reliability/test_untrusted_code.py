"""No code runs that the user did not ask for: no remote code from model repositories, no pickles
outside torch.load(weights_only=True), no eval/exec, and third-party plugins only as the allowlist
permits. The source checks read the installed package's own files (worldgen/, backends/, plugins/,
exporters/) with the ast module, so comments and docs do not count, and calls are checked by
their actual keyword values."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from worldgen.registry import ALLOWLIST_ENV, Registry

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("worldgen", "backends", "plugins", "exporters")


def _sources() -> list[Path]:
    files = [p for d in PACKAGE_DIRS for p in (REPO / d).rglob("*.py")
             if "tests" not in p.relative_to(REPO).parts]
    assert len(files) > 40  # the whole package, not an empty glob
    return files


def _calls():
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                yield path, node


def _name(func: ast.AST) -> str:
    """'torch.load' for torch.load(...), 'load' for load(...)."""
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    if isinstance(func, ast.Name):
        return func.id
    return "?"


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


def test_trust_remote_code_is_never_enabled():
    text_hits = [str(p.relative_to(REPO)) for p in _sources() if "trust_remote_code=True" in p.read_text()]
    assert text_hits == []
    bad = []
    for path, call in _calls():
        value = _keyword(call, "trust_remote_code")
        if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
            bad.append(_where(path, call))
        if any(kw.arg is None for kw in call.keywords) and "from_pretrained" in _name(call.func):
            # **kwargs into from_pretrained could smuggle trust_remote_code in: the dict must say False.
            source = path.read_text()
            if '"trust_remote_code": False' not in source and "trust_remote_code=False" not in source:
                bad.append(_where(path, call))
    assert bad == [], f"trust_remote_code must be the literal False: {bad}"


def test_torch_load_always_passes_weights_only_true():
    bad, seen = [], 0
    for path, call in _calls():
        if _name(call.func) == "torch.load":
            seen += 1
            value = _keyword(call, "weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                bad.append(_where(path, call))
    assert seen >= 1  # the .bin loader is among them: the check looks at real calls
    assert bad == []


def test_no_other_deserialiser_can_run_code():
    banned = {"pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads", "marshal.loads",
              "cloudpickle.load", "cloudpickle.loads", "shelve.open", "eval", "exec", "yaml.load",
              "yaml.unsafe_load", "torch.jit.load"}
    bad = [f"{_where(p, c)} {_name(c.func)}" for p, c in _calls() if _name(c.func) in banned]
    for path, call in _calls():
        if _name(call.func).endswith("np.load") or _name(call.func) == "numpy.load":
            value = _keyword(call, "allow_pickle")
            if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                bad.append(f"{_where(path, call)} np.load(allow_pickle=...)")
        if _name(call.func).startswith("subprocess."):
            value = _keyword(call, "shell")
            if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                bad.append(f"{_where(path, call)} shell=")
    assert bad == []


# ---- the plugin allowlist -------------------------------------------------------------------------------

class _Dist:
    def __init__(self, name: str) -> None:
        self.name, self.version = name, "1.0"


class _EntryPoint:
    """A fake installed entry point that records whether its code was imported."""

    def __init__(self, group: str, name: str, dist: str, spec, imported: list) -> None:
        self.group, self.name, self.dist = group, name, _Dist(dist)
        self._spec, self._imported = spec, imported

    def load(self):
        self._imported.append(self.name)
        return self._spec


def _entry_points(imported: list):
    from worldgen.specs import GROUP_EXPORTERS, ExporterSpec

    ours = ExporterSpec(name="glb", extension=".glb", description="built-in", export=lambda s, o: b"")
    theirs = ExporterSpec(name="usdz", extension=".usdz", description="third party", export=lambda s, o: b"")
    return [_EntryPoint(GROUP_EXPORTERS, "glb", "worldgen", ours, imported),
            _EntryPoint(GROUP_EXPORTERS, "usdz", "worldgen-usdz", theirs, imported)]


@pytest.mark.parametrize("allow, loaded", [
    (None, ["glb", "usdz"]),            # no allowlist: everything installed
    ("", ["glb"]),                      # empty allowlist: built-ins only
    ("something-else", ["glb"]),
    ("worldgen-usdz", ["glb", "usdz"]),  # by distribution
    ("usdz", ["glb", "usdz"]),           # by plugin name
])
def test_allowlist_decides_which_third_party_code_is_even_imported(allow, loaded, monkeypatch):
    if allow is None:
        monkeypatch.delenv(ALLOWLIST_ENV, raising=False)
    else:
        monkeypatch.setenv(ALLOWLIST_ENV, allow)
    imported: list = []
    registry = Registry.discover(entry_points=_entry_points(imported))
    assert registry.names("worldgen.exporters") == loaded
    assert imported == loaded  # a plugin left out is never imported, not merely hidden


def test_allowlist_applies_to_the_installed_cli(monkeypatch):
    """Through the real entry points: with an allowlist naming nothing, `worldgen plugins` lists
    worldgen's own plugins only."""
    import json

    from reliability_support import invoke

    from worldgen.registry import get_registry

    monkeypatch.setenv(ALLOWLIST_ENV, "nothing-allowed")
    get_registry.cache_clear()
    try:
        result = invoke(["plugins", "--json"])
    finally:
        get_registry.cache_clear()
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {row["distribution"] for row in rows} == {"worldgen"}
    assert {"procedural", "jointnet", "depth", "normal", "glb"} <= {row["name"] for row in rows}
