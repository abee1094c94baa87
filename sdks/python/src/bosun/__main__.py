"""``python -m bosun build APP -o OUT.wasm``: componentizes the module ``APP``
against the WIT this SDK ships, with the pinned componentize-py (install it
with ``pip install 'bosun-sdk[build]'``)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from . import wit_dir

# bosun's `reconciler` world plus wasi:http's outgoing-handler (wit/world.wit).
WORLD = "reconciler-http"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bosun")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a reconciler component")
    build.add_argument("app", help="the module defining WitWorld = bosun.export(...), e.g. app")
    build.add_argument("-o", "--output", required=True, help="the .wasm file to write")
    build.add_argument(
        "-p", "--python-path", action="append", default=[],
        help="a directory to find the app and its modules in (repeatable; default: .)",
    )
    args = parser.parse_args(argv)
    try:
        from componentize_py import script
    except ImportError:
        print(
            "componentize-py is not installed; pip install 'bosun-sdk[build]'",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="bosun-build-") as staging:
        # componentize-py bundles what it finds on the paths it is given, not
        # the environment's site-packages; handing it the SDK alone keeps
        # pip, componentize-py itself and their native code out.
        shutil.copytree(
            Path(__file__).parent,
            Path(staging) / "bosun",
            ignore=shutil.ignore_patterns("__pycache__", "__main__.py"),
        )
        paths = [arg for p in [*(args.python_path or ["."]), staging] for arg in ("-p", p)]
        # componentize-py's entry point reads sys.argv, as its own script does.
        sys.argv = [
            "componentize-py", "-d", wit_dir(), "-w", WORLD,
            "componentize", args.app, *paths, "-o", args.output,
        ]
        script()
    return 0


if __name__ == "__main__":
    sys.exit(main())
