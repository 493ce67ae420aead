"""Lays out a container image holding this Python and its installed packages (kfp among
them), so lightweight KFP components can run in Docker on a machine that cannot pull
`python:3.11`.

Usage: python tests/kfp/python_image.py CONTEXT_DIR

Run it with the virtualenv's Python that has kfp. CONTEXT_DIR receives `rootfs/` and a
`Dockerfile` (FROM scratch): the interpreter and its standard library at their paths on
this machine, the virtualenv's packages under /opt/kfp/site-packages, `sh` and `mktemp`
(the lightweight components' command uses them), a `pip` that runs `python3 -m pip`, and
every shared library these need, as `ldd` finds them.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

SKIP_DIRS = {"__pycache__", "test", "tests", "idlelib", "tkinter", "turtledemo", "site-packages"}


def copy_file(src: str, root: pathlib.Path) -> pathlib.Path:
    """Copies a file to the same absolute path under root, following symlinks."""
    real = os.path.realpath(src)
    dest = root / real.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        shutil.copy2(real, dest)
    if os.path.abspath(src) != real:
        link = root / os.path.abspath(src).lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to(real)
    return dest


def copy_tree(src: str, dest: pathlib.Path) -> None:
    def ignore(_dir, names):
        return [n for n in names if n in SKIP_DIRS]

    shutil.copytree(src, dest, ignore=ignore, symlinks=True, dirs_exist_ok=True)


def libraries(paths):
    """Every shared library `ldd` says these files load."""
    found = set()
    for path in paths:
        out = subprocess.run(["ldd", path], capture_output=True, text=True)
        if out.returncode != 0:
            continue  # not dynamic
        for line in out.stdout.splitlines():
            parts = line.split()
            if "=>" in parts:
                target = parts[parts.index("=>") + 1]
                if target.startswith("/"):
                    found.add(target)
            elif parts and parts[0].startswith("/"):
                found.add(parts[0])
    return found


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    context = pathlib.Path(sys.argv[1])
    shutil.rmtree(context, ignore_errors=True)
    root = context / "rootfs"
    root.mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)

    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    stdlib = sysconfig.get_paths()["stdlib"]
    packages = sysconfig.get_paths()["purelib"]
    copy_file(python, root)
    copy_tree(stdlib, root / stdlib.lstrip("/"))
    copy_tree(packages, root / "opt/kfp/site-packages")
    tools = [shutil.which("sh"), shutil.which("mktemp")]
    for tool in tools:
        if tool is None:
            print("error: sh and mktemp are needed on this machine", file=sys.stderr)
            return 1
    shell = copy_file(tools[0], root)
    (root / "bin").mkdir(exist_ok=True)
    if not (root / "bin/sh").exists():
        (root / "bin/sh").symlink_to("/" + str(shell.relative_to(root)))
    copy_file(tools[1], root)

    bin_dir = root / "usr/local/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for name in ("python3", version, "python"):
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(python)
    pip = bin_dir / "pip"
    pip.write_text('#!/bin/sh\nexec python3 -m pip "$@"\n')
    pip.chmod(0o755)

    dynamic = [python] + [os.path.realpath(t) for t in tools]
    for tree in (root / stdlib.lstrip("/"), root / "opt/kfp/site-packages"):
        dynamic += [str(p) for p in tree.rglob("*.so*") if p.is_file()]
    library_dirs = set()
    for library in libraries(dynamic):
        if str(root) in library:
            continue  # shipped inside a package, found by its own rpath
        copy_file(library, root)
        library_dirs.add(os.path.dirname(os.path.realpath(library)))
        library_dirs.add(os.path.dirname(library))
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY rootfs/ /\n"
        "ENV PATH=/usr/local/bin:/usr/bin:/bin "
        "PYTHONPATH=/opt/kfp/site-packages "
        f"LD_LIBRARY_PATH={':'.join(sorted(library_dirs))}\n"
    )
    print(f"image context in {context}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
