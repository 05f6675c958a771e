"""Checksums for the files a run must trust on load (checkpoints, models, saved configs).

``torch.load`` does not check the zip CRCs, so a checkpoint with damaged bytes loads and a resumed
run trains on from broken weights. Each directory that holds such files keeps ``manifest.json``:
``{"format": "dnas.manifest", "version": 1, "files": {name: {"sha256": [..], "size": n}}}``.

Writing is ordered so that a ``kill -9`` at any instant leaves a file the manifest accepts:

1. serialise to bytes and hash them;
2. record the new hash *next to* the old one in the manifest (atomic write);
3. atomically replace the file;
4. record only the new hash.

Between 2 and 4 either version of the file verifies; after 4 only the new one. Readers call
:func:`verify` (or :func:`read_checked` / :func:`load_torch_checked`) and get one
:class:`~dnas.errors.DnasError` line on a missing entry or a mismatch, with nothing touched.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from dnas.errors import DnasError
from dnas.io import loads_json, read_text, torch_bytes, write_bytes, write_json

MANIFEST = "manifest.json"
FORMAT = "dnas.manifest"


def _manifest_path(path: Path) -> Path:
    return path.parent / MANIFEST


def read_manifest(directory: str | os.PathLike) -> dict:
    p = Path(directory) / MANIFEST
    if not p.exists():
        return {"format": FORMAT, "version": 1, "files": {}}
    d = loads_json(read_text(p, "manifest"), str(p))
    if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("files"), dict):
        raise DnasError(f"{p}: not a dnas manifest; restore it from the run or start a new run")
    return d


def _record(path: Path, hashes: list[str], size: int) -> None:
    m = read_manifest(path.parent)
    m["files"][path.name] = {"sha256": hashes, "size": size}
    write_json(_manifest_path(path), m)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_checked(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically and record its checksum (kill-safe, see the module docstring)."""
    path = Path(path)
    new = sha256(data)
    old = read_manifest(path.parent)["files"].get(path.name, {}).get("sha256", [])
    _record(path, [h for h in old if h != new][-1:] + [new], len(data))
    write_bytes(path, data)
    _record(path, [new], len(data))
    return path


def save_checked(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically, with its checksum in the manifest."""
    return write_checked(path, torch_bytes(obj))


def write_text_checked(path: str | os.PathLike, text: str) -> Path:
    return write_checked(path, text.encode("utf-8"))


def verify(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of ``path`` if they match the manifest's checksum; otherwise one line."""
    path = Path(path)
    entry = read_manifest(path.parent)["files"].get(path.name)
    if entry is None:
        raise DnasError(f"{path}: {what} has no checksum in {MANIFEST} (not written by this dnas, or the manifest "
                        "was replaced); refusing to trust it — start a new run")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DnasError(f"{path}: {what} is missing; restore it or start a new run") from None
    except OSError as e:
        raise DnasError(f"{path}: cannot read {what} ({e.strerror or type(e).__name__}); check the path") from None
    if sha256(data) not in entry.get("sha256", []):
        raise DnasError(f"{path}: {what} is damaged (checksum mismatch with {MANIFEST}); restore it from a backup "
                        "or start a new run — nothing was changed")
    return data


def read_text_checked(path: str | os.PathLike, what: str = "file") -> str:
    data = verify(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DnasError(f"{path}: {what} is not UTF-8 text (byte {e.start}); restore it or start a new run") from None


def load_torch_checked(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Verify, then ``torch.load(weights_only=True)`` the verified bytes (no re-read race)."""
    data = verify(path, what)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # verified bytes that torch cannot read: written by something else
        raise DnasError(f"{path}: cannot load {what} ({type(e).__name__}); it is not a dnas file — start a new run") from None
