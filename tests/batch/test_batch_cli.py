"""`worldgen batch` from the command line, including a real two-process run under torchrun (CPU, gloo)."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from worldgen.cli.main import cli

SMALL = ["--size", "64x16", "--backend", "procedural"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_batch_runs_resumes_and_summarises(tmp_path, write_jobs):
    jobs = write_jobs(tmp_path, [{"prompt": "a misty fjord", "name": "fjord"}, "rolling hills", "a red canyon"])
    out = tmp_path / "worlds"
    result = invoke("batch", jobs, "-o", out, *SMALL)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 jobs: 3 done, 0 skipped, 0 failed;")
    assert "1/3 fjord: done in" in result.stderr
    for name in ("fjord", "rolling-hills-0001", "a-red-canyon-0002"):
        assert (out / name / "scene.json").is_file() and (out / f"{name}.glb").read_bytes()[:4] == b"glTF"
    plan = json.loads((out / ".batch" / "jobs.json").read_text())
    assert [job["name"] for job in plan["jobs"]] == ["fjord", "rolling-hills-0001", "a-red-canyon-0002"]

    again = invoke("batch", jobs, "-o", out, *SMALL, "-q", "--json")
    assert again.exit_code == 0 and again.stderr == ""
    summary = json.loads(again.stdout)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (0, 3, 0)


def test_failed_jobs_are_listed_and_the_exit_code_says_so(tmp_path, write_jobs):
    jobs = write_jobs(tmp_path, ["hills", {"prompt": "plains", "size": "1001x16"}, "a lake"])
    result = invoke("batch", jobs, "-o", tmp_path / "out", *SMALL)
    assert result.exit_code == 1
    assert "3 jobs: 2 done, 0 skipped, 1 failed" in result.stdout
    assert "failed plains-0001 (line 2): size 1001x16: width must be a positive multiple of 8" in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: 1 of 3 jobs did not finish") and "rerun the same command" in last


def test_a_bad_jobs_file_is_one_line_with_its_line_number(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "a"}\n{"prompt": "b", "stpes": 3}\n')
    result = invoke("batch", jobs, "-o", tmp_path / "out", *SMALL)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {jobs}:2: unknown field 'stpes' (did you mean 'steps'?)"
    assert not (tmp_path / "out").exists()


def test_dry_run_checks_every_job_and_writes_nothing(tmp_path, write_jobs):
    jobs = write_jobs(tmp_path, ["hills", {"prompt": "plains", "size": "1001x16"}, {"recipe": "harbour.toml"}])
    result = invoke("batch", jobs, "-o", tmp_path / "out", *SMALL, "--dry-run")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "hills-0000" in lines[0] and "absent" in lines[0]
    assert "plains-0001" in lines[1] and "invalid" in lines[1] and "multiple of 8" in lines[1]
    assert "harbour-0002" in lines[2] and "invalid" in lines[2]
    assert lines[3] == "3 jobs, 2 with problems; nothing was generated (--dry-run)"
    assert not (tmp_path / "out").exists()


def test_a_batch_job_makes_the_same_world_as_pano(tmp_path, write_jobs, world_files):
    pano = invoke("pano", "a misty fjord at dawn", "--seed", "7", "-o", tmp_path / "pano" / "fjord.glb", *SMALL, "-q")
    assert pano.exit_code == 0, pano.output
    jobs = write_jobs(tmp_path, [{"prompt": "a misty fjord at dawn", "seed": 7, "name": "fjord"}])
    batch = invoke("batch", jobs, "-o", tmp_path / "batch", *SMALL, "-q")
    assert batch.exit_code == 0, batch.output
    from_pano, from_batch = world_files(tmp_path / "pano"), world_files(tmp_path / "batch")
    assert sorted(from_pano) == sorted(from_batch) and len(from_pano) == 6
    assert [name for name in from_pano if from_pano[name] != from_batch[name]] == []


@pytest.mark.slow  # two fresh Python processes importing torch: several seconds
def test_two_processes_under_torchrun_make_the_same_worlds_as_one(tmp_path, write_jobs, world_files):
    jobs = write_jobs(tmp_path, ["a misty fjord", "rolling hills", "a canyon", {"prompt": "x", "size": "1001x16"},
                                 "a lake"])
    one = invoke("batch", jobs, "-o", tmp_path / "one", *SMALL, "-q")
    assert one.exit_code == 1  # the bad job
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "worldgen.cli.main", "batch", str(jobs), "-o", str(tmp_path / "two"), *SMALL, "--json"],
                         capture_output=True, text=True, env=env, timeout=120)
    summary = json.loads(two.stdout)  # rank 0 alone prints it
    assert (summary["world"], summary["done"], summary["failed"], summary["missing"]) == (2, 4, 1, 0)
    assert [r["jobs"] for r in summary["ranks"]] == [3, 2]
    assert "[rank 1/2]" in two.stderr and "[rank 0/2]" in two.stderr
    first, second = world_files(tmp_path / "one"), world_files(tmp_path / "two")
    assert len(first) == 4 * 6 and sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
