"""Print the pip requirements of pyproject.toml, one per line, for the Dockerfile's layers.

    python image_deps.py                          # core dependencies
    python image_deps.py --extras stt,tts --no-core

pyproject.toml stays the one list of dependencies: the Dockerfile installs the core ones in a
layer every image shares, then each service's extras, then the project itself with --no-deps.
Standard library only (it runs before anything is installed).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str], core: bool) -> list[str]:
    """Core dependencies (if `core`) then each named extra's, without duplicates."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    out: list[str] = list(project["dependencies"]) if core else []
    for extra in extras:
        out += [r for r in optional[extra] if r not in out]
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the requirements to stdout."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    ap.add_argument("--extras", default="", help="comma-separated extras")
    ap.add_argument("--no-core", action="store_true", help="leave the core dependencies out")
    args = ap.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    for req in requirements(args.pyproject, extras, core=not args.no_core):
        print(req)
    return 0


if __name__ == "__main__":
    sys.exit(main())
