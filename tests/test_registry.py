import warnings
from dataclasses import dataclass

import pytest

from worldgen.registry import PluginWarning, Registry
from worldgen.specs import GROUP_EXPORTERS, GROUP_MODALITIES, ExporterSpec, ModalitySpec


def _identity(x):
    return x


GOOD_MODALITY = ModalitySpec(name="thermal", channels=1, value_range=(0.0, 1.0), meaning="temperature",
                             geometry="none", encode=_identity, decode=_identity, preview=_identity)
GOOD_EXPORTER = ExporterSpec(name="obj", extension=".obj", description="Wavefront", export=lambda s, o: b"")


@dataclass
class FakeDist:
    name: str
    version: str = "1.0"


class FakeEntryPoint:
    def __init__(self, group, name, value, dist="thirdparty"):
        self.group, self.name, self._value, self.dist = group, name, value, FakeDist(dist)

    def load(self):
        if isinstance(self._value, Exception):
            raise self._value
        return self._value


def discover(*eps):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = Registry.discover(entry_points=list(eps))
    return registry, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def test_valid_plugins_are_registered_with_their_distribution():
    registry, problems = discover(FakeEntryPoint(GROUP_MODALITIES, "thermal", GOOD_MODALITY, "worldgen-thermal"),
                                  FakeEntryPoint(GROUP_EXPORTERS, "obj", GOOD_EXPORTER))
    assert problems == []
    assert registry.modality("thermal") is GOOD_MODALITY
    [plugin] = registry.plugins(GROUP_MODALITIES)
    assert (plugin.distribution, plugin.version) == ("worldgen-thermal", "1.0")


@pytest.mark.parametrize("value, why", [
    (object(), "not ModalitySpec"),
    (ImportError("no module named thermalcore"), "failed to import"),
    (ModalitySpec(name="Bad Name", channels=1, value_range=(0, 1), meaning="", geometry="none",
                  encode=_identity, decode=_identity, preview=_identity), "lower-case identifier"),
    (ModalitySpec(name="hot", channels=1, value_range=(1, 0), meaning="", geometry="none",
                  encode=_identity, decode=_identity, preview=_identity), "value_range"),
    (ModalitySpec(name="hot", channels=1, value_range=(0, 1), meaning="", geometry="volume",
                  encode=_identity, decode=_identity, preview=_identity), "geometry must be"),
    (ModalitySpec(name="hot", channels=1, value_range=(0, 1), meaning="", geometry="none",
                  encode="not callable", decode=_identity, preview=_identity), "callable"),
])
def test_malformed_plugins_are_skipped_with_a_warning_naming_the_distribution(value, why):
    registry, problems = discover(FakeEntryPoint(GROUP_MODALITIES, "thermal", value, "worldgen-thermal"),
                                  FakeEntryPoint(GROUP_EXPORTERS, "obj", GOOD_EXPORTER))
    assert registry.names(GROUP_MODALITIES) == []
    assert registry.names(GROUP_EXPORTERS) == ["obj"]  # one bad plugin never stops the others
    assert len(problems) == 1 and "worldgen-thermal" in problems[0] and why in problems[0]


def test_duplicate_names_keep_the_first_and_builtins_win():
    intruder = ModalitySpec(name="thermal", channels=3, value_range=(0, 1), meaning="", geometry="none",
                            encode=_identity, decode=_identity, preview=_identity)
    registry, problems = discover(FakeEntryPoint(GROUP_MODALITIES, "thermal", intruder, "evil-plugin"),
                                  FakeEntryPoint(GROUP_MODALITIES, "thermal", GOOD_MODALITY, "worldgen"))
    assert registry.modality("thermal") is GOOD_MODALITY
    assert len(problems) == 1 and "evil-plugin" in problems[0] and "already provided by worldgen" in problems[0]


def test_allowlist_restricts_third_party_plugins_only(monkeypatch):
    monkeypatch.setenv("WORLDGEN_PLUGINS", "worldgen-thermal")
    other = ExporterSpec(name="usd", extension=".usd", description="", export=lambda s, o: b"")
    builtin = ExporterSpec(name="glb2", extension=".glb", description="", export=lambda s, o: b"")
    registry, problems = discover(FakeEntryPoint(GROUP_MODALITIES, "thermal", GOOD_MODALITY, "worldgen-thermal"),
                                  FakeEntryPoint(GROUP_EXPORTERS, "usd", other, "usd-exporter"),
                                  FakeEntryPoint(GROUP_EXPORTERS, "glb2", builtin, "worldgen"))
    assert registry.names(GROUP_MODALITIES) == ["thermal"]
    assert registry.names(GROUP_EXPORTERS) == ["glb2"]
    assert problems == []


def test_allowlist_also_matches_plugin_names(monkeypatch):
    monkeypatch.setenv("WORLDGEN_PLUGINS", "thermal")
    registry, _ = discover(FakeEntryPoint(GROUP_MODALITIES, "thermal", GOOD_MODALITY, "worldgen-thermal"),
                           FakeEntryPoint(GROUP_EXPORTERS, "obj", GOOD_EXPORTER, "obj-exporter"))
    assert registry.names(GROUP_MODALITIES) == ["thermal"] and registry.names(GROUP_EXPORTERS) == []


def test_dev_plugins_register_without_installing(monkeypatch):
    monkeypatch.setenv("WORLDGEN_DEV_PLUGINS", f"{__name__}:GOOD_MODALITY")
    registry, problems = discover()
    assert registry.modality("thermal") is GOOD_MODALITY and problems == []


def test_unknown_name_error_lists_what_is_installed():
    registry, _ = discover(FakeEntryPoint(GROUP_EXPORTERS, "obj", GOOD_EXPORTER))
    from worldgen.errors import PluginError

    with pytest.raises(PluginError, match=r"unknown exporter 'fbx'; installed: obj"):
        registry.exporter("fbx")


def test_builtins_come_from_worldgens_own_entry_points():
    registry = Registry.discover()
    procedural = [p for p in registry.plugins() if p.name == "procedural"]
    assert procedural and procedural[0].distribution == "worldgen"


def test_unknown_modality_error_reads_well():
    registry, _ = discover(FakeEntryPoint(GROUP_MODALITIES, "thermal", GOOD_MODALITY))
    from worldgen.errors import PluginError

    with pytest.raises(PluginError, match=r"^unknown modality 'x'; installed: thermal"):
        registry.modality("x")
