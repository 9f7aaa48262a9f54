"""Assemble the runtime image's whole filesystem under one directory (run in the builder stage).

The runtime stage is `FROM scratch` plus this tree: the base image's own Python interpreter,
a trimmed and precompiled standard library, the shared libraries that the interpreter and the
installed extension modules link against (found with `ldd`), the virtual environment, a CA
bundle, and /etc/passwd and /etc/group naming the service user. There is no shell, no package
manager, no pip and nothing owned by the service user: every file belongs to root.

Paths are copied to where they are in the base, symlinks included, so the same script works on
the debootstrap base (Python in /usr/bin) and on the official image (Python in /usr/local/bin).

Usage: python3 assemble_rootfs.py ROOTFS VENV
"""

from __future__ import annotations

import compileall
import os
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

APP_UID = APP_GID = 10001
APP_USER = "pingcalc"

# Standard-library parts a web service never imports: test suites, GUIs, installers, REPL
# helpers and interpreter build files (the official image's config-* holds a 40 MB libpython.a).
STDLIB_DROP = {
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3",
    "pydoc_data", "distutils", "venv", "__phello__", "sqlite3", "dbm", "curses",
    "site-packages", "dist-packages", "__pycache__",
}  # fmt: skip
STDLIB_DROP_PREFIX = ("config-3",)
# Extension modules for the same (plus readline/curses: terminal UI, and the CPython test modules).
DYNLOAD_DROP = re.compile(
    r"^(_test\w*|_ctypes_test|xxlimited\w*|_xx\w+|_curses\w*|readline|_dbm|_gdbm|_tkinter"
    r"|_sqlite3|audioop|nis|ossaudiodev|_lsprof)\."
)
# glibc dlopen()s libgcc_s for thread cancellation and unwinding, so ldd does not list it;
# pydantic-core's Rust panics and pthread_exit need it at run time.
ALWAYS_LIBS = ("libgcc_s.so.1",)
# Sources and headers for compiling against a package, never read at run time; type stubs.
BUILD_ONLY_SUFFIXES = {".pyx", ".pxd", ".pxi", ".c", ".h", ".cpp", ".pyi"}
# Packages of the dependencies nothing imports: pydantic's v1 compatibility layer (1.2 MB;
# pingcalc and pydantic-settings use v2 only).
DEPENDENCY_DROP = ("pydantic/v1",)
# The one package that keeps its sources in the image, so its tracebacks show the failing
# line; the dependencies go sourceless like the standard library (their tracebacks keep file
# and line numbers, the published sources are one `pip download` away).
APP_PACKAGE = "pingcalc"
LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/lib64")


def dest_of(root: Path, path: Path) -> Path:
    """Where an absolute path of the base lands in the new tree."""
    return root / path.relative_to("/")


def copy_path(root: Path, path: Path) -> None:
    """Copy one file or tree to the same place under root, recreating each symlink on the way."""
    parts = path.parts
    current = Path("/")
    for index, part in enumerate(parts[1:], start=1):
        step = current / part
        if step.is_symlink():
            target = step.readlink()
            link = dest_of(root, step)
            if not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(target)
            # Continue from what the link points at, with the rest of the path after it.
            base = target if target.is_absolute() else current / target
            copy_path(root, Path(os.path.normpath(base.joinpath(*parts[index + 1 :]))))
            return
        current = step
    target_path = dest_of(root, current)
    if current.is_dir():
        shutil.copytree(current, target_path, symlinks=True, dirs_exist_ok=True)
    elif not target_path.exists():
        target_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(current, target_path)


def copy_stdlib(root: Path) -> Path:
    """The standard library without the parts a server never needs; symlinks are dereferenced."""
    stdlib = Path(sysconfig.get_path("stdlib"))

    def ignore(directory: str, names: list[str]) -> set[str]:
        if Path(directory) == stdlib:
            return {n for n in names if n in STDLIB_DROP or n.startswith(STDLIB_DROP_PREFIX)}
        if Path(directory).name == "lib-dynload":
            return {n for n in names if DYNLOAD_DROP.match(n)}
        return {n for n in names if n == "__pycache__"}

    # Debian links sitecustomize.py to /etc; dereferencing copies the file instead of a
    # dangling link. A broken link would make every start print an error.
    shutil.copytree(stdlib, dest_of(root, stdlib), ignore=ignore, symlinks=False)
    return stdlib


