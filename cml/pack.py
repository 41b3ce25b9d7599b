"""The outputs folder as one pack from one run, swapped in whole.

How a pack reaches ``outputs/`` (``OUT`` below):

1. ``OUT``'s sibling lock file ``.OUT.lock`` is locked with ``fcntl.flock``; a second run into
   the same folder is refused at once (:class:`OutputsLocked`) instead of mixing two packs.
   Leftovers of a killed run (``.OUT.staging-*``, ``.OUT.old-*``) are deleted now.
2. ``OUT`` is checked before the model runs and again before the swap: every file in it must be
   one cml wrote (listed, with its SHA-256, in the manifest of ``OUT/run.json``) and unchanged.
   Anything else, a user's own notes or an edited workbook, is named and the run refused
   (:class:`OutputsRefused`): cml never deletes what it did not write.
3. The whole pack (CSVs, workbook, PDFs, ``README.md``, ``run.json`` with its manifest) is
   written into the sibling staging folder ``.OUT.staging-XXXX``.
4. The staging folder and ``OUT`` are exchanged in one step (Linux ``renameat2`` with
   ``RENAME_EXCHANGE``; elsewhere two renames, ``OUT`` aside first) and the old pack, now at the
   staging path, is deleted. A reader sees the old pack or the new one, never a mixture; a run
   killed at any point leaves the old pack in place, and the next run clears what it left.

Files of the old pack that the new one does not have (PDFs after ``--no-pdf``) go with the old
pack; :attr:`Swap.dropped` lists them so the command can say so.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

MANIFEST_KEY = "files"  # run.json: {relative path: sha256} of every other file cml wrote
PACK_KEY = "pack"  # run.json: {"kind": "full" | "one_library", "library": id or None, "pdfs": bool}
RUN_JSON = "run.json"
README = "README.md"
PACK_README = Path(__file__).resolve().parent.parent / "templates" / "outputs-README.md"
FULL, ONE_LIBRARY = "full", "one_library"
# What a pack written before manifests existed may hold (cml 0.1.0): accepted as cml's own.
LEGACY_PATTERNS = ("*.csv", "figures.xlsx", "portfolio.pdf", "briefings/*.pdf", RUN_JSON)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputsError(Exception):
    """The outputs folder cannot take this run's pack; nothing was changed."""


class OutputsLocked(OutputsError):
    """Another cml run is writing the same outputs folder."""


