"""Running a batch: world-size independence, resuming, failure isolation, the summary."""

import importlib.machinery
import json
import sys
import types

import pytest

from worldgen.batch import existing_world, run_batch, run_shard, summarize
from worldgen.scene.store import Scene

PROMPTS = ["a misty fjord at dawn", "rolling green hills", "a red desert canyon", "snowy mountains at night",
           "a lake in autumn"]


def read_summary(out):
    return json.loads((out / ".batch" / "summary.json").read_text())


def test_one_process_makes_every_world_with_scene_and_glb(tmp_path, small_jobs, maker):
    jobs = small_jobs(PROMPTS)
    summary = run_batch(jobs, tmp_path / "out", maker())
    assert (summary["done"], summary["skipped"], summary["failed"], summary["missing"]) == (5, 0, 0, 0)
    assert summary == read_summary(tmp_path / "out")
    for job in jobs:
        scene = Scene.open(tmp_path / "out" / job.name)
        record = scene.record(1)
        assert (record["prompt"], record["seed"], record["size"], record["operation"]) == (job.prompt, job.seed, [64, 16], "pano")
        assert scene.load().image.shape == (16, 64, 3)
        assert (tmp_path / "out" / f"{job.name}.glb").read_bytes()[:4] == b"glTF"
    assert summary["seconds_per_world"]["count"] == 5 and summary["seconds_per_world"]["mean"] > 0
    assert summary["worlds_per_minute"] > 0
    assert not list((tmp_path / "out" / ".batch" / "tmp").iterdir())  # staging cleaned up


@pytest.mark.parametrize("world", [2, 3])
def test_the_worlds_do_not_depend_on_the_number_of_processes(tmp_path, small_jobs, maker, world_files, world):
    jobs = small_jobs(PROMPTS + ["a second fjord", "a misty fjord at dawn"])
    run_batch(jobs, tmp_path / "one", maker())
    # The ranks of a `world`-process run, one after another in this process (each its own maker,
    # as each GPU process has its own backend), then rank 0's summary.
    for rank in range(world):
        run_shard(jobs, tmp_path / "many", maker(), rank=rank, world=world)
    summary = summarize(jobs, tmp_path / "many", world)
    assert (summary["done"], summary["world"]) == (len(jobs), world)
    one, many = world_files(tmp_path / "one"), world_files(tmp_path / "many")
    per_world = {"{}.glb", "{}/scene.json", "{}/v1/image.png", "{}/v1/depth.npy", "{}/v1/depth.png",
                 "{}/v1/depth_preview.png"}
    assert set(one) == {pattern.format(job.name) for job in jobs for pattern in per_world}
    assert sorted(one) == sorted(many)
    assert [name for name in one if one[name] != many[name]] == []
    # Two jobs with the same prompt are different worlds: their seeds differ.
    same_prompt = [job for job in jobs if job.prompt == "a misty fjord at dawn"]
    assert one[f"{same_prompt[0].name}/v1/image.png"] != one[f"{same_prompt[1].name}/v1/image.png"]
    ranks = {json.loads((tmp_path / "many" / ".batch" / "status" / f"{job.name}.json").read_text())["rank"]
             for job in jobs}
    assert ranks == set(range(world))


def test_a_restart_skips_finished_worlds(tmp_path, small_jobs, maker, count_generate):
    jobs = small_jobs(PROMPTS)
    out = tmp_path / "out"
    run_batch(jobs, out, maker())
    assert len(count_generate) == 5
    glb = out / f"{jobs[0].name}.glb"
    before = glb.stat().st_mtime_ns

    idle = maker()
    summary = run_batch(jobs, out, idle)
    assert len(count_generate) == 5  # nothing generated again
    assert not idle.loaded and summary["ranks"][0]["load_seconds"] == 0  # no model even loaded
    assert (summary["done"], summary["skipped"]) == (0, 5)
    assert glb.stat().st_mtime_ns == before

    # A world that was deleted is made again, and only that one.
    import shutil

    shutil.rmtree(out / jobs[3].name)
    (out / f"{jobs[3].name}.glb").unlink()
    summary = run_batch(jobs, out, maker())
    assert count_generate[5:] == [jobs[3].prompt]
    assert (summary["done"], summary["skipped"]) == (1, 4)


