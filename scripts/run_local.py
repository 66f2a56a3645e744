"""Run the mesh as local processes, from docker-compose.yml, without Docker.

docker-compose.yml stays the single source of truth: each service's command, environment,
env files, ports and healthcheck come from it. In-network URLs (http://stt:9000) are
rewritten to 127.0.0.1 and the host ports; `.env.local` selects models that PyPI packages
carry. Services whose package does not exist yet are reported, not faked.

    python scripts/run_local.py                 # run until Ctrl-C
    python scripts/run_local.py --only stt,llm-flan --exit-when-ready
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # services are looked up the way `python -m` in ROOT finds them
    sys.path.insert(0, str(ROOT))
# Compose services a voice turn goes through (the rest are views: UI, dashboard, Prometheus).
STAGE_SERVICES = [
    "audio-preprocessor",
    "stt",
    "llm-flan",
    "tts-piper",
    "tts-bark",
    "guardrails",
    "orchestrator",
]
# The base file publishes only the views; the debug overlay gives each stage its host port.
DEFAULT_COMPOSE = ["docker-compose.yml", "docker-compose.debug.yml"]
# SIGTERM grace before SIGKILL, and the wait for SIGKILLed groups to go: together they keep a
# stop under 15 s even with a probe (2 s) in flight when the signal came.
STOP_GRACE_S = 8.0
KILL_WAIT_S = 3.0
COLORS = ["36", "32", "33", "35", "34", "91", "92", "93", "94", "95", "96"]


@dataclass
class ServiceSpec:
    """What the runner needs to know about one compose service."""

    name: str
    module: str | None
    internal_port: int | None
    host_port: int | None
    env: dict[str, str]
    health_path: str
    depends_on: list[str]
    profiles: list[str]
    image: str | None


@dataclass
class Running:
    """A started service process and what we know of its state."""

    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    started: float
    ready_at: float | None = None
    last_status: str = "starting"
    log_tail: list[str] = field(default_factory=list)


def parse_env_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines (comments and blanks ignored, no shell expansion)."""
    env: dict[str, str] = {}
    if not path.exists():
        return env
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Expand compose-style ${VAR}, ${VAR:-default}; ${VAR:?msg} is left to the service."""

    def sub(m: re.Match[str]) -> str:
        got = env.get(m.group(1), "")
        if got or m.group(2) is None:
            return got
        return m.group(3) if "-" in m.group(2) else ""

    return _INTERP.sub(sub, value)


def _ports(svc: dict[str, Any]) -> tuple[int | None, int | None]:
    """(internal port, host port) from `ports` ("[ip:]host:internal"), else `expose`."""
    for entry in svc.get("ports", []) or []:
        # Interpolated first: "${BIND_ADDRESS:-127.0.0.1}:8220:8200" holds colons of its own.
        parts = _interpolate(str(entry), dict(os.environ)).split(":")
        if len(parts) >= 2:
            return int(parts[-1].split("/")[0]), int(parts[-2])
    for entry in svc.get("expose", []) or []:
        return int(str(entry).split("/")[0]), None
    return None, None


def read_compose(files: list[Path]) -> dict[str, dict[str, Any]]:
    """Services of a compose file and its overlays, merged the way the runner needs.

    Later files override a service's keys; `ports` and `environment` of an overlay add to
    the earlier ones (as compose merges them). Tags such as `!override` (compose's merge
    directives) are read as plain values.
    """
    services: dict[str, dict[str, Any]] = {}
    for path in files:
        doc = yaml.load(path.read_text(), Loader=_ComposeLoader)  # a SafeLoader subclass
        for name, svc in (doc.get("services") or {}).items():
            merged = services.setdefault(name, {})
            for key, value in (svc or {}).items():
                if key == "environment" and isinstance(value, dict):
                    merged[key] = {**(merged.get(key) or {}), **value}
                elif key == "ports":
                    merged[key] = [*(merged.get(key) or []), *value]
                else:
                    merged[key] = value
    return services


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader that reads compose's `!reset`/`!override` tags as the value they tag."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_ComposeLoader.add_multi_constructor("!", _untagged)


def _env_file_paths(svc: dict[str, Any]) -> list[str]:
    """A service's env files; optional ones (`required: false`, i.e. `.env`) are left out.

    `.env` holds the compose secrets (API keys, mesh token): the local runner stays keyless
    on 127.0.0.1, so it does not read it.
    """
    files = svc.get("env_file") or []
    out = []
    for entry in [files] if isinstance(files, str | dict) else files:
        if isinstance(entry, dict):
            if entry.get("required", True):
                out.append(str(entry["path"]))
        else:
            out.append(str(entry))
    return out


def _module(svc: dict[str, Any]) -> str | None:
    cmd = svc.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    if "-m" in cmd:
        return str(cmd[cmd.index("-m") + 1])
    return None


def _health_path(svc: dict[str, Any]) -> str:
    """The HTTP path a compose healthcheck probes: our kit's probe argument or a URL's path."""
    test = [str(t) for t in (svc.get("healthcheck") or {}).get("test") or []]
    for i, item in enumerate(test):
        if item.startswith(("http://", "https://")):
            return urlsplit(item).path or "/"
        if i and test[i - 1] in ("services.kit.healthcheck", "services/kit/healthcheck.py"):
            return item
    return "/health/ready"


def load_specs(
    compose: Path | list[Path],
    env_files: list[Path],
    profile_env: Path | None,
    host_ports: dict[str, int] | None = None,
) -> list[ServiceSpec]:
    """Read compose services and build their local environment with rewritten URLs.

    `compose` is one file or a file and its overlays (the host ports of the stage services
    live in docker-compose.debug.yml). `host_ports` moves services to other local ports
    (tests use free ones).
    """
    files = [compose] if isinstance(compose, Path) else compose
    services = read_compose(files)
    host_ports = host_ports or {}
    url_map: dict[str, str] = {}
    for name, svc in services.items():
        internal, host = _ports(svc)
        host = host_ports.get(name, host)
        if internal and host:
            url_map[f"http://{name}:{internal}"] = f"http://127.0.0.1:{host}"
    profile = parse_env_file(profile_env) if profile_env else {}
    specs = []
    for name, svc in services.items():
        env: dict[str, str] = {}
        for name_ in _env_file_paths(svc):
            env.update(parse_env_file(files[0].parent / name_))
        for f in env_files:
            env.update(parse_env_file(f))
        for key, value in (svc.get("environment") or {}).items():
            env[str(key)] = _interpolate(
                str(value if value is not None else ""), {**os.environ, **env}
            )
        env.update(profile)
        for key, value in env.items():
            for docker_url, local_url in url_map.items():
                if value.startswith(docker_url):
                    env[key] = local_url + value[len(docker_url) :]
        internal, host = _ports(svc)
        host = host_ports.get(name, host)
        if host:
            env["PORT"] = str(host)
        env["HOST"] = "127.0.0.1"
        # A second published port is the service's Wyoming endpoint: it moves to its host port.
        _, wyoming = _ports({"ports": (svc.get("ports") or [])[1:]})
        if wyoming:
            env["WYOMING_PORT"] = str(wyoming)
        deps = svc.get("depends_on") or []
        specs.append(
            ServiceSpec(
                name=name,
                module=_module(svc),
                internal_port=internal,
                host_port=host,
                env=env,
                health_path=_health_path(svc),
                depends_on=list(deps.keys() if isinstance(deps, dict) else deps),
                profiles=list(svc.get("profiles") or []),
                image=svc.get("image"),
            )
        )
    return specs


def probe(url: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """GET a URL; return (status or None, short body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read(300).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(300).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc)