def shared_libraries(files: list[Path]) -> set[Path]:
    """Every library (and the dynamic loader) that the given ELF files load, per ldd."""
    found: set[Path] = set()
    for path in files:
        # Fixed tools of the builder stage, on files this script placed (S603/S607).
        out = subprocess.run(  # noqa: S603
            ["ldd", str(path)],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for line in out.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match:
                found.add(Path(match.group(1)))
    for name in ALWAYS_LIBS:
        for directory in LIB_DIRS:
            candidate = Path(directory) / name
            if candidate.exists():
                found.add(candidate)
                break
        else:
            raise SystemExit(f"assemble: {name} not found in {LIB_DIRS}")
    return found


def strip_binaries(tree: Path) -> None:
    """Drop debug symbols from extension modules, and the build-only files wheels ship."""
    for path in tree.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix in BUILD_ONLY_SUFFIXES:
            path.unlink()
        elif ".so" in path.suffixes:
            subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)  # noqa: S603, S607


def compile_bytecode(root: Path, tree: Path, *, sourceless: bool, keep: Path | None = None) -> bool:
    """Precompile a tree for its final location; a read-only root cannot take bytecode later.

    unchecked-hash: a .pyc is used without a stat of its source, whatever mtimes the layer
    gets. Sourceless means a .pyc beside where the .py was, then the .py removed: about half
    the size. `keep` names a subtree that keeps its sources (the app's own package).
    """
    ok = compileall.compile_dir(
        tree,
        quiet=1,
        workers=0,
        legacy=sourceless,
        stripdir=str(root),  # record the final paths (for tracebacks), not /rootfs/...
        prependdir="/",
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if sourceless:
        for source in tree.rglob("*.py"):
            if keep is not None and keep in source.parents:
                continue
            if source.with_suffix(".pyc").exists():
                source.unlink()
        # pip's own bytecode: unused once the sources are gone (and wrong for unchecked-hash).
        for cache in list(tree.rglob("__pycache__")):
            if keep is None or keep not in cache.parents:
                shutil.rmtree(cache)
        if keep is not None:  # its bytecode lives in __pycache__, next to its kept sources
            for stray in keep.rglob("*.pyc"):
                if stray.parent.name != "__pycache__":
                    stray.unlink()
            ok = ok and compileall.compile_dir(
                keep,
                quiet=1,
                workers=0,
                stripdir=str(root),
                prependdir="/",
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
    return bool(ok)


def write_etc(root: Path) -> None:
    """Accounts (the service user has no home and no login shell) and the loader cache."""
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"{APP_USER}:x:{APP_UID}:{APP_GID}:pingcalc service:/nonexistent:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\n{APP_USER}:x:{APP_GID}:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    # The official image keeps libpython in /usr/local/lib, found only through ld.so.cache.
    (etc / "ld.so.conf").write_text("\n".join(LIB_DIRS) + "\n")
    subprocess.run(["ldconfig", "-r", str(root)], check=True)  # noqa: S603, S607


def main() -> int:
    root, venv = Path(sys.argv[1]), Path(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)
    interpreter = Path(sys.executable)
    copy_path(root, interpreter)
    stdlib = copy_stdlib(root)
    copy_path(root, venv)
    # The venv's python is a symlink to the base interpreter: copy that chain too.
    copy_path(root, venv / "bin" / "python")

    elves = [interpreter.resolve()]
    elves += list(dest_of(root, stdlib).rglob("*.so"))
    elves += [p for p in dest_of(root, venv).rglob("*.so*") if p.is_file()]
    for library in sorted(shared_libraries(elves)):
        copy_path(root, library)
    ca_bundle = Path("/etc/ssl/certs/ca-certificates.crt")  # rediss:// limiter storage
    if ca_bundle.exists():
        copy_path(root, ca_bundle)
    write_etc(root)
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "app").mkdir(mode=0o755, exist_ok=True)

    strip_binaries(dest_of(root, venv))
    site = next(dest_of(root, venv).glob("lib/python3*/site-packages"))
    for dropped in DEPENDENCY_DROP:
        shutil.rmtree(site / dropped, ignore_errors=True)
    if not compile_bytecode(root, dest_of(root, stdlib), sourceless=True):
        return 1
    if not compile_bytecode(root, dest_of(root, venv), sourceless=True, keep=site / APP_PACKAGE):
        return 1
    for path in root.rglob("*"):  # the service user owns nothing
        os.lchown(path, 0, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
