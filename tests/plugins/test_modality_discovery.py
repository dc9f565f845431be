"""Modality plugins as discovery sees them: built-ins, the example package, malformed ones."""

import warnings
from importlib.metadata import EntryPoint

from worldgen.registry import PluginWarning, Registry
from worldgen.specs import GROUP_MODALITIES

MALFORMED_MODULE = '''
from worldgen.plugins.depth import SPEC as DEPTH
import dataclasses
SPEC = dataclasses.replace(DEPTH, name="broken", channels=0)
'''


def discover(entry_points):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = Registry.discover(entry_points=entry_points)
    return registry, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def test_builtin_modalities_are_installed_with_estimators():
    registry, _ = discover(None)  # what is installed; other groups' warnings are not this test's business
    by_name = {p.name: p for p in registry.plugins(GROUP_MODALITIES)}
    assert by_name["depth"].distribution == by_name["normal"].distribution == "worldgen"
    assert by_name["depth"].spec.summary() == "1 ch, disparity, estimator"
    assert by_name["normal"].spec.summary() == "3 ch, normals, estimator"


def test_malformed_modality_plugins_are_skipped_and_the_rest_still_load(tmp_path, monkeypatch, edges_spec):
    (tmp_path / "worldgen_broken_modality.py").write_text(MALFORMED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry, problems = discover([
        EntryPoint("depth", "worldgen.plugins.depth:SPEC", GROUP_MODALITIES),
        EntryPoint("broken", "worldgen_broken_modality:SPEC", GROUP_MODALITIES),
        EntryPoint("ghost", "worldgen.plugins.depth:NO_SUCH_SPEC", GROUP_MODALITIES),
        EntryPoint("typo", "worldgen_no_such_module:SPEC", GROUP_MODALITIES),
        EntryPoint("edges", "worldgen_edges:SPEC", GROUP_MODALITIES),
    ])
    assert registry.names(GROUP_MODALITIES) == ["depth", "edges"]
    assert registry.modality("edges") is edges_spec
    assert len(problems) == 3
    assert any("'broken'" in p and "channels must be a positive int" in p for p in problems)
    assert any("'ghost'" in p and "failed to import" in p and "NO_SUCH_SPEC" in p for p in problems)
    assert any("'typo'" in p and "failed to import" in p for p in problems)
