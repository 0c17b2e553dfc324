"""``python -m lmhost.clemcore``: set up a folder for clemcore runs on lmhost.

``install [DIR] [--force]``
    Copy ``lmhost_api.py`` (the file clemcore discovers as the backend
    ``lmhost``) into DIR, default the current folder. A different file of that
    name is left alone unless ``--force``.
``registry LMHOST_MODEL [--name NAME]``
    Print a clemcore ``model_registry.json`` (a list of one entry) that runs
    LMHOST_MODEL through lmhost under the clemcore name NAME (default: the
    same name; lmhost skips clemcore's ``lmhost`` entries when it looks up).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

API_FILE = "lmhost_api.py"
SOURCE = Path(__file__).resolve().with_name(API_FILE)


def install(directory: Path, force: bool = False) -> int:
    if not directory.is_dir():
        print(f"error: {directory} is not a folder", file=sys.stderr)
        return 2
    target = directory / API_FILE
    source = SOURCE.read_bytes()
    if target.is_file() and target.read_bytes() == source:
        print(f"{target.resolve()} is already installed (unchanged)")
        return 0
    if target.exists() and not force:
        print(
            f"error: {target} exists and differs from lmhost's {API_FILE}; "
            f"pass --force to overwrite it",
            file=sys.stderr,
        )
        return 1
    existed = target.exists()
    shutil.copyfile(SOURCE, target)
    print(f"{'overwrote' if existed else 'installed'} {target.resolve()} "
          f"(clemcore backend 'lmhost'; run clem from {directory.resolve()})")
    return 0


def registry(lmhost_model: str, name: str | None) -> int:
    entry: dict = {"model_name": name or lmhost_model, "backend": "lmhost"}
    if entry["model_name"] != lmhost_model:
        entry["model_config"] = {"lmhost_model": lmhost_model}
    print(json.dumps([entry], indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmhost.clemcore",
                                     description="lmhost as a clemcore backend")
    commands = parser.add_subparsers(dest="command", required=True)
    p_install = commands.add_parser("install", help=f"copy {API_FILE} into a folder clem runs from")
    p_install.add_argument("dir", nargs="?", default=".", type=Path, help="target folder (default: current)")
    p_install.add_argument("--force", action="store_true", help=f"overwrite a different {API_FILE}")
    p_registry = commands.add_parser("registry", help="print a model_registry.json entry for an lmhost model")
    p_registry.add_argument("lmhost_model", help="the lmhost registry name")
    p_registry.add_argument("--name", help="the clemcore model name (default: LMHOST_MODEL)")
    args = parser.parse_args(argv)
    if args.command == "install":
        return install(args.dir, force=args.force)
    return registry(args.lmhost_model, args.name)


if __name__ == "__main__":
    sys.exit(main())
