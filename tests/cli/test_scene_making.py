"""Issue 25: every new scene gets its GLB, every version records what really made it (backend and
provenance), `pano --from` replays a version, `build` skips a hidden placement unless --strict, and
`batch --shard I/N` splits a JOBS file over separate launches."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from worldgen.cli.main import cli


def ok(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def record(scene: Path, version: int = -1) -> dict:
    return json.loads((scene / "scene.json").read_text())["versions"][version]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty model store of this test's own."""
    monkeypatch.setenv("WORLDGEN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_procedural_version_records_provenance_and_replays_to_the_same_image(tmp_path):
    ok("pano", "a calm lake at dusk", "--backend", "procedural", "--size", "128x32", "--seed", "5",
       "-o", tmp_path / "a.glb", "-q")
    provenance = record(tmp_path / "a")["provenance"]
    assert provenance["backend"] == "procedural" and provenance["device"] == "cpu"
    assert provenance["software"]["worldgen"] and provenance["software"]["torch"]
    assert "diffusers" in provenance["software"]
    out = json.loads(ok("pano", "--from", f"{tmp_path / 'a'}@v1", "-o", tmp_path / "b.glb", "--json", "-q").output)
    assert out["scene"] == str(tmp_path / "b") and (tmp_path / "b.glb").is_file()
    a, b = record(tmp_path / "a"), record(tmp_path / "b")
    assert (a["prompt"], a["seed"], a["size"]) == (b["prompt"], b["seed"], b["size"])
    assert (tmp_path / "a/v1/image.png").read_bytes() == (tmp_path / "b/v1/image.png").read_bytes()
    assert np.array_equal(np.load(tmp_path / "a/v1/depth.npy"), np.load(tmp_path / "b/v1/depth.npy"))


def test_replay_refuses_a_version_not_made_by_pano(tmp_path):
    ok("pano", "a lake", "--backend", "procedural", "--size", "128x32", "-o", tmp_path / "a.glb", "-q")
    ok("place", tmp_path / "a", "a hut", "--azimuth", "0", "--distance", "12", "--width", "4", "--height", "3",
       "--backend", "procedural", "-q")
    result = CliRunner().invoke(cli, ["pano", "--from", f"{tmp_path / 'a'}@v2", "-o", str(tmp_path / "c.glb")])
    assert result.exit_code == 1 and "place" in result.output
    assert CliRunner().invoke(cli, ["pano", "--from", f"{tmp_path / 'a'}@vx"]).exit_code == 1


def test_tiny_jointnet_records_registered_name_hashes_and_replays_on_cpu(tmp_path, store, tiny_checkpoint):
    from worldgen.backends.jointnet.weights import weight_hashes

    ok("models", "add", tiny_checkpoint, "--name", "tinyjn", "--no-convert", "--license", "apache-2.0", "-q")
    listing = json.loads(ok("models", "list", "--json").output)["models"][0]
    assert listing["license"] == "apache-2.0" and listing["weights_sha256"] == weight_hashes(tiny_checkpoint)
    ok("pano", "a misty fjord", "--model", "tinyjn", "--device", "cpu", "--size", "64x16", "--steps", "2",
       "--seed", "3", "-o", tmp_path / "j.glb", "-q")
    version = record(tmp_path / "j")
    assert version["backend"]["name"] == "jointnet" and version["backend"]["settings"]["model"] == "tinyjn"
    assert str(tiny_checkpoint) not in json.dumps(version["backend"])  # by name, not this machine's path
    provenance = version["provenance"]
    assert provenance["device"] == "cpu" and provenance["dtype"] == "float32" and provenance["scheduler"] == "ddim"
    assert provenance["window_batch"] == "auto"
    assert provenance["weights"]["model"] == "tinyjn"
    assert provenance["weights"]["sha256"] == weight_hashes(tiny_checkpoint)
    assert provenance["software"]["diffusers"]
    ok("pano", "--from", tmp_path / "j", "-o", tmp_path / "r.glb", "--device", "cpu", "-q")
    first = np.asarray(Image.open(tmp_path / "j/v1/image.png"))
    again = np.asarray(Image.open(tmp_path / "r/v1/image.png"))
    assert np.array_equal(first, again)
    assert np.array_equal(np.load(tmp_path / "j/v1/depth.npy"), np.load(tmp_path / "r/v1/depth.npy"))


def test_placeholder_placement_on_a_jointnet_scene_records_procedural(tmp_path, tiny_checkpoint):
    ok("pano", "a meadow", "--model", tiny_checkpoint, "--device", "cpu", "--size", "64x16", "--steps", "1",
       "-o", tmp_path / "m.glb", "-q")
    out = json.loads(ok("place", tmp_path / "m", "a hut", "--azimuth", "0", "--distance", "5", "--width", "3",
                        "--no-occlude", "--backend", "procedural", "--json", "-q").output)  # tiny depth is noise
    assert out["backend"] == "procedural" and out["version"] == 2
    assert record(tmp_path / "m")["backend"]["name"] == "procedural"
    assert record(tmp_path / "m", 0)["backend"]["name"] == "jointnet"


def test_a_scene_made_from_an_outside_file_gets_its_glb(tmp_path, tiny_checkpoint):
    Image.fromarray(np.full((16, 64, 3), 120, np.uint8)).save(tmp_path / "pano.png")
    out = json.loads(ok("depth", tmp_path / "pano.png", "-o", tmp_path / "est", "--model", tiny_checkpoint,
                        "--device", "cpu", "--steps", "1", "--json", "-q").output)
    assert out["glb"] == str(tmp_path / "est.glb") and (tmp_path / "est.glb").stat().st_size > 0
    assert (tmp_path / "est" / "scene.json").is_file()


RECIPE = """
name = "hidden-test"
prompt = "a green meadow on the shore of a calm lake, forest and hills beyond"
seed = 77
size = "256x64"

[backend]
name = "procedural"

[[place]]
prompt = "a hut"
azimuth = 0
distance = 12
width = 4
height = 3

[[place]]
prompt = "a far tower"
azimuth = 270
distance = 200
width = 20
height = 10
"""


def test_build_skips_and_reports_a_hidden_placement_unless_strict(tmp_path):
    recipe = tmp_path / "hidden.toml"
    recipe.write_text(RECIPE)
    out = json.loads(ok("build", recipe, "-o", tmp_path / "h.glb", "--json", "-q").output)
    assert len(out["skipped"]) == 1 and "far tower" in out["skipped"][0]
    assert out["version"] == 2  # the generation and the one visible placement
    strict = CliRunner().invoke(cli, ["build", str(recipe), "-o", str(tmp_path / "s.glb"), "--strict", "-q"])
    assert strict.exit_code == 1 and "place[2]" in strict.output and "hidden" in strict.output
    assert not (tmp_path / "s").exists()


def test_batch_shards_split_the_jobs_and_overlapping_shards_resume_safely(tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"a lake number {k}\n" for k in range(5)))
    out = tmp_path / "out"
    made = []
    for index in range(2):
        summary = json.loads(ok("batch", jobs, "-o", out, "--backend", "procedural", "--size", "64x16",
                                "--shard", f"{index}/2", "--json", "-q").output)
        assert summary["failed"] == 0 and summary["missing"] == 0
        made.append(summary["done"])
        assert (out / ".batch" / f"summary-shard-{index}-of-2.json").is_file()
    assert made == [3, 2]  # jobs 0, 2, 4 and jobs 1, 3
    assert len(list(out.glob("*.glb"))) == 5
    again = json.loads(ok("batch", jobs, "-o", out, "--backend", "procedural", "--size", "64x16",
                          "--shard", "1/3", "--json", "-q").output)
    assert again["skipped"] == 2 and again["done"] == 0  # another split over the same OUT: nothing rebuilt
    bad = CliRunner().invoke(cli, ["batch", str(jobs), "-o", str(out), "--shard", "2/2"])
    assert bad.exit_code == 1 and "0 <= I < N" in bad.output
