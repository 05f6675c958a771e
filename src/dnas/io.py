"""Atomic file writing and careful reading: a result file is either the old one or the complete
new one, and a file we cannot read is one clear :class:`~dnas.errors.DnasError`, never a traceback.

Every writer goes to a temporary file in the same directory, flushes and fsyncs it, then
renames it over the target (rename is atomic on POSIX), so a run killed mid-write never
leaves a truncated JSON or checkpoint behind. Temporary files are named ``.<name>.<random>.tmp``
so that :func:`remove_stray_temporaries` can delete the ones a ``kill -9`` left behind. Written
files get the ordinary mode (``0666`` minus the umask), as ``open()`` would give them, so that a
result file and the event log of one run share one mode.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from dnas.errors import DnasError

#: Nesting depth beyond which a JSON/YAML document is refused (far above any file dnas writes).
MAX_DEPTH = 200


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise DnasError(f"{path}: is a directory, not a file; pass a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode open() would
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _fsync_dir(d: Path) -> None:
    """Make the rename itself durable (a power cut after replace keeps the new name)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic(path, lambda fh: fh.write(text), "w")


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic(path, lambda fh: fh.write(data), "wb")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def torch_bytes(obj: Any) -> bytes:
    """The bytes ``torch.save`` writes for ``obj`` (so a checksum can be taken before writing)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` atomically; load back with ``torch.load(..., weights_only=True)``.
    Run files that must be verified on load go through :func:`dnas.manifest.save_checked`."""
    return _atomic(path, lambda fh: torch.save(obj, fh), "wb")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line. A line is written with a single ``write`` call and fsynced, so a
    kill leaves at most one partial trailing line, which :func:`read_jsonl` skips and
    :func:`repair_jsonl` removes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=False) + "\n"
    new = not path.exists()
    with open(path, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    if new:
        _fsync_dir(path.parent)


def repair_jsonl(path: str | os.PathLike) -> bool:
    """Cut a torn last line (no trailing newline: the writer was killed mid-append) off a JSON
    lines file, so that the next append starts on a line of its own. Returns whether it cut."""
    p = Path(path)
    if not p.is_file():
        return False
    data = p.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    write_bytes(p, data[: data.rfind(b"\n") + 1])
    return True


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """Read a UTF-8 text file; every way it can fail is one line naming the file and the fix."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DnasError(f"{p}: {what} does not exist; pass an existing file") from None
    except IsADirectoryError:
        raise DnasError(f"{p}: is a directory, not a {what}; pass a file") from None
    except NotADirectoryError:
        raise DnasError(f"{p}: a parent of this path is a file, not a directory; fix the path") from None
    except PermissionError:
        raise DnasError(f"{p}: {what} is not readable (permission denied); fix its permissions") from None
    except UnicodeDecodeError as e:
        raise DnasError(f"{p}: {what} is not UTF-8 text (byte {e.start}); pass a text file") from None
    except OSError as e:
        raise DnasError(f"{p}: cannot read {what} ({e.strerror or type(e).__name__}); check the path") from None


def _depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of parsed JSON/YAML, iteratively (no recursion limit to hit)."""
    stack, deepest = [(obj, 1)], 0
    while stack:
        o, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend((v, d + 1) for v in o)
    return deepest


def loads_json(text: str, source: str) -> Any:
    """``json.loads`` with one-line errors for bad syntax and absurd nesting."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DnasError(f"{source}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg}); fix the syntax") from None
    except RecursionError:
        raise DnasError(f"{source}: JSON nested too deeply; pass a plain document") from None
    if _depth(obj) > MAX_DEPTH:
        raise DnasError(f"{source}: JSON nested deeper than {MAX_DEPTH} levels; pass a plain document")
    return obj


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    return loads_json(read_text(path, what), str(path))


def loads_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with one-line errors (syntax, nesting, documents we cannot represent)."""
    import yaml

    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise DnasError(f"{source}: invalid YAML{where}; fix the syntax") from None
    except (RecursionError, ValueError, OverflowError) as e:
        raise DnasError(f"{source}: YAML cannot be read ({type(e).__name__}); pass a plain mapping of field: value") from None
    if _depth(obj) > MAX_DEPTH:
        raise DnasError(f"{source}: YAML nested deeper than {MAX_DEPTH} levels; pass a plain mapping")
    return obj


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every complete JSON object line of a log; a torn last line of a killed run is skipped, and
    a file that is not a dnas log (not UTF-8, not JSON objects) is one line naming it."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    lines = read_text(p, "log").splitlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            if i == len(lines) - 1:
                continue  # a torn last line from a killed run
            raise DnasError(f"{p}: line {i + 1} is not JSON; the log is damaged (restore it or start a new run)") from None
        if not isinstance(rec, dict):
            raise DnasError(f"{p}: line {i + 1} is not a JSON object; this is not a dnas log")
        out.append(rec)
    return out


def remove_stray_temporaries(directory: str | os.PathLike) -> list[str]:
    """Delete the ``.<name>.*.tmp`` files that writers killed mid-write left in ``directory``.
    Only call while holding the run's lock (no live writer can own them)."""
    d = Path(directory)
    removed = []
    if not d.is_dir():
        return removed
    for f in d.iterdir():
        if f.name.startswith(".") and f.name.endswith(".tmp") and f.is_file():
            f.unlink(missing_ok=True)
            removed.append(f.name)
    return removed
