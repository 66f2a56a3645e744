"""Config snapshots and hot reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.orchestrator.config import (
    ConfigError,
    EffectivePipeline,
    Flags,
    LoadedConfig,
    ProviderConfig,
    parse_config,
)
from services.orchestrator.metrics import OrchestratorMetrics

log = logging.getLogger("orchestrator.config")


@dataclass(frozen=True)
class Runtime:
    """One immutable config version; a run keeps the snapshot it started with."""

    version: int
    loaded: LoadedConfig
    loaded_at: float

    @property
    def providers(self) -> dict[str, ProviderConfig]:
        """Providers by name."""
        return self.loaded.file.providers

    def pipeline(self, name: str) -> EffectivePipeline:
        """The named pipeline (KeyError when unknown)."""
        return self.loaded.pipelines[name]


class ConfigManager:
    """Loads, validates and swaps the pipeline config; watches the file for changes."""

    def __init__(
        self,
        path: Path,
        flags: Flags,
        metrics: OrchestratorMetrics,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.flags = flags
        self.metrics = metrics
        # ${VAR:-default} in the YAML is expanded from the process environment by design.
        self.env = env if env is not None else os.environ
        self._runtime: Runtime | None = None
        self._lock = asyncio.Lock()
        self._stamp: tuple[float, int] | None = None
        self.last_error: str | None = None

    @property
    def current(self) -> Runtime:
        """The config new runs use."""
        if self._runtime is None:
            raise RuntimeError("config not loaded")
        return self._runtime

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def _build(self, version: int) -> Runtime:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        loaded = parse_config(text, self.env, self.flags)
        return Runtime(version, loaded, time.time())

    async def load(self, reason: str, only_if_changed: bool = False) -> Runtime:
        """Validate the file and swap it in; on ConfigError the old config stays."""
        async with self._lock:
            stamp = self._stat()
            if only_if_changed and self._runtime is not None and stamp == self._stamp:
                # The watcher saw a change, but an admin reload took the lock first and
                # loaded the same file: loading it again would only bump the version.
                return self._runtime
            version = (self._runtime.version + 1) if self._runtime else 1
            try:
                # In a thread: reading and validating the file must not stall /health/live
                # or requests served on the old config.
                runtime = await asyncio.to_thread(self._build, version)
            except ConfigError as exc:
                self.last_error = str(exc)
                self._stamp = stamp  # do not retry the same broken file every poll
                self.metrics.reloads.labels("rejected").inc()
                log.error(
                    "config rejected, keeping the previous one: %s",
                    exc,
                    extra={
                        "path": str(self.path),
                        "reason": reason,
                        "kept_version": self._runtime.version if self._runtime else None,
                    },
                )
                raise
            self._stamp = stamp
            self.last_error = None
            previous = self._runtime
            self._runtime = runtime
            self.metrics.reloads.labels("ok").inc()
            self.metrics.config_version.set(version)
            self._log_composition(runtime, reason, previous)
            return runtime

    @staticmethod
    def _log_composition(runtime: Runtime, reason: str, previous: Runtime | None) -> None:
        file = runtime.loaded.file
        log.info(
            "config v%d loaded (%s): active pipeline %s, prompt %s",
            runtime.version,
            reason,
            file.active_pipeline,
            file.system_prompt.version,
            extra={
                "version": runtime.version,
                "reason": reason,
                "digest": runtime.loaded.digest,
                "active_pipeline": file.active_pipeline,
                "prompt_version": file.system_prompt.version,
                "previous_version": previous.version if previous else None,
            },
        )
        for name, pipe in runtime.loaded.pipelines.items():
            log.info(
                "pipeline %s: %s",
                name,
                pipe.composition(),
                extra={
                    "pipeline": name,
                    "composition": pipe.composition(),
                    "dropped": list(pipe.dropped),
                },
            )

    def changed_on_disk(self) -> bool:
        """Whether the file's mtime or size differs from the last load attempt."""
        return self._stat() != self._stamp

    async def watch(self, interval_s: float) -> None:
        """Poll the file and reload when it changes (a stat per interval is cheap)."""
        while True:
            await asyncio.sleep(interval_s)
            if self.changed_on_disk():
                with contextlib.suppress(ConfigError):  # already logged and counted in load()
                    await self.load("file changed", only_if_changed=True)
