"""Print live/ready status of every compose service on its host port."""

from __future__ import annotations

import sys
from pathlib import Path

from scripts.run_local import DEFAULT_COMPOSE, ROOT, load_specs, probe


def main() -> int:
    """Probe each service; exit 1 if any is not ready."""
    # The local runner's ports: stage services are on the host only with the debug overlay.
    specs = load_specs([ROOT / name for name in DEFAULT_COMPOSE], [], None)
    bad = 0
    for spec in specs:
        if spec.host_port is None:
            continue
        status, body = probe(f"http://127.0.0.1:{spec.host_port}{spec.health_path}")
        ok = status == 200
        bad += not ok
        detail = "" if ok else f"  {body[:120]}"
        print(
            f"{spec.name:22s} :{spec.host_port:<5d} {'ready' if ok else (status or 'down')}{detail}"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
