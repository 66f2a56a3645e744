"""What the orchestrator holds once its config, history store and clients are up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.kit.deps import provide, provide_settings
from services.orchestrator.balancer import Balancer
from services.orchestrator.breaker import BreakerBoard
from services.orchestrator.pipeline import Runner
from services.orchestrator.settings import Settings


class LiveSessions:
    """Realtime sessions open now, against `ORCH_REALTIME_MAX_SESSIONS`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def try_open(self) -> bool:
        """Take a place; False when every place is taken."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def close(self) -> None:
        """Give a place back."""
        self.open -= 1


@dataclass(frozen=True)
class Deps:
    """The orchestrator's dependencies."""

    settings: Settings
    service: Runner  # the pipelines, on the current config snapshot
    breakers: BreakerBoard
    balancer: Balancer | None  # None unless ORCH_BALANCE_REPLICAS
    live: LiveSessions


DepsDep = Annotated[Deps, Depends(provide(Deps))]
SettingsDep = Annotated[Settings, Depends(provide_settings(Settings))]
