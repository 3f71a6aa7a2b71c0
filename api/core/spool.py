"""The audit spool: a local append-only file where audit entries wait while the database cannot
take them (the settings' ``audit_spool``, ``SINERGI_AUDIT_SPOOL``).

A request that fails because the database is down cannot write its failure entry into the
chain either. Rather than only logging it, the audit writer (:mod:`api.core.audit`) writes the
entry here, one JSON object a line, ``fsync``-ed before the reply is sent; when the database
takes a unit again, the entries are appended to their chains (``audit.drain_spool``) and the
file goes.

Several server processes may share one spool file. A writer appends under an exclusive
``flock`` of the file; a drain first moves the file aside under the same lock (``<spool>.<pid>.
<random>.draining``), so writers that come after start a new file and nothing they write is
lost between the drain's read and its removal of the file, then reads the moved file (held by
a lock of its own, so two drains never take the same file) and removes it once its entries are
committed. A drain that fails leaves its file for the next one; one that committed and died
before removing it leaves entries that are already in the chain, which the next drain
recognises by their ids. A line cut short by a crash in the middle of a write is skipped (and
logged): its entry was never acknowledged as written.
"""

from __future__ import annotations

import asyncio
import fcntl
import glob
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger("sinergi.audit")

_SUFFIX = ".draining"
_LOOK_EVERY = 1.0  # seconds between two looks at the spool's directory (per process)
_last_look: dict[str, float] = {}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_sync(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    while True:
        created = not os.path.exists(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # a drain moved the file away since it was opened: write to the new one
                continue
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the file's name must survive a crash too
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return


async def write(path: str, entries: list[dict[str, Any]]) -> None:
    """Append ``entries`` to the spool at ``path``; returns once they are on disk."""
    data = b"".join(orjson.dumps(e) + b"\n" for e in entries)
    await asyncio.to_thread(_write_sync, path, data)
    _last_look.pop(path, None)  # the next unit that succeeds looks at once


def _waiting(path: str) -> list[str]:
    return glob.glob(glob.escape(path) + ".*" + _SUFFIX)


def due(path: str) -> bool:
    """Whether entries (may) wait in the spool; looks at the disk at most once a second."""
    now = time.monotonic()
    if now - _last_look.get(path, float("-inf")) < _LOOK_EVERY:
        return False
    _last_look[path] = now
    try:
        if os.path.getsize(path) > 0:
            return True
    except OSError:
        pass
    return bool(_waiting(path))


def _take_sync(path: str) -> list[str]:
    """Move the spool aside (under its lock) and return the files waiting to be drained."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        fd = -1
    if fd >= 0:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size > 0 and os.fstat(fd).st_ino == os.stat(path).st_ino:
                os.rename(path, f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}{_SUFFIX}")
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    files = _waiting(path)
    return sorted(files, key=lambda f: os.stat(f).st_mtime if os.path.exists(f) else 0.0)


@dataclass
class Batch:
    """The entries of one spool file, held (locked) until :meth:`done` or :meth:`keep`."""

    file: str
    fd: int
    entries: list[dict[str, Any]]

    def done(self) -> None:
        """Its entries are in the chain: the file goes."""
        try:
            os.unlink(self.file)
        finally:
            self._close()

    def keep(self) -> None:
        """Not written: the file stays for the next drain (``fd`` is then -1)."""
        self._close()
        self.fd = -1

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _open_sync(file: str) -> Batch | None:
    try:
        fd = os.open(file, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another drain has it
        os.close(fd)
        return None
    if not os.path.exists(file):  # drained and removed while we opened it
        os.close(fd)
        return None
    with os.fdopen(os.dup(fd), "rb") as f:
        raw = f.read()
    entries = []
    for n, line in enumerate(raw.splitlines(), 1):
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            log.error("audit spool %s: line %d is not a whole entry (cut by a crash?): skipped", file, n)
    return Batch(file, fd, entries)


async def batches(path: str) -> AsyncGenerator[Batch, None]:
    """The spool's files, one :class:`Batch` each; the caller ends each with ``done`` or ``keep``."""
    for file in await asyncio.to_thread(_take_sync, path):
        batch = await asyncio.to_thread(_open_sync, file)
        if batch is None:
            continue
        if not batch.entries:
            batch.done()
            continue
        yield batch
