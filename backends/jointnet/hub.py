"""Hugging Face Hub ids (``org/name``) wherever a model folder is asked for: `--base` and
`worldgen models add`. The folder is the snapshot in huggingface_hub's own cache (where users
already have their models); with ``HF_HUB_OFFLINE=1`` only that cache is read, never the network."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from worldgen.errors import ModelError

# org/name[@revision]: Hub id syntax; a path that exists on disk always wins over an id.
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<rev>[\w./-]+))?$")
OFFLINE_VALUES = ("1", "true", "yes", "on")


def hub_id(text) -> Optional[tuple[str, Optional[str]]]:
    """(repo id, revision) when ``text`` is a Hub id and no such path exists here, else None."""
    if text is None:
        return None
    text = str(text)
    match = HUB_ID.match(text)
    if match is None or Path(text).expanduser().exists():
        return None
    return match.group("repo"), match.group("rev")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in OFFLINE_VALUES


def local_path(text) -> Optional[Path]:
    """``text`` as a folder: a Hub id becomes its snapshot folder in the Hugging Face cache (downloaded
    first unless HF_HUB_OFFLINE is set); anything else is returned as a Path (None stays None)."""
    found = hub_id(text)
    if found is None:
        return None if text is None else Path(text).expanduser()
    repo, revision = found
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=offline()))
    except LocalEntryNotFoundError:
        raise ModelError(f"{repo} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; run "
                         f"`huggingface-cli download {repo}` on a connected machine (or unset HF_HUB_OFFLINE)") from None
    except Exception as exc:  # repository not found, gated, network down: one line naming the id
        raise ModelError(f"cannot get {repo} from the Hugging Face Hub ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}); check the id, or pass a local folder") from None


def card_license(folder) -> Optional[str]:
    """The ``license:`` of a model card's YAML front matter (README.md), if there is one."""
    card = Path(folder) / "README.md"
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    front = text[3:].split("\n---", 1)[0]
    match = re.search(r"^license:\s*['\"]?([^'\"\n]+?)['\"]?\s*$", front, flags=re.MULTILINE)
    return match.group(1).strip() if match else None
