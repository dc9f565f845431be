"""JOBS files: formats, deterministic names and seeds, and one-line errors that name the line."""

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worldgen.batch import JobDefaults, derive_seed, load_jobs, parse_jobs, shard
from worldgen.errors import UserInputError


def test_jsonl_objects_and_bare_strings(tmp_path, write_jobs):
    path = write_jobs(tmp_path, [
        {"prompt": "A misty fjord at dawn!", "seed": 7, "size": "1024x256", "steps": 3, "name": "fjord"},
        "",
        "# a comment line",
        '"rolling green hills"',
        {"prompt": "a desert", "size": [512, 128], "guidance": 5, "negative": "people", "span": 180},
    ], raw=True)
    jobs = load_jobs(path, JobDefaults(steps=9))
    assert [j.name for j in jobs] == ["fjord", "rolling-green-hills-0001", "a-desert-0002"]
    assert [j.line for j in jobs] == [1, 4, 5]
    assert [j.index for j in jobs] == [0, 1, 2]
    fjord, hills, desert = jobs
    assert (fjord.seed, fjord.width, fjord.height, fjord.steps) == (7, 1024, 256, 3)
    assert (hills.width, hills.height, hills.steps) == (2048, 512, 9)  # defaults fill the rest
    assert (desert.width, desert.height, desert.guidance, desert.negative, desert.span_deg) == (512, 128, 5.0, "people", 180.0)
    assert desert.request().negative_prompt == "people"


def test_toml_tables_and_text_files_give_the_same_jobs_as_jsonl(tmp_path, write_jobs):
    toml = tmp_path / "jobs.toml"
    toml.write_text('# worlds\n[[job]]\nprompt = "a misty fjord"\nseed = 3\n\n[[job]]\nprompt = "hills"\nsize = "256x64"\n')
    text = tmp_path / "jobs.txt"
    text.write_text("a misty fjord\n\n# skip me\nhills\n")
    jsonl = write_jobs(tmp_path, [{"prompt": "a misty fjord", "seed": 3}, {"prompt": "hills", "size": "256x64"}])
    from_toml, from_jsonl = load_jobs(toml), load_jobs(jsonl)
    assert [j.line for j in from_toml] == [2, 6]
    strip = lambda jobs: [(j.name, j.seed, j.prompt, j.width, j.height) for j in jobs]
    assert strip(from_toml) == strip(from_jsonl)
    from_text = load_jobs(text)
    assert [j.prompt for j in from_text] == ["a misty fjord", "hills"] and [j.line for j in from_text] == [1, 4]


def test_seeds_come_from_the_batch_seed_and_the_name_only():
    text = '"a"\n"b"\n{"prompt": "c", "name": "cee"}\n'
    jobs = parse_jobs(text, "jsonl", batch_seed=5)
    assert [j.seed for j in jobs] == [derive_seed(5, j.name) for j in jobs]
    assert len({j.seed for j in jobs}) == 3
    again = parse_jobs(text, "jsonl", batch_seed=5)
    assert [j.seed for j in again] == [j.seed for j in jobs]
    other = parse_jobs(text, "jsonl", batch_seed=6)
    assert all(a.seed != b.seed for a, b in zip(jobs, other))
    # A named job keeps its seed wherever it moves in the file.
    moved = parse_jobs('"x"\n"y"\n{"prompt": "c", "name": "cee"}\n"z"\n', "jsonl", batch_seed=5)
    assert moved[2].seed == jobs[2].seed
    assert all(0 <= j.seed < 2**31 for j in jobs)


def test_recipe_jobs_resolve_their_path_next_to_the_jobs_file(tmp_path):
    path = tmp_path / "jobs.toml"
    path.write_text('[[job]]\nrecipe = "scenes/harbour.toml"\nseed = 4\n')
    (job,) = load_jobs(path)
    assert job.recipe == tmp_path / "scenes" / "harbour.toml"
    assert (job.name, job.seed, job.prompt) == ("harbour-0000", 4, None)


