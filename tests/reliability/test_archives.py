"""Checkpoint archives are untrusted: `worldgen models add X.zip` must never write outside the store
folder it unpacks into (zip slip, absolute paths, drive letters, backslashes, symlink members,
special files), must refuse things that are not zips, and must leave no partial unpack behind."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
from reliability_support import assert_error, fixture_dir, invoke, tree

from worldgen.errors import ModelError, UserInputError


def _legit_members(prefix: str = "rgbd_finetune_sd21b/") -> list[tuple[str, bytes]]:
    """The official-tiny checkpoint as (name, data) pairs, as the release zip nests it."""
    model = fixture_dir() / "model"
    return [(prefix + str(p.relative_to(model)), p.read_bytes()) for p in sorted(model.rglob("*")) if p.is_file()]


def _zip(path: Path, members: list, extra: list = ()) -> Path:
    """A zip of ``members`` followed by hand-made ``extra`` members (ZipInfo, data)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        for info, data in extra:
            zf.writestr(info, data)
    return path


def _info(name: str, file_type: int = stat.S_IFREG, mode: int = 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (file_type | mode) << 16
    info.create_system = 3  # Unix: the type bits are meaningful
    return info


@pytest.fixture
def store(tmp_path, monkeypatch):
    from worldgen.backends.jointnet.store import ModelStore

    monkeypatch.setenv("WORLDGEN_HOME", str(tmp_path / "home"))
    return ModelStore(tmp_path / "home")


def _assert_refused_cleanly(store, tmp_path: Path, before: dict, error_type=ModelError):
    assert store.entries() == []
    leftovers = sorted(p.name for p in store.models_dir.iterdir()) if store.models_dir.exists() else []
    assert leftovers == [], f"partial unpack left behind: {leftovers}"
    # Nothing appeared anywhere in the test's folder (outside the store) either.
    outside = {k: v for k, v in tree(tmp_path).items() if not k.startswith("home")}
    assert outside == before


def test_a_legitimate_release_zip_unpacks(store, tmp_path):
    """Control: the extractor works, so the refusals below are refusals, not breakage."""
    archive = _zip(tmp_path / "rgbd.zip", _legit_members())
    entry = store.add(archive, "rgbd", base=fixture_dir() / "base")
    assert entry.managed and Path(entry.path).is_relative_to(store.models_dir.resolve())
    assert (Path(entry.path) / "unet" / "config.json").is_file()
    assert [p.name for p in store.models_dir.iterdir()] == ["rgbd"]  # no staging folder left


HOSTILE = {
    "zip-slip-dotdot": lambda tmp: [(_info("../evil.txt"), b"x")],
    "zip-slip-nested-dotdot": lambda tmp: [(_info("rgbd_finetune_sd21b/unet/../../../evil.txt"), b"x")],
    "absolute-path": lambda tmp: [(_info(str(tmp / "evil.txt")), b"x")],
    "drive-letter": lambda tmp: [(_info("C:/evil.txt"), b"x")],
    "backslash-dotdot": lambda tmp: [(_info("..\\evil.txt"), b"x")],
    "symlink-member-to-outside": lambda tmp: [(_info("rgbd_finetune_sd21b/unet/link", stat.S_IFLNK, 0o777),
                                               str(tmp).encode())],
    "symlink-dir-then-file-through-it": lambda tmp: [
        (_info("rgbd_finetune_sd21b/out", stat.S_IFLNK, 0o777), str(tmp).encode()),
        (_info("rgbd_finetune_sd21b/out/evil.txt"), b"x")],
    "fifo-member": lambda tmp: [(_info("rgbd_finetune_sd21b/unet/pipe", stat.S_IFIFO), b"")],
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_archive_is_refused_and_writes_nothing(kind, store, tmp_path):
    archive = _zip(tmp_path / "rgbd.zip", _legit_members(), HOSTILE[kind](tmp_path))
    before = tree(tmp_path)
    with pytest.raises(ModelError) as caught:
        store.add(archive, "rgbd", base=fixture_dir() / "base")
    message = str(caught.value)
    assert ("refusing" in message or "unsafe" in message) and "\n" not in message
    _assert_refused_cleanly(store, tmp_path, before)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_safe_extract_checks_every_member_before_writing_any(tmp_path):
    """A hostile member at the END of the archive must not let the good members before it land."""
    from worldgen.backends.jointnet.archives import safe_extract

    archive = _zip(tmp_path / "rgbd.zip", _legit_members(), [(_info("../evil.txt"), b"x")])
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ModelError):
        safe_extract(archive, target)
    assert list(target.iterdir()) == []


def test_duplicate_members_are_refused(store, tmp_path):
    members = _legit_members()
    archive = tmp_path / "rgbd.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _zip(archive, members + [members[0]])
    before = tree(tmp_path)
    with pytest.raises(ModelError, match="twice"):
        store.add(archive, "rgbd")
    _assert_refused_cleanly(store, tmp_path, before)


def test_archive_larger_than_the_cap_is_refused(store, tmp_path, monkeypatch):
    from worldgen.backends.jointnet import archives

    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1000)
    archive = _zip(tmp_path / "rgbd.zip", _legit_members())
    before = tree(tmp_path)
    with pytest.raises(ModelError, match="refusing"):
        store.add(archive, "rgbd")
    _assert_refused_cleanly(store, tmp_path, before)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"<html>502 Bad Gateway</html>"],
                         ids=["empty", "zip-magic-only", "html-error-page"])
def test_not_a_zip_is_refused(content, store, tmp_path):
    archive = tmp_path / "rgbd_finetune_sd21b.zip"
    archive.write_bytes(content)
    before = tree(tmp_path)
    with pytest.raises((ModelError, UserInputError), match="zip"):
        store.add(archive, "rgbd")
    _assert_refused_cleanly(store, tmp_path, before)


def test_cli_refuses_a_zip_slip_archive_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLDGEN_HOME", str(tmp_path / "home"))
    archive = _zip(tmp_path / "rgbd.zip", _legit_members(), [(_info("../../evil.txt"), b"x")])
    result = invoke(["models", "add", archive, "--name", "rgbd", "-q"])
    assert_error(result, "would land outside", "refusing")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert not any((tmp_path / "home").rglob("*.txt"))
