"""Print live/ready status of every compose service on its host port."""

from __future__ import annotations

import sys
from pathlib import Path

from scripts.run_local import DEFAULT_COMPOSE, ROOT, _health_path, _ports, probe, read_compose


def main() -> int:
    """Probe each service; exit 1 if any is not ready."""
    # The local runner's ports: stage services are on the host only with the debug overlay.
    services = read_compose([ROOT / name for name in DEFAULT_COMPOSE])
    bad = 0
    for name, svc in services.items():
        _, host = _ports(svc)
        if host is None:
            continue
        path = _health_path(svc)
        status, body = probe(f"http://127.0.0.1:{host}{path}")
        ok = status == 200
        bad += not ok
        detail = "" if ok else f"  {body[:120]}"
        print(f"{name:22s} :{host:<5d} {'ready' if ok else (status or 'down')}{detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