@pytest.mark.parametrize("name, content, message", [
    ("jobs.jsonl", '{"prompt": "a"}\n{"prompt": "b",}\n', "jobs.jsonl:2: not valid JSON"),
    ("jobs.jsonl", '{"prompt": "a"}\n\n[1, 2]\n', "jobs.jsonl:3: a job must be an object"),
    ("jobs.jsonl", '{"prompt": "a", "negative_prompt": "x"}\n', "jobs.jsonl:1: unknown field 'negative_prompt' (did you mean 'negative'?)"),
    ("jobs.jsonl", '{"prompt": "a", "colour": 3}\n', "jobs.jsonl:1: unknown field 'colour'; known fields"),
    ("jobs.jsonl", '{"seed": 3}\n', "jobs.jsonl:1: a job needs exactly one of \"prompt\" and \"recipe\""),
    ("jobs.jsonl", '{"prompt": "a", "recipe": "r.toml"}\n', "exactly one of"),
    ("jobs.jsonl", '"a"\n{"prompt": "b", "seed": -1}\n', "jobs.jsonl:2: seed -1 must be a whole number"),
    ("jobs.jsonl", '{"prompt": "b", "seed": true}\n', "jobs.jsonl:1: seed True must be a whole number"),
    ("jobs.jsonl", '{"prompt": "b", "size": "big"}\n', "jobs.jsonl:1: size 'big' is not WIDTHxHEIGHT"),
    ("jobs.jsonl", '{"prompt": 3}\n', "jobs.jsonl:1: prompt must be a string"),
    ("jobs.jsonl", '{"prompt": "a", "name": "../up"}\n', "jobs.jsonl:1: name '../up' must be"),
    ("jobs.jsonl", '{"prompt": "a", "name": ".batch"}\n', "name '.batch' must be"),
    ("jobs.jsonl", '{"prompt": "a", "name": "w"}\n"b"\n{"prompt": "c", "name": "W"}\n',
     "jobs.jsonl:3: job name 'W' is already used on line 1"),
    ("jobs.jsonl", '{"recipe": "r.toml", "size": "64x16"}\n', "jobs.jsonl:1: recipe jobs take only name, seed and recipe"),
    ("jobs.jsonl", "\n# nothing\n", "lists no jobs"),
    ("jobs.toml", '[[job]]\nprompt = "a"\nspan = 1979-05-27\n', "jobs.toml:1: span 1979-05-27 must be a finite number"),
    ("jobs.toml", '[[job]]\nprompt = "a\n', "jobs.toml: not valid TOML"),
    ("jobs.toml", 'seed = 3\n[[job]]\nprompt = "a"\n', "unknown top-level key 'seed'"),
    ("jobs.csv", 'a\n', "JOBS must be .jsonl"),
])
def test_bad_jobs_files_give_one_line_errors_with_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserInputError) as info:
        load_jobs(path)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith(str(path)) or name == "jobs.csv"


def test_a_missing_jobs_file_is_named(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_jobs(tmp_path / "nope.jsonl")


def test_values_are_checked_per_job_not_per_file():
    # A bad size is a property of one job: the file loads, and that job's request names the fault.
    jobs = parse_jobs('"a"\n{"prompt": "b", "size": "1001x64"}\n', "jsonl")
    jobs[0].request()
    with pytest.raises(UserInputError, match="multiple of 8"):
        jobs[1].request()
    # So is a value of the wrong type: the request model refuses it, with the line the server gives.
    jobs = parse_jobs('"a"\n{"prompt": "b", "steps": 2.5}\n{"prompt": "c", "guidance": "7"}\n', "jsonl")
    jobs[0].request()
    with pytest.raises(UserInputError, match="^steps 2.5 must be a whole number between 1 and 1000$"):
        jobs[1].request()
    with pytest.raises(UserInputError, match="^guidance '7' must be a finite number"):
        jobs[2].request()


# Sharding ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("world", range(1, 9))
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 23])
def test_every_job_runs_exactly_once_for_1_to_8_ranks(world, count):
    jobs = parse_jobs("".join(f'"prompt {i}"\n' for i in range(count)), "jsonl") if count else []
    shards = [shard(jobs, rank, world) for rank in range(world)]
    names = [job.name for part in shards for job in part]
    assert sorted(names) == sorted(job.name for job in jobs)
    assert len(names) == len(set(names))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # round robin: balanced
    for rank, part in enumerate(shards):
        assert all(job.index % world == rank for job in part)
        assert [job.index for job in part] == sorted(job.index for job in part)


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 40), world=st.integers(1, 8), order_seed=st.integers(0, 2**16))
def test_shards_do_not_depend_on_the_order_jobs_are_given_in(count, world, order_seed):
    jobs = parse_jobs("".join(f'"p{i}"\n' for i in range(count)), "jsonl") if count else []
    shuffled = list(jobs)
    random.Random(order_seed).shuffle(shuffled)
    for rank in range(world):
        assert shard(shuffled, rank, world) == shard(jobs, rank, world)


@pytest.mark.parametrize("rank, world", [(2, 2), (-1, 2), (0, 0)])
def test_an_impossible_shard_is_refused(rank, world):
    with pytest.raises(UserInputError, match="not a valid shard"):
        shard([], rank, world)
