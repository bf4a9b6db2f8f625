"""Where the bytes of attachments live. The database by default (`ATTACHMENT_STORAGE=database`): one backup holds the
cases and their files, and a file is written in the same transaction as its case, so a filing that fails leaves
nothing behind. A deployment whose database should stay small moves them to a mounted volume
(`ATTACHMENT_STORAGE=directory`, `ATTACHMENT_DIR=/srv/banjie/files`): every process that serves or receives files
must mount the same volume (NFS or the like when web processes run on several hosts).

Moving from one to the other is `flask attachments move --to directory` (or `--to database`): it copies each file and
then removes it from where it was, in batches, with a progress bar, and may be run again after an interruption.
Meanwhile (and after a change of ATTACHMENT_STORAGE before the move) a file not found in the configured store is
read from the other one (`read`), so no download fails while files are on their way.

Keys are random (`new_key`), never derived from a name a citizen chose. A store is told the session so the database
store can join its transaction; the directory store writes at once (a rolled-back filing leaves a file no row names, which
is harmless: nothing serves a file that no attachment row names, and its key was rolled back with the filing, so no
one can read it).

Both stores keep files encrypted at rest (tickets/privacy/crypto.py). The database's column is encrypted under
PRIVACY_KEYS. On the volume each file is encrypted (AES-GCM, its storage key as associated data, so a file renamed to
another's name does not open) with a random key of its own, kept in the database (`AttachmentFileKey`, encrypted under
PRIVACY_KEYS): `flask privacy rotate-key` re-encrypts those keys, never the files, and deleting a file deletes its key,
so a copy of the volume (a backup, a disk taken away) shows nothing without the database and PRIVACY_KEYS. A file
written before encryption (no `FILE_HEADER`) is read as it is until moved to the database and back.

A volume that is not mounted leaves its mount point, an empty directory the process may write to. So that files never
go to the local disk under it (to vanish when the volume comes back) nor read as deleted, the volume carries a marker
at its root (`MARKER`), written with its first file. A directory without it while the database holds the keys of files
on the volume is not the volume: writing, reading a missing file and deleting are `StorageUnavailable`, and /readyz
says so. A volume from before the marker gets it once one of those files is found on it.
"""
from __future__ import annotations

import base64
import contextlib
import errno
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from .errors import StorageUnavailable
from .models import AttachmentBlob, AttachmentFileKey
from .privacy.crypto import PrivacyKeyError

log = logging.getLogger(__name__)

STORAGE_KINDS = ("database", "directory")


def new_key() -> str:
    return secrets.token_hex(16)


class Store(Protocol):
    def put(self, session, key: str, data: bytes) -> None: ...
    def get(self, session, key: str) -> bytes | None: ...
    def delete(self, session, keys: list[str]) -> None: ...


class DatabaseStore:
    """Bytes in the `attachment_blob` table, written with the caller's transaction."""

    def put(self, session, key: str, data: bytes) -> None:
        session.add(AttachmentBlob(key=key, data=data))

    def get(self, session, key: str) -> bytes | None:
        return session.scalar(sa.select(AttachmentBlob.data).where(AttachmentBlob.key == key))

    def delete(self, session, keys: list[str]) -> None:
        if keys:
            session.execute(sa.delete(AttachmentBlob).where(AttachmentBlob.key.in_(keys)))


FILE_HEADER = b"banjie-file:1:"  # then the 12-byte nonce and the AES-GCM ciphertext (with its tag)
NONCE = 12
MARKER = ".banjie-volume"  # at the volume's root: this is the volume the database's files are on (never a file's key)
MARKER_TEXT = b"Banjie attachment volume: the files of the cases, encrypted. Keep this file.\n"
KNOWN_FILES_LOOKED_AT = 5  # without the marker: files the database knows of, any of them found shows the volume is there