class OutputsRefused(OutputsError):
    """The outputs folder holds files cml did not write, or is the wrong place for this pack."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_readme() -> str:
    """The ``README.md`` every pack carries: what each file is (also ``outputs/README.md`` in git)."""
    return PACK_README.read_text(encoding="utf-8")


def files_in(folder: Path) -> list[str]:
    """Every file under ``folder`` (symlinks included, not followed), as sorted POSIX paths."""
    found = []
    for root, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.append(Path(os.path.relpath(os.path.join(root, name), folder)).as_posix())
    return sorted(found)


def manifest(folder: Path) -> dict[str, str]:
    """``{path: sha256}`` of every file in a staged pack except ``run.json`` (which holds it)."""
    return {name: sha256_of(folder / name) for name in files_in(folder) if name != RUN_JSON}


def read_run_json(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def foreign_files(folder: Path) -> list[str]:
    """Files in ``folder`` that cml did not write, or that changed since it wrote them, each
    with the reason. An empty list means the folder may be replaced."""
    if not folder.exists():
        return []
    record = read_run_json(folder) or {}
    written = record.get(MANIFEST_KEY)
    readme = pack_readme()
    problems = []
    for name in files_in(folder):
        path = folder / name
        if name == RUN_JSON and record:
            continue
        if name == README and not path.is_symlink() and _text_or_none(path) == readme:
            continue
        if isinstance(written, dict):
            if name not in written:
                problems.append(f"{name} (not written by cml)")
            elif path.is_symlink() or sha256_of(path) != written[name]:
                problems.append(f"{name} (changed since cml wrote it)")
        elif not (record and not path.is_symlink() and any(Path(name).match(p) for p in LEGACY_PATTERNS)
                  and name.count("/") <= 1):
            problems.append(f"{name} (not written by cml)")
    return problems


def _text_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step; False where the system cannot (then nothing moved)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@dataclass
class Swap:
    """What replacing the pack did: the files of the old pack the new one has not got."""

    dropped: list[str] = field(default_factory=list)


class OutputsFolder:
    """An outputs folder held for one run: locked, checked, staged, then swapped in whole.

    Use as a context manager; :meth:`stage` gives the staging folder and :meth:`commit` swaps
    it in. Leaving the block without a commit (an error, Ctrl-C) deletes the staging folder
    and leaves the old pack as it was.
    """

    def __init__(self, out_dir: Path, inputs_dir: Path | None = None, kind: str = FULL,
                 library: str | None = None) -> None:
        self.path = Path(out_dir)
        self.inputs_dir = None if inputs_dir is None else Path(inputs_dir)
        self.kind = kind
        self.library = library
        self.staging: Path | None = None
        self._lock = None

    # -- naming
    @property
    def _parent(self) -> Path:
        return self.path.resolve().parent

    @property
    def _name(self) -> str:
        return self.path.resolve().name

    @property
    def lock_path(self) -> Path:
        return self._parent / f".{self._name}.lock"

    def __enter__(self) -> Self:
        self._refuse_bad_place()
        try:
            self._parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and not self.path.is_dir():
                raise OutputsRefused(f"{self.path} is a file, not a folder; choose another --outputs folder.")
            handle = open(self.lock_path, "a+")
        except OutputsError:
            raise
        except OSError as err:
            raise OutputsError(f"cannot write beside {self.path}: {err.strerror or err}") from err
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise OutputsLocked(
                f"another cml run ({holder or 'unknown process'}) is writing {self.path}; "
                "wait for it to finish, or choose another --outputs folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock = handle
        try:
            self._clear_leftovers()
            self.check()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self.staging is not None:
                shutil.rmtree(self.staging, ignore_errors=True)
                self.staging = None
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # -- checks
    def _refuse_bad_place(self) -> None:
        out = self.path.resolve()
        if self.inputs_dir is not None:
            inputs = self.inputs_dir.resolve()
            if out == inputs or out.is_relative_to(inputs):
                raise OutputsRefused(
                    f"the outputs folder {self.path} is inside the inputs folder {self.inputs_dir}: the next run "
                    "would read the pack back as inputs. Choose an outputs folder outside it.")
            if inputs.is_relative_to(out):
                raise OutputsRefused(
                    f"the inputs folder {self.inputs_dir} is inside the outputs folder {self.path}, which a run "
                    "replaces whole. Choose an outputs folder that does not hold the inputs.")
        for ancestor in out.parents:
            record = read_run_json(ancestor)
            if record is not None and MANIFEST_KEY in record:
                raise OutputsRefused(
                    f"{self.path} is inside the pack in {ancestor}, which the next run there would refuse to "
                    f"replace; choose a folder beside it (e.g. {ancestor.parent / (ancestor.name + '-' + out.name)}).")

    def check(self) -> None:
        """Refuse (naming the files) to replace a folder holding anything cml did not write, or a
        full pack with one library's pack."""
        problems = foreign_files(self.path)
        if problems:
            listed = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
            raise OutputsRefused(
                f"{self.path} holds files cml did not write; a run replaces the whole folder, so it has changed "
                f"nothing. Move them elsewhere (or choose another --outputs folder):\n  {listed}")
        record = read_run_json(self.path) or {}
        old_kind = (record.get(PACK_KEY) or {}).get("kind", FULL if record else None)
        if self.kind == ONE_LIBRARY and old_kind == FULL:
            raise OutputsRefused(
                f"{self.path} holds the full pack; one library's briefing there would sit beside a portfolio "
                f"report from another run. Write it into its own folder, e.g. --outputs {self.path}-{self.library}.")

    def _clear_leftovers(self) -> None:
        """Staging and retired folders of an earlier run into this folder that was killed."""
        for leftover in self._parent.glob(f".{self._name}.staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self._parent.glob(f".{self._name}.old-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    # -- writing
    def stage(self) -> Path:
        """A new, empty staging folder beside the outputs folder (same file system)."""
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self._name}.staging-", dir=self._parent))
            os.chmod(self.staging, self.path.stat().st_mode & 0o7777 if self.path.is_dir() else 0o777 & ~_umask())
        except OSError as err:
            raise OutputsError(f"cannot write beside {self.path}: {err.strerror or err}") from err
        (self.staging / README).write_text(pack_readme(), encoding="utf-8")
        return self.staging

    def pack_record(self, pdfs: bool) -> dict:
        """The ``pack`` and ``files`` entries of ``run.json`` for what is staged now."""
        assert self.staging is not None
        return {PACK_KEY: {"kind": self.kind, "library": self.library, "pdfs": pdfs},
                MANIFEST_KEY: manifest(self.staging)}

    def commit(self) -> Swap:
        """Swap the staged pack in whole and delete the old one."""
        assert self.staging is not None
        self.check()  # a file dropped into the folder while the model ran is still not ours to delete
        new_files = set(files_in(self.staging))
        swap = Swap()
        try:
            if self.path.exists():
                swap.dropped = [name for name in files_in(self.path) if name not in new_files]
                if not _exchange(self.staging, self.path):
                    retired = Path(tempfile.mkdtemp(prefix=f".{self._name}.old-", dir=self._parent))
                    os.replace(self.path, retired / "pack")
                    os.replace(self.staging, self.path)
                    self.staging = retired
            else:
                os.replace(self.staging, self.path)
                self.staging = None
        except OSError as err:
            raise OutputsError(f"cannot replace {self.path}: {err.strerror or err}") from err
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        return swap
