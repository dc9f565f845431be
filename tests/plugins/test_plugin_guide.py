"""The plugin author's guide documents every spec field and the commands it tells people to run."""

import dataclasses
import re
from pathlib import Path

from worldgen.specs import GROUP_MODALITIES, ModalitySpec

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugin-guide.md"


def test_every_modality_spec_field_is_documented():
    text = GUIDE.read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE))  # the field table's first column
    fields = {field.name for field in dataclasses.fields(ModalitySpec)}
    assert fields - documented == set(), f"fields missing from the guide's table: {sorted(fields - documented)}"
    assert documented - fields == set(), f"the guide documents fields that do not exist: {sorted(documented - fields)}"


def test_the_guide_names_the_entry_point_group_and_the_training_command():
    text = GUIDE.read_text()
    assert f'[project.entry-points."{GROUP_MODALITIES}"]' in text
    assert "worldgen train --modality" in text and "--base" in text and "--data" in text and "--out" in text


def test_the_guides_pyproject_matches_the_example_package(edges_source):
    """The snippet in the guide is the example's real registration, not a drifting copy."""
    pyproject = (edges_source / "pyproject.toml").read_text()
    for line in ('name = "worldgen-edges"', 'edges = "worldgen_edges:SPEC"', 'packages = ["worldgen_edges"]'):
        assert line in pyproject and line in GUIDE.read_text()
