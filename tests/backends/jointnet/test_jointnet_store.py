"""The model store: registration, safe zip unpacking, default, and model resolution."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from worldgen.backends.jointnet.store import (ModelStore, base_for, default_model, resolve, resolve_model,
                                              store_root)
from worldgen.errors import ModelError, UserInputError


def test_store_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("WORLDGEN_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert store_root() == tmp_path / "h" / ".local" / "share" / "worldgen"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert store_root() == tmp_path / "xdg" / "worldgen"
    monkeypatch.setenv("WORLDGEN_HOME", str(tmp_path / "wg"))
    assert store_root() == tmp_path / "wg"


def _zip_folder(folder: Path, archive: Path, top: str = "rgbd_finetune_sd21b") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return archive


def test_add_folder_list_default_remove(store_home, tiny_checkpoint, fixture_dir):
    store = ModelStore()
    assert default_model() is None and store.entries() == []
    entry = store.add(tiny_checkpoint, "tiny", make_default=True)
    assert entry.path == str(tiny_checkpoint.resolve()) and not entry.managed and entry.modality == "depth"
    store.add(fixture_dir / "model_inpaint", "inp", base=fixture_dir / "base", modality="normal")
    assert [e.name for e in store.entries()] == ["inp", "tiny"]
    assert default_model().name == "tiny"
    inp = store.get("inp")
    assert inp.inpaint and inp.modality == "normal" and inp.base_dir == (fixture_dir / "base").resolve()
    index = json.loads((store_home / "models.json").read_text())
    assert index["default"] == "tiny" and set(index["models"]) == {"inp", "tiny"}
    with pytest.raises(UserInputError, match="already registered"):
        store.add(tiny_checkpoint, "tiny")
    store.remove("tiny")
    assert default_model() is None and tiny_checkpoint.is_dir()  # a folder registered in place stays


def test_add_zip_unpacks_into_store(store_home, tiny_checkpoint, tmp_path):
    archive = _zip_folder(tiny_checkpoint, tmp_path / "ck.zip")
    entry = ModelStore().add(archive, "zipped")
    assert entry.managed and Path(entry.path).is_relative_to(store_home / "models" / "zipped")
    ck, base = resolve_model("zipped")
    assert (ck / "unet" / "config.json").is_file() and base == (ck / "base").resolve()
    ModelStore().remove("zipped")
    assert not (store_home / "models" / "zipped").exists()


def _evil_zip(tmp_path: Path, tiny_checkpoint: Path, name: str, symlink: bool = False) -> Path:
    archive = _zip_folder(tiny_checkpoint, tmp_path / f"evil{len(name)}{symlink}.zip", top="ck")
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(info, b"owned")
    return archive


@pytest.mark.parametrize("member,symlink", [
    ("/tmp/worldgen-evil-abs", False),
    ("ck/../../worldgen-evil-up", False),
    ("../worldgen-evil-up2", False),
    ("C:/worldgen-evil", False),
    ("ck\\..\\..\\evil", False),
    ("ck/unet/link", True),
])
def test_unsafe_zips_are_refused_and_leave_nothing(store_home, tiny_checkpoint, tmp_path, member, symlink):
    archive = _evil_zip(tmp_path, tiny_checkpoint, member, symlink)
    with pytest.raises(ModelError, match="refusing|unsafe"):
        ModelStore().add(archive, "evil")
    models = store_home / "models"
    assert not models.exists() or list(models.iterdir()) == []
    assert ModelStore().get("evil") is None
    assert not Path("/tmp/worldgen-evil-abs").exists()
    assert not (store_home.parent / "worldgen-evil-up").exists() and not (tmp_path / "worldgen-evil-up2").exists()


def test_zip_without_checkpoint(store_home, tmp_path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="no JointNet checkpoint"):
        ModelStore().add(archive, "x")
    assert list((store_home / "models").iterdir()) == []


def test_bad_names(store_home, tiny_checkpoint):
    for name in ("", "../x", ".hidden", "a/b", "x" * 65):
        with pytest.raises(UserInputError, match="model name"):
            ModelStore().add(tiny_checkpoint, name)


def test_resolve_model(store_home, tiny_checkpoint, fixture_dir):
    ck, base = resolve_model(str(tiny_checkpoint))  # a `models tiny` folder needs no base
    assert ck == tiny_checkpoint.resolve() and base == (tiny_checkpoint / "base").resolve()
    ck, base = resolve_model(fixture_dir / "model", base=fixture_dir / "base")
    assert base == (fixture_dir / "base").resolve()
    with pytest.raises(ModelError, match="--base"):
        resolve_model(fixture_dir / "model")
    with pytest.raises(ModelError, match="worldgen models add"):
        resolve_model("not-registered")
    with pytest.raises(ModelError, match="not a base model"):
        resolve_model(tiny_checkpoint, base=fixture_dir / "model")
    ModelStore().add(fixture_dir / "model", "official", base=fixture_dir / "base", make_default=True)
    ck, base = resolve_model("official")
    assert ck == (fixture_dir / "model").resolve() and base == (fixture_dir / "base").resolve()
    assert resolve(None) == ck and resolve("official") == ck and resolve("nope") is None
    assert base_for(fixture_dir / "model") == (fixture_dir / "base").resolve()
    assert base_for(tiny_checkpoint) == tiny_checkpoint / "base"


def test_registered_base_that_vanished(store_home, tiny_checkpoint, fixture_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(fixture_dir / "base", base)
    ModelStore().add(fixture_dir / "model", "m", base=base)
    shutil.rmtree(base)
    with pytest.raises(ModelError, match="--base"):
        resolve_model("m")


def test_corrupt_index_names_the_fix(store_home):
    store_home.mkdir(parents=True)
    (store_home / "models.json").write_text("{not json")
    with pytest.raises(ModelError, match="delete it"):
        ModelStore().entries()


def test_zip_with_duplicate_or_clashing_members(store_home, tmp_path):
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("ck/a.txt", "1")
        zf.writestr("ck/a.txt", "2")
    with pytest.raises(ModelError, match="twice"):
        ModelStore().add(twice, "twice")
    archive = tmp_path / "clash.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ck/unet", "a file")
        zf.writestr("ck/unet/config.json", "{}")
    with pytest.raises(ModelError, match="both a file and a folder"):
        ModelStore().add(archive, "clash")
    assert list((store_home / "models").iterdir()) == []


@pytest.mark.parametrize("models,default", [
    ({"../x": {"path": "/x"}}, None),
    ({"m": {"path": "/x", "managed": "yes"}}, None),
    ({"m": {"base": "/b"}}, None),
    ({"m": {"path": "/x"}}, "other"),
])
def test_damaged_index_entries_are_model_errors(store_home, models, default):
    store_home.mkdir(parents=True)
    (store_home / "models.json").write_text(json.dumps({"version": 1, "default": default, "models": models}))
    with pytest.raises(ModelError, match="fix or delete|default"):
        ModelStore().entries()


def test_clearing_a_dangling_default_repairs_the_index(store_home):
    store_home.mkdir(parents=True)
    (store_home / "models.json").write_text(json.dumps({"version": 1, "default": "gone", "models": {}}))
    ModelStore().set_default(None)
    assert ModelStore().entries() == [] and default_model() is None


def test_damaged_zip_member_is_a_model_error(store_home, tmp_path):
    archive = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ck/unet/config.json", "{}" * 5000)
    data = bytearray(archive.read_bytes())
    start = data.index(b"ck/unet/config.json") + len("ck/unet/config.json")
    for i in range(start + 10, start + 40):  # scramble the compressed stream, not the headers
        data[i] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="damaged"):
        ModelStore().add(archive, "damaged")
    assert list((store_home / "models").iterdir()) == []
