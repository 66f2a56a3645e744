"""One shape for every service: a frozen dependencies object, one typed way to reach it.

Each service declares, in its own `deps.py`:

    @dataclass(frozen=True)
    class Deps:
        settings: Settings
        service: Transcriber            # the layer between routes and engine (service.py)

    DepsDep = Annotated[Deps, Depends(provide(Deps))]
    SettingsDep = Annotated[Settings, Depends(provide_settings(Settings))]

Its startup hook builds the object once the engine has passed its self-check and hands it
to `ServiceState.serve`; routes and the Wyoming server take `DepsDep` (or call
`state.require(Deps)`). Until `serve` runs the dependency answers 503 with the reason, so
no route ever sees a half-loaded service. `SettingsDep` is for the few routes that answer
while the service loads (e.g. `/v1/models`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import HTTPConnection

from services.kit.app import get_state
from services.kit.settings import ServiceSettings

D = TypeVar("D")
S = TypeVar("S", bound=ServiceSettings)


def provide(kind: type[D]) -> Callable[[HTTPConnection], Awaitable[D]]:
    """A FastAPI dependency returning the app's `kind` object, or 503 while it is loading."""

    # `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per
    # request on the hot path.
    async def dependency(conn: HTTPConnection) -> D:
        return get_state(conn).require(kind)

    dependency.__name__ = f"provide_{kind.__name__}"
    return dependency


def provide_settings(kind: type[S]) -> Callable[[HTTPConnection], Awaitable[S]]:
    """A FastAPI dependency returning the app's settings as the service's own class."""

    async def dependency(conn: HTTPConnection) -> S:
        settings = get_state(conn).settings
        if not isinstance(settings, kind):
            raise TypeError(f"app settings are {type(settings).__name__}, not {kind.__name__}")
        return settings

    dependency.__name__ = f"provide_{kind.__name__}"
    return dependency
