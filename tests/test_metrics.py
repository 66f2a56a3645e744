"""Every service's metrics: built through kit.metrics.MetricSet; the dashboard's names exist."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import pkgutil

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import services
from services.dashboard import data
from services.kit.concurrency import WorkLimiter
from services.kit.metrics import LATENCY_BUCKETS, MetricSet


def _metric_sets() -> list[type[MetricSet]]:
    """Every MetricSet subclass in services/*/metrics.py (imported here to be found)."""
    for mod in pkgutil.iter_modules(services.__path__):
        if importlib.util.find_spec(f"services.{mod.name}.metrics"):
            importlib.import_module(f"services.{mod.name}.metrics")
    found, todo = [], [MetricSet]
    while todo:
        subclasses = todo.pop().__subclasses__()
        found += [c for c in subclasses if c.__module__.startswith("services.")]
        todo += subclasses
    return found


def _build(cls: type[MetricSet], registry: CollectorRegistry) -> MetricSet:
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, object] = {}
    if "limiter" in params:
        kwargs["limiter"] = WorkLimiter(1, 2)
    if "service" in params:
        kwargs["service"] = "test"
    return cls(registry, **kwargs)


def _exposed() -> set[str]:
    names: set[str] = set()
    for cls in _metric_sets():
        registry = CollectorRegistry()
        _build(cls, registry)
        for family in registry.collect():
            names |= {sample.name for sample in family.samples} | {family.name}
            # A family without samples yet (labelled, none created) still exposes these:
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.add(family.name + "_bucket")
    return names


def test_every_metrics_module_declares_its_metrics_through_a_metric_set():
    defining = {cls.__module__ for cls in _metric_sets()}
    for mod in pkgutil.iter_modules(services.__path__):
        name = f"services.{mod.name}.metrics"
        if mod.name == "kit" or not importlib.util.find_spec(name):
            continue
        module = importlib.import_module(name)
        assert name in defining, f"{name} defines no MetricSet"
        direct = {"Counter", "Gauge", "Histogram"} & set(vars(module))
        assert not direct, f"{name} builds {direct} itself instead of through MetricSet"


@pytest.mark.parametrize(
    "name",
    [
        data.HTTP_REQUESTS,
        data.HTTP_LATENCY + "_bucket",
        data.STAGE_REQUESTS,
        data.STAGE_LATENCY + "_bucket",
        data.FALLBACKS,
        data.GUARD_BLOCKS,
    ],
)
def test_the_dashboard_reads_metrics_that_exist(name):
    assert name in _exposed()


def test_metric_set_builds_on_its_registry_with_latency_buckets_by_default():
    registry = CollectorRegistry()
    metrics = MetricSet(registry)
    hist = metrics.histogram("demo_seconds", "A demo latency.", ["route"])
    hist.labels("/x").observe(0.3)
    metrics.counter("demo_events", "Demo events.").inc(2)
    text = generate_latest(registry).decode()
    assert "demo_events_total 2.0" in text
    les = [line for line in text.splitlines() if line.startswith("demo_seconds_bucket")]
    assert len(les) == len(LATENCY_BUCKETS) + 1  # + Inf
    assert 'demo_seconds_bucket{le="0.25",route="/x"} 0.0' in text
    assert 'demo_seconds_bucket{le="0.5",route="/x"} 1.0' in text
    # No registry: the metrics work but are registered nowhere (no duplicate-name clash).
    MetricSet(None).counter("demo_events", "Demo events.").inc()


async def test_watch_limiter_reports_queue_depth_and_running_jobs():
    registry = CollectorRegistry()
    limiter = WorkLimiter(1, 4, "demo")
    MetricSet(registry).watch_limiter(limiter, "demo", "Jobs")
    release = asyncio.Event()
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def job() -> None:
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(5)

    tasks = [asyncio.create_task(limiter.run(job)) for _ in range(3)]
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    assert registry.get_sample_value("demo_running") == 1
    assert registry.get_sample_value("demo_queue_depth") == 2
    release.set()
    await asyncio.gather(*tasks)
    assert registry.get_sample_value("demo_running") == 0
    assert registry.get_sample_value("demo_queue_depth") == 0
