"""Run every benchmark (benchmarks/bench_*.py) and assemble docs/benchmarks.md."""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (each writes docs/bench/<name>.md) and join their sections."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", help="comma-separated benchmark names (e.g. stt,llm)")
    ap.add_argument("--assemble-only", action="store_true", help="just join docs/bench/*.md")
    args = ap.parse_args(argv)
    failed = []
    if not args.assemble_only:
        for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
            name = script.stem.removeprefix("bench_")
            if args.only and name not in args.only.split(","):
                continue
            cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
            print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
            if subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0:
                failed.append(name)
    sections = [p.read_text().strip() for p in sorted((ROOT / "docs" / "bench").glob("*.md"))]
    header = (
        "# Benchmarks\n\n"
        "Produced by `make bench` (`python scripts/bench_all.py`); each section below comes from\n"
        "`benchmarks/bench_<name>.py` and states its own command, machine and date. Ratios are\n"
        "measured within one run because the machines are shared and noisy.\n\n"
        f"Assembled {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}"
        f" ({platform.machine()}, {platform.python_version()}).\n"
    )
    (ROOT / "docs" / "benchmarks.md").write_text(header + "\n" + "\n\n".join(sections) + "\n")
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