class DirectoryStore:
    """Bytes as files under `root` (ab/abcdef…), written whole (a temporary file renamed into place), each encrypted
    with a key of its own whose row (`AttachmentFileKey`) joins the caller's transaction."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if len(key) != 32 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError("not a storage key")
        return self.root / key[:2] / key

    def mounted(self, session, *, mark: bool = False) -> bool:
        """This directory is the volume the database's files are on: it has the marker, or the database knows of no
        file on a volume (a new one: `mark` writes the marker, as the first file is put), or one of the files it knows
        of is here (a volume from before the marker: it gets one). An empty mount point is not. Reads only committed
        rows (nothing of the caller's transaction is flushed)."""
        marker = self.root / MARKER
        if marker.is_file():
            return True
        with session.no_autoflush:
            known = session.scalars(sa.select(AttachmentFileKey.key).limit(KNOWN_FILES_LOOKED_AT)).all()
        if known and not any(self._path(key).is_file() for key in known):
            return False
        if known or mark:
            try:
                with open(marker, "xb") as handle:
                    handle.write(MARKER_TEXT)
            except FileExistsError:
                pass  # another process marked it meanwhile
            except OSError as error:
                raise self._unavailable("mark", error) from None
        return True

    def _refuse_unless_mounted(self, session, doing: str, *, mark: bool = False) -> None:
        if not self.mounted(session, mark=mark):
            log.error("attachment volume unavailable: cannot %s a file: the volume's marker (%s) is missing and so "
                      "are the files the database knows of: not mounted?", doing, MARKER)
            raise StorageUnavailable()

    def put(self, session, key: str, data: bytes) -> None:
        path = self._path(key)
        if self.root.is_dir():  # else the write below fails as a volume that is gone
            self._refuse_unless_mounted(session, "write", mark=True)
        file_key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(NONCE)
        sealed = FILE_HEADER + nonce + AESGCM(file_key).encrypt(nonce, bytes(data), key.encode())
        written = None
        try:
            # the two-letter folder only: a volume that is not there (unmounted) is not made again on the local disk
            path.parent.mkdir(exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
                written = handle.name
                handle.write(sealed)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(written, path)
        except OSError as error:
            if written is not None:
                with contextlib.suppress(OSError):
                    os.unlink(written)  # no half-written file left behind
            raise self._unavailable("write", error) from None
        session.add(AttachmentFileKey(key=key, file_key=base64.b64encode(file_key).decode()))

    def get(self, session, key: str) -> bytes | None:
        """The file's bytes; None when it is missing, or encrypted with a key the database no longer holds (deleted,
        or never committed). A file without the header is one written before encryption: read as it is. The volume
        itself missing or failing is `StorageUnavailable`, not a missing file."""
        path = self._path(key)
        try:
            stored = path.read_bytes()
        except FileNotFoundError as error:
            if not self.root.is_dir():
                raise self._unavailable("read", error) from None
            self._refuse_unless_mounted(session, "read")  # missing from an empty mount point is not deleted
            return None
        except OSError as error:
            raise self._unavailable("read", error) from None
        if not stored.startswith(FILE_HEADER):
            return stored
        file_key = session.scalar(sa.select(AttachmentFileKey.file_key).where(AttachmentFileKey.key == key))
        if file_key is None:
            return None
        body = stored[len(FILE_HEADER):]
        try:
            return AESGCM(base64.b64decode(file_key)).decrypt(body[:NONCE], body[NONCE:], key.encode())
        except InvalidTag:  # as a value that does not open with its key in the database: the damage is reported
            raise PrivacyKeyError(f"attachment file {key}: does not open with its key (altered, damaged or another "
                                  "file's)") from None

    @staticmethod
    def _unavailable(doing: str, error: OSError) -> StorageUnavailable:
        # the error's kind and words, not its path (the log names no file a citizen sent)
        log.error("attachment volume unavailable: cannot %s a file: %s: %s", doing, type(error).__name__,
                  error.strerror or f"errno {error.errno}")
        return StorageUnavailable()

    def delete(self, session, keys: list[str]) -> None:
        if keys:  # the volume away: the files (those from before encryption in clear) would stay on it, unseen
            if not self.root.is_dir():
                raise self._unavailable("delete", FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))
            self._refuse_unless_mounted(session, "delete")
        try:
            for key in keys:
                self._path(key).unlink(missing_ok=True)
        except OSError as error:
            raise self._unavailable("delete", error) from None
        if keys:
            session.execute(sa.delete(AttachmentFileKey).where(AttachmentFileKey.key.in_(keys)))


def check_settings(config) -> None:
    """Refuse to start with a storage the process cannot use (called by `tickets.init_app`)."""
    kind = config["ATTACHMENT_STORAGE"]
    if kind not in STORAGE_KINDS:
        raise ValueError(f"ATTACHMENT_STORAGE={kind!r}: must be one of {', '.join(STORAGE_KINDS)}")
    if kind == "directory":
        root = config["ATTACHMENT_DIR"]
        if not root or not os.path.isdir(root) or not os.access(root, os.W_OK):
            raise ValueError(f"ATTACHMENT_STORAGE=directory needs ATTACHMENT_DIR, an existing directory this process "
                             f"may write to (given: {root!r})")


def volume_check(session, now) -> dict:
    """/readyz's `attachments` entry: with ATTACHMENT_STORAGE=directory, a small file written to the volume and removed
    (an unmounted, read-only or full volume fails) and the space left; the database keeps them otherwise."""
    config = current_app.config
    if config["ATTACHMENT_STORAGE"] != "directory":
        return {"ok": True, "kind": "database"}
    root = config["ATTACHMENT_DIR"]
    with tempfile.NamedTemporaryFile(dir=root, prefix=".readyz-") as handle:  # its own name: never a file's key
        handle.write(b"ok")
        handle.flush()
    if not DirectoryStore(root).mounted(session):
        return {"kind": "directory", "error": "not_the_volume"}  # an empty mount point: the marker and files missing
    free = os.statvfs(root)
    return {"ok": True, "kind": "directory", "free_mb": free.f_bavail * free.f_frsize // (1024 * 1024)}


def store(kind: str | None = None) -> Store:
    """The store this deployment keeps files in (or the one of that kind)."""
    config = current_app.config
    if (kind or config["ATTACHMENT_STORAGE"]) == "directory":
        return DirectoryStore(config["ATTACHMENT_DIR"])
    return DatabaseStore()


def read(session, key: str) -> bytes | None:
    """A file's bytes from the configured store, else from the other one while files are being moved (a deployment
    without ATTACHMENT_DIR has no other)."""
    config = current_app.config
    data = store().get(session, key)
    if data is None and config["ATTACHMENT_DIR"]:
        if config["ATTACHMENT_STORAGE"] == "directory":
            data = store("database").get(session, key)
        elif os.path.isdir(config["ATTACHMENT_DIR"]):  # a volume no longer there is no other store (not an outage)
            data = store("directory").get(session, key)
    return data


def delete_everywhere(session, keys: list[str]) -> None:
    """Delete these files from the configured store and, while files may be on their way between the two (an
    ATTACHMENT_DIR is set), from the other one too (tickets/privacy/retention.py: nothing of the file may stay)."""
    store().delete(session, keys)
    if current_app.config["ATTACHMENT_DIR"] and os.path.isdir(current_app.config["ATTACHMENT_DIR"]):
        store("database" if current_app.config["ATTACHMENT_STORAGE"] == "directory" else "directory").delete(
            session, keys)


def move(session, to: str, keys: list[str]) -> int:
    """Copy these files to the store `to` and remove them from the other (no commit); how many were moved (a file
    already there, or missing from both, is skipped)."""
    target, source = store(to), store("database" if to == "directory" else "directory")
    moved = 0
    for key in keys:
        data = source.get(session, key)
        if data is None:
            continue
        if target.get(session, key) is None:
            target.put(session, key, data)
        source.delete(session, [key])
        moved += 1
    return moved