def test_a_run_killed_mid_job_resumes_without_half_worlds(tmp_path, small_jobs, maker, count_generate):
    jobs = small_jobs(PROMPTS)
    out = tmp_path / "out"
    real = maker()

    def dies_on_the_third(job, scene_dir, glb):
        real(job, scene_dir, glb)  # the world is fully written in staging...
        if job.index == 2:
            raise KeyboardInterrupt  # ...and the process is killed before it is moved into place

    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, out, dies_on_the_third)
    assert [existing_world(out, job)[0] for job in jobs] == ["complete", "complete", "absent", "absent", "absent"]
    assert not (out / jobs[2].name).exists() and not (out / f"{jobs[2].name}.glb").exists()

    summary = run_batch(jobs, out, maker())
    assert count_generate[3:] == [job.prompt for job in jobs[2:]]
    assert (summary["done"], summary["skipped"], summary["failed"]) == (3, 2, 0)
    assert not list((out / ".batch" / "tmp").iterdir())


def test_a_glb_without_its_scene_is_regenerated(tmp_path, small_jobs, maker, count_generate):
    # What a crash between moving the GLB and moving the scene folder leaves behind.
    jobs = small_jobs(PROMPTS[:2])
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{jobs[1].name}.glb").write_bytes(b"stale")
    summary = run_batch(jobs, out, maker())
    assert summary["done"] == 2
    assert (out / f"{jobs[1].name}.glb").read_bytes()[:4] == b"glTF"


def test_a_failing_job_does_not_stop_the_others(tmp_path, small_jobs, maker, monkeypatch):
    from worldgen.backends.procedural import ProceduralBackend

    original = ProceduralBackend.generate

    def flaky(self, request, progress=None):
        if "canyon" in request.prompt:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return original(self, request, progress)

    monkeypatch.setattr(ProceduralBackend, "generate", flaky)
    jobs = small_jobs(PROMPTS[:2] + [{"prompt": "wide plains", "size": "1001x16"}] + PROMPTS[2:])
    summary = run_batch(jobs, tmp_path / "out", maker())
    assert (summary["done"], summary["failed"], summary["jobs"]) == (4, 2, 6)
    reasons = {f["name"]: f["reason"] for f in summary["failures"]}
    assert reasons == {
        "wide-plains-0002": "size 1001x16: width must be a positive multiple of 8 (e.g. 2048x512)",
        "a-red-desert-canyon-0003": "RuntimeError: CUDA error: an illegal memory access was encountered",
    }
    assert [f["line"] for f in summary["failures"]] == [3, 4]
    status = json.loads((tmp_path / "out" / ".batch" / "status" / "a-red-desert-canyon-0003.json").read_text())
    assert status["status"] == "failed" and "flaky" in status["traceback"]  # where it broke, for the developer
    for name in reasons:
        assert not (tmp_path / "out" / name).exists() and not (tmp_path / "out" / f"{name}.glb").exists()
    # The failed ones are retried by the next run; the finished ones are not.
    monkeypatch.setattr(ProceduralBackend, "generate", original)
    again = run_batch(jobs, tmp_path / "out", maker())
    assert (again["done"], again["skipped"], again["failed"]) == (1, 4, 1)


def test_an_existing_different_world_under_the_same_name_is_never_overwritten(tmp_path, small_jobs, maker):
    out = tmp_path / "out"
    run_batch(small_jobs([{"prompt": "a misty fjord", "name": "w"}, "hills"]), out, maker())
    manifest_before = (out / "w" / "scene.json").read_bytes()
    jobs = small_jobs([{"prompt": "a volcano", "name": "w"}, "hills"])
    summary = run_batch(jobs, out, maker())
    assert (summary["failed"], summary["skipped"]) == (1, 1)
    (failure,) = summary["failures"]
    assert failure["name"] == "w" and "holds another world (prompt differ" in failure["reason"]
    assert "rename the job or delete the folder" in failure["reason"]
    assert (out / "w" / "scene.json").read_bytes() == manifest_before
    # The batch seed is part of a world too.
    reseeded = run_batch(small_jobs(["hills"], batch_seed=1), tmp_path / "out2", maker())
    assert reseeded["done"] == 1