class Mesh:
    """Start, watch and stop the compose services as local processes."""

    def __init__(
        self,
        specs: list[ServiceSpec],
        *,
        only: set[str] | None = None,
        skip: set[str] | None = None,
        profiles: set[str] | None = None,
        out: TextIO = sys.stdout,
        log_dir: Path | None = None,
        quiet_logs: bool = False,
        extra_env: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.extra_env = extra_env or {}
        self.only = only
        self.skip = skip or set()
        self.profiles = profiles or set()
        self.out = out
        self.log_dir = log_dir
        self.quiet_logs = quiet_logs
        self.running: dict[str, Running] = {}
        self.reported: dict[str, str] = {}
        self._lock = threading.Lock()
        self._tmp = Path(tempfile.mkdtemp(prefix="mesh-"))

    def selected(self) -> list[ServiceSpec]:
        """Services this run should start, in compose order."""
        chosen = []
        for spec in self.specs.values():
            if self.only is not None and spec.name not in self.only:
                continue
            if spec.name in self.skip:
                continue
            if spec.profiles and not (set(spec.profiles) & self.profiles):
                continue
            chosen.append(spec)
        return chosen

    def url(self, name: str) -> str:
        """Local base URL of a service."""
        return f"http://127.0.0.1:{self.specs[name].host_port}"

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def _command(self, spec: ServiceSpec) -> list[str] | None:
        if spec.module:
            if (
                importlib.util.find_spec(spec.module.split(".")[0]) is None
                or importlib.util.find_spec(spec.module) is None
            ):
                self.reported[spec.name] = f"not implemented yet (no module {spec.module})"
                return None
            return [sys.executable, "-m", spec.module]
        if spec.name == "prometheus":
            binary = shutil.which("prometheus")
            if binary is None:
                self.reported[spec.name] = (
                    "skipped: prometheus is not installed (apt-get install prometheus)"
                )
                return None
            config = self._prometheus_config()
            return [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self._tmp / 'prom'}",
                f"--web.listen-address=127.0.0.1:{spec.host_port}",
                "--log.level=warn",
            ]
        self.reported[spec.name] = f"skipped: image {spec.image} has no local equivalent"
        return None

    def _prometheus_config(self) -> Path:
        # Generated from the compose services so local targets follow any port remapping;
        # job names are the compose service names, as in config/prometheus.yml.
        jobs = []
        for spec in self.selected():
            if spec.module and spec.host_port and spec.health_path.startswith("/health"):
                jobs.append(
                    {
                        "job_name": spec.name,
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [f"127.0.0.1:{spec.host_port}"]}],
                    }
                )
        doc = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "scrape_configs": jobs,
        }
        path = self._tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def start(self, name: str) -> bool:
        """Start one service; False if it has no local command."""
        spec = self.specs[name]
        cmd = self._command(spec)
        if cmd is None:
            return False
        env = {**os.environ, **spec.env, **self.extra_env.get(name, {}), "PYTHONUNBUFFERED": "1"}
        env.setdefault("HF_HUB_OFFLINE", "1")
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        run = Running(spec=spec, proc=proc, started=time.monotonic())
        self.running[name] = run
        threading.Thread(target=self._pump, args=(run,), daemon=True).start()
        return True

    def _pump(self, run: Running) -> None:
        color = COLORS[list(self.specs).index(run.spec.name) % len(COLORS)]
        prefix = (
            f"\033[{color}m{run.spec.name:>20s} |\033[0m "
            if self.out.isatty()
            else f"{run.spec.name:>20s} | "
        )
        log_file = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = (self.log_dir / f"{run.spec.name}.log").open("ab")
        assert run.proc.stdout is not None
        for raw in iter(run.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            run.log_tail = ([*run.log_tail, line])[-20:]
            if log_file:
                log_file.write(raw)
                log_file.flush()
            if not self.quiet_logs:
                self._say(prefix + line)
        if log_file:
            log_file.close()

    def status(self, name: str) -> str:
        """One word-ish status for a started service: ready, loading, exited (code), ..."""
        run = self.running[name]
        code = run.proc.poll()
        if code is not None:
            return f"exited ({code})"
        status, body = probe(self.url(name) + run.spec.health_path)
        if status == 200:
            if run.ready_at is None:
                run.ready_at = time.monotonic()
            return "ready"
        if status is None:
            return "starting"
        reason = ""
        with contextlib.suppress(ValueError):
            reason = str(json.loads(body).get("reason", ""))
        return f"not ready: {reason}" if reason else f"HTTP {status}"

    def start_all(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Start every selected service at once (loading overlaps; clients retry)."""
        for spec in self.selected():
            if should_stop():  # a stop signal came in: start nothing more
                return
            self.start(spec.name)
        for name, why in self.reported.items():
            if self.only is None or name in self.only:
                self._say(f"[runner] {name}: {why}")

    def wait_ready(
        self,
        timeout: float = 600.0,
        names: list[str] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Show progress until every started service is ready; False on timeout, exit or stop."""
        names = names or list(self.running)
        deadline = time.monotonic() + timeout
        last_line = ""
        while True:
            states: dict[str, str] = {}
            for n in names:
                if should_stop():  # checked per probe: one probe waits at most 2 s
                    return False
                states[n] = self.status(n)
            done = [n for n, s in states.items() if s == "ready"]
            dead = [n for n, s in states.items() if s.startswith("exited")]
            line = f"[runner] ready {len(done)}/{len(names)}" + "".join(
                f" | {n}: {s}" for n, s in states.items() if s != "ready"
            )
            if line != last_line:
                self._say(line[:400])
                last_line = line
            if dead:
                for n in dead:
                    self._say(
                        f"[runner] {n} exited; last lines:\n  "
                        + "\n  ".join(self.running[n].log_tail[-8:])
                    )
                return False
            if len(done) == len(names):
                for n in names:
                    run = self.running[n]
                    took = (run.ready_at or time.monotonic()) - run.started
                    self._say(f"[runner] {n:>20s} ready in {took:5.1f}s at {self.url(n)}")
                return True
            if time.monotonic() > deadline:
                return False
            _sleep_unless(0.5, should_stop)

    def stop(self, name: str, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        """Stop one service (its whole process group)."""
        run = self.running.get(name)
        if run is None or run.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, sig)
        try:
            run.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(5)

    def stop_all(self, grace: float = STOP_GRACE_S, force: StopRequest | None = None) -> None:
        """Stop every service: SIGTERM to all, SIGKILL whatever is left after `grace` seconds.

        Waits by polling, never in a blocking wait, so a second signal (`force.forced`) cuts
        the grace short; the whole stop takes at most `grace` + KILL_WAIT_S seconds.
        """
        for run in self.running.values():
            _signal_group(run.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self._alive() and time.monotonic() < deadline:
            if force is not None and force.forced:
                break
            time.sleep(0.05)
        # The whole group, even when its leader has exited: workers it forked may still serve.
        for run in self.running.values():
            _signal_group(run.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT_S
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _alive(self) -> bool:
        return any(run.proc.poll() is None for run in self.running.values())

    def pids(self) -> list[int]:
        """Process-group ids of every started service (each is its group's leader)."""
        return [run.proc.pid for run in list(self.running.values())]


def _signal_group(pgid: int, sig: int) -> None:
    # ProcessLookupError: the group is gone already; PermissionError: its id was reused.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class StopRequest:
    """What Ctrl-C / SIGTERM asked for, written by the signal handler, read by the main loop.

    The handler takes no lock (no Event.set, no print, no Popen.wait): Python runs it in the
    main thread between bytecodes, so if it waited on a lock the main thread holds, as
    Event.set() inside Event.wait() did, the runner deadlocked. It only counts signals;
    from the second one on it also sends SIGKILL to every service group itself (os.killpg
    is a bare system call), so repeated signals can only make the stop faster.
    """

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.count = 0

    @property
    def requested(self) -> bool:
        """True once any stop signal has arrived."""
        return self.count > 0

    @property
    def forced(self) -> bool:
        """True once a second stop signal has arrived."""
        return self.count > 1

    def handle(self, signum: int, _frame: object) -> None:
        """Signal handler: count; escalate to SIGKILL from the second signal on."""
        self.count += 1
        if self.count > 1:
            for pgid in self.mesh.pids():
                _signal_group(pgid, signal.SIGKILL)

    def install(self) -> None:
        """Route SIGINT and SIGTERM here."""
        signal.signal(signal.SIGINT, self.handle)
        signal.signal(signal.SIGTERM, self.handle)


def _sleep_unless(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep up to `seconds`, waking within 0.1 s of a stop request."""
    end = time.monotonic() + seconds
    while not should_stop() and (left := end - time.monotonic()) > 0:
        time.sleep(min(0.1, left))


def build_mesh(args: argparse.Namespace, out: TextIO = sys.stdout) -> Mesh:
    """Create a Mesh from command-line style options."""
    profile_env = None if args.profile_env in ("", "none") else ROOT / args.profile_env
    specs = load_specs([ROOT / c for c in args.compose or DEFAULT_COMPOSE], [], profile_env)
    only = set(args.only.split(",")) if args.only else None
    skip = set(args.skip.split(",")) if args.skip else set()
    return Mesh(
        specs,
        only=only,
        skip=skip,
        profiles=set(args.profile or []),
        out=out,
        log_dir=Path(args.log_dir) if args.log_dir else None,
        quiet_logs=args.quiet,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: prepare models, start, wait, then run until Ctrl-C (or exit when ready)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--compose",
        action="append",
        help="compose file, then overlays (repeat); default: "
        + " + ".join(DEFAULT_COMPOSE)
        + " (the stage services' host ports)",
    )
    ap.add_argument(
        "--profile-env", default=".env.local", help="local env profile ('none' to skip)"
    )
    ap.add_argument("--only", help="comma-separated compose services to start")
    ap.add_argument("--skip", help="comma-separated compose services not to start")
    ap.add_argument("--profile", action="append", help="compose profiles to enable (e.g. discord)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for readiness")
    ap.add_argument("--exit-when-ready", action="store_true", help="stop once all are ready")
    ap.add_argument("--log-dir", help="also write each service's output to DIR/<service>.log")
    ap.add_argument("--quiet", action="store_true", help="do not echo service logs")
    ap.add_argument("--no-prepare", action="store_true", help="skip scripts/prepare_models.py")
    args = ap.parse_args(argv)
    if not args.no_prepare:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "prepare_models.py")], check=False)
    mesh = build_mesh(args)
    stop = StopRequest(mesh)
    stop.install()

    def stopping() -> bool:
        return stop.requested

    ok = False
    try:
        mesh.start_all(stopping)
        if not mesh.running:
            print("[runner] nothing to start", flush=True)
            return 1
        ok = mesh.wait_ready(args.timeout, should_stop=stopping)
        if stop.requested:
            ok = True  # asked to stop: not a failure to start
        elif not ok:
            print("[runner] not every service became ready", flush=True)
        elif not args.exit_when_ready:
            print("[runner] mesh is up; Ctrl-C stops it", flush=True)
            while not stop.requested:
                for name, run in mesh.running.items():
                    code = run.proc.poll()
                    if code is not None and run.last_status != "exited":
                        run.last_status = "exited"
                        print(f"[runner] {name} exited with code {code}", flush=True)
                _sleep_unless(2.0, stopping)
    finally:
        print("[runner] stopping…", flush=True)
        mesh.stop_all(force=stop)
        # Nothing is left to stop: later signals of a burst must not turn a clean exit into
        # death by signal while the interpreter shuts down (it restores default handlers).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("[runner] stopped", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
