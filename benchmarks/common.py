"""What every benchmark report shares: its command line, its opening lines and its writer."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def arguments(doc: str | None, name: str, quick: str) -> argparse.ArgumentParser:
    """`--quick` (help: what it cuts) and `--out` (default docs/bench/<name>.md)."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / f"{name}.md")
    return parser


def utc_now() -> str:
    """The report's date: minutes, UTC."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine(load_at_start: float | None = None) -> str:
    """Platform, CPU, cores and the 1-min load average (at start when given, and now)."""
    now = os.getloadavg()[0]
    load = f"{load_at_start:.1f} at start, {now:.1f} at end" if load_at_start else f"{now:.1f}"
    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, os.cpu_count()={os.cpu_count()}, shared with "
        f"other jobs while measured (1-min load average {load})"
    )


def header(title: str, command: str, load_at_start: float | None = None) -> list[str]:
    """The lines every report opens with: its title, command, machine and date."""
    return [
        f"## {title}",
        "",
        f"- Command: {command}",
        f"- Machine: {machine(load_at_start)}",
        f"- Date: {utc_now()}",
    ]


def write_report(out: Path, text: str) -> None:
    """Print the report and write it to `out` (docs/bench/<name>.md)."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