def test_a_damaged_scene_is_reported_not_replaced(tmp_path, small_jobs, maker):
    jobs = small_jobs(PROMPTS[:2])
    out = tmp_path / "out"
    run_batch(jobs, out, maker())
    (out / f"{jobs[0].name}.glb").unlink()
    (out / jobs[1].name / "scene.json").write_text("{not json")
    summary = run_batch(jobs, out, maker())
    reasons = [f["reason"] for f in summary["failures"]]
    assert "is missing beside the scene" in reasons[0] and f"delete {out / jobs[0].name}" in reasons[0]
    assert "is not valid JSON" in reasons[1]
    assert (out / jobs[1].name / "scene.json").read_text() == "{not json"


def test_a_rank_that_never_ran_shows_its_jobs_as_missing(tmp_path, small_jobs, maker):
    jobs = small_jobs(PROMPTS)
    run_shard(jobs, tmp_path / "out", maker(), rank=0, world=2)
    summary = summarize(jobs, tmp_path / "out", 2)
    assert (summary["done"], summary["missing"]) == (3, 2)
    assert summary["missing_jobs"] == [jobs[1].name, jobs[3].name]
    assert summary["ranks"][1] == {"rank": 1, "missing": True}


def test_stale_statuses_of_an_earlier_run_are_not_reported_as_this_runs(tmp_path, small_jobs, maker):
    jobs = small_jobs(PROMPTS[:2] + [{"prompt": "x", "size": "1001x16"}])
    out = tmp_path / "out"
    assert run_batch(jobs, out, maker())["failed"] == 1
    # Fixed file, new run: the old failure status is gone once its rank starts.
    fixed = small_jobs(PROMPTS[:2] + [{"prompt": "x", "size": "64x16"}])
    summary = run_batch(fixed, out, maker())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 2, 0)


def test_recipe_jobs_without_worldgen_build_fail_alone_with_the_reason(tmp_path, small_jobs, maker, monkeypatch):
    # As in a worldgen without `worldgen build` (whether or not this checkout has it yet).
    monkeypatch.setattr("worldgen.batch.maker.RECIPES_MODULE", "worldgen.no_such_recipes_module")
    jobs = small_jobs(["hills", {"recipe": "harbour.toml"}])
    summary = run_batch(jobs, tmp_path / "out", maker())
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert summary["failures"][0]["reason"].startswith("recipe jobs need `worldgen build`, not available in this version")


def test_recipe_jobs_go_through_the_recipe_hook(tmp_path, small_jobs, maker, monkeypatch):
    made = maker()
    calls = []

    def build_for_batch(recipe, scene_dir, glb, *, seed, settings):
        calls.append((recipe.name, seed, scene_dir.name, glb.name))
        # Stand in for `worldgen build`: any complete world will do here.
        made(small_jobs(["a harbour"], folder=tmp_path / "r")[0], scene_dir, glb)

    module = types.ModuleType("worldgen.recipes")
    module.__spec__ = importlib.machinery.ModuleSpec("worldgen.recipes", None)
    module.build_for_batch = build_for_batch
    monkeypatch.setitem(sys.modules, "worldgen.recipes", module)
    (tmp_path / "r").mkdir()
    jobs = small_jobs([{"recipe": "harbour.toml", "seed": 11, "name": "harbour"}])
    summary = run_batch(jobs, tmp_path / "out", made)
    assert summary["done"] == 1
    assert calls == [("harbour.toml", 11, "harbour", "harbour.glb")]
    assert existing_world(tmp_path / "out", jobs[0]) == ("complete", None)
    # Restarting skips it like any other finished world.
    assert run_batch(jobs, tmp_path / "out", made)["skipped"] == 1 and len(calls) == 1
