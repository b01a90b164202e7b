"""Output folders a reader can trust: all of a command's files appear together, or none of them.

``transaction(out)`` is how ``run``, ``compare`` and ``bench`` write their ``--out`` folder, and how ``train``
writes the final set of a run folder:

1. **Check and lock before any work.**  ``out`` must be a folder (or absent), its parent creatable and writable,
   and, if it already holds files, they must be oce-sim's (a ``manifest.json`` from an earlier run, or only the
   file names older versions wrote), because the whole folder is replaced.  An exclusive ``flock`` on
   ``<parent>/.<name>.lock`` refuses a second writer at once.  The kernel drops a ``flock`` when its process
   dies, however it dies, so a lock never outlives a killed run; the lock file itself stays (deleting lock files
   reintroduces the race they exist to prevent).
2. **Clean up** what killed runs left: staging folders ``<parent>/.<name>.staging-*`` and, after the fallback
   swap below, ``.<name>.old-*`` (rolled back into place if ``out`` is missing).  Only the lock holder does this,
   so nothing in use is removed.
3. **Write into a staging folder** beside ``out`` (same parent, hence the same file system), plus a
   ``manifest.json`` naming every file with its SHA-256.  Files and folder are fsynced.
4. **Swap atomically.**  On Linux ``renameat2(RENAME_EXCHANGE)`` exchanges the staging folder and ``out`` in one
   system call: every reader that looks ``out`` up sees the old folder or the new one, never a mix, never
   nothing.  The old set, now under the staging name, is then deleted.  Where the file system does not support
   the exchange, ``out`` is renamed aside and the staging folder renamed in (a reader may briefly find no
   ``out``; a kill between the two renames is rolled back by the next run).  A first run just renames.

If the command fails or is interrupted, the staging folder is removed and ``out`` is untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

MANIFEST = "manifest.json"
# What oce-sim wrote before folders had a manifest: such a folder may be replaced without asking.
LEGACY_OUTPUTS = frozenset({"results.csv", "summary.json", "bench.md", "perf.json", "kpis_by_strategy.png",
                            "cumulative_prescriptions.png", "channel_mix.png"})


class OutputError(RuntimeError):
    """``--out`` cannot be used (not a folder, not writable, foreign files, another writer)."""


# ------------------------------------------------------------------------------------------------ files
def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be created or written as a folder, or None: it exists and is not a folder, or the nearest
    existing folder above it is a file or not writable.  Paths are quoted up to 200 characters."""
    def shown(p: Path) -> str:
        text = str(p)
        return text if len(text) <= 200 else text[:197] + "..."

    if path.exists() and not path.is_dir():
        return f"{shown(path)} exists and is not a folder"
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{shown(path)}: {shown(existing)} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{shown(path)}: {shown(existing)} is not writable"
    return None


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give ``path`` to an OSError raised without a file name (``write`` and ``fsync`` only have a descriptor): a
    full disk is then reported with the file it stopped, not as a bare errno."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


_STAGED = re.compile(r"(^|/)\.([^/]+)\.staging-[0-9a-f]{8}(?=/|$)")


def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` as the user named it: a file in a staging folder ``<parent>/.<name>.staging-XXXXXXXX/`` is where it
    was going, ``<parent>/<name>/``."""
    return _STAGED.sub(r"\1\2", os.fspath(path))


def fsync_dir(path: Path) -> None:
    """Make renames and new entries in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cache_root() -> Path:
    """Where oce-sim keeps what it can recompute (the steady starts, searched plans): ``$OCE_SIM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/oce-sim``, else ``~/.cache/oce-sim``."""
    return Path(os.environ.get("OCE_SIM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "oce-sim"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file, fsync and rename: the file is complete or absent, even after a crash."""
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; results are meant to be shared
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves a half-written file."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text writes str, not {type(text).__name__}")
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_replace_block(path: Path, begin: str, end: str, text: str) -> None:
    """Replace what stands between the markers ``begin`` and ``end`` of the text file ``path`` with ``text`` (the
    markers stay), atomically; a file without both markers is left alone (ValueError naming them)."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    if begin not in old or end not in old:
        raise ValueError(f"{path} has no {begin} ... {end} markers")
    block = f"{begin}\n{text}\n{end}"
    atomic_write_text(path, re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, old, flags=re.DOTALL))


def atomic_save_figure(fig: Any, path: Path) -> None:
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# ------------------------------------------------------------------------------------------------ locks
@contextlib.contextmanager
def exclusive_lock(lock_path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` or raise OutputError at once (no waiting)."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise OutputError(f"{what} is being written by another oce-sim process (pid {holder}); "
                              "wait for it to finish or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # only for the message above
        yield
    finally:
        os.close(fd)  # releases the lock


# ------------------------------------------------------------------------------------------------ swap
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _renameat2() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not glibc >= 2.28
        return None


_RENAMEAT2 = _renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two existing paths; False if this system or file system cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(root)


def write_manifest(staging: Path, command: str) -> None:
    """``manifest.json``: who wrote the folder and every file's SHA-256 (no times, so reruns are identical)."""
    files = {p.relative_to(staging).as_posix(): file_digest(p)
             for p in sorted(staging.rglob("*")) if p.is_file() and p.name != MANIFEST}
    payload = {"written_by": f"oce-sim {command}", "files": files}
    (staging / MANIFEST).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder")
    if not out.is_dir():
        return
    if os.path.ismount(out):
        raise OutputError(f"--out {out} is a mount point, which cannot be replaced; choose a folder inside it")
    names = [p.name for p in out.iterdir()]
    if not names or MANIFEST in names:
        return
    foreign = sorted(n for n in names if n not in LEGACY_OUTPUTS and not n.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(f"--out {out} holds files oce-sim did not write ({shown}); the whole folder is replaced "
                          "by the new results, so choose a new or empty folder")


def _recover(out: Path) -> None:
    """Undo what a killed run left beside ``out`` (called with the lock held)."""
    parent, name = out.parent, out.name
    olds = sorted(parent.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not out.exists():
        os.rename(olds.pop(), out)  # killed between the fallback's two renames: roll back
    for leftover in [*olds, *parent.glob(f".{name}.staging-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        os.rename(staging, out)
    elif exchange(staging, out):
        shutil.rmtree(staging)  # the old set, now under the staging name
    else:
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old)
    fsync_dir(out.parent)


@contextlib.contextmanager
def transaction(out: Path, command: str) -> Iterator[Path]:
    """Yield a staging folder to write every output into; on success it replaces ``out`` atomically.

    Raises OutputError before yielding if ``out`` is unusable or locked, so no work is lost.
    """
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        out = out.resolve()  # replace the folder it points to, not the link
    _check_out(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create {out.parent} ({exc.strerror})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: the folder {out.parent} is not writable")
    with exclusive_lock(out.parent / f".{out.name}.lock", f"--out {out}"):
        _recover(out)
        _check_out(out)  # again: recovery may have rolled an older folder back into place
        staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir()
        except OSError as exc:
            raise OutputError(f"--out {out}: cannot write in {out.parent} ({exc.strerror})") from None
        try:
            yield staging
            with naming(out):  # the manifest, the fsyncs and the swap: a full disk names --out
                write_manifest(staging, command)
                _fsync_tree(staging)
                _swap_in(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


__all__ = ["MANIFEST", "OutputError", "atomic_replace_block", "atomic_save_figure", "atomic_write_bytes",
           "atomic_write_text", "exclusive_lock", "exchange", "file_digest", "naming", "shown_path", "transaction"]
