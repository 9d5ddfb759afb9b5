"""Prometheus metrics of one gateway, on a registry of its own (one per app)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("service.metrics")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    def __init__(self, *, ready: Callable[[], bool], draining: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_latency = Histogram(
            "llm_gateway_request_duration_seconds",
            "Request latency by route and status, until the last body byte.",
            ("route", "status"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "llm_gateway_time_to_first_token_seconds",
            "Time from request start to the first streamed token chunk from the engine.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "llm_gateway_prompt_tokens", "Prompt tokens, from engine usage.", ("route",), registry=r
        )
        self.completion_tokens = Counter(
            "llm_gateway_completion_tokens", "Completion tokens, from engine usage.", ("route",), registry=r
        )
        self.in_flight = Gauge("llm_gateway_requests_in_flight", "API requests being served.", registry=r)
        self.engine_restarts = Counter("llm_gateway_engine_restarts", "Engine restarts by the supervisor.", registry=r)
        self.rebalance_recommendations = Counter(
            "llm_gateway_rebalance_recommendations",
            "AWS rebalance recommendations seen (logged; not a drain: only an interruption notice drains).",
            registry=r,
        )
        self.engine_requests = Counter(
            "llm_gateway_engine_requests", "Requests forwarded to the engine.", ("route",), registry=r
        )
        ready_gauge = Gauge("llm_gateway_ready", "1 when /health/ready answers 200.", registry=r)
        ready_gauge.set_function(lambda: 1.0 if ready() else 0.0)
        draining_gauge = Gauge("llm_gateway_draining", "1 while draining.", registry=r)
        draining_gauge.set_function(lambda: 1.0 if draining() else 0.0)
        nvml = NvmlCollector.create()
        if nvml is not None:
            r.register(nvml)


class NvmlCollector(Collector):
    """GPU utilisation and memory through NVML; only exists when pynvml and a GPU are present."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles

    @classmethod
    def create(cls) -> NvmlCollector | None:
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
        except pynvml.NVMLError as exc:
            log.info("NVML unavailable; GPU metrics off", extra={"error": str(exc)})
            return None
        return cls(pynvml, handles) if handles else None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        utilisation = GaugeMetricFamily("llm_gateway_gpu_utilization_ratio", "GPU busy ratio (NVML).", labels=["gpu"])
        used = GaugeMetricFamily("llm_gateway_gpu_memory_used_bytes", "GPU memory used (NVML).", labels=["gpu"])
        total = GaugeMetricFamily("llm_gateway_gpu_memory_total_bytes", "GPU memory total (NVML).", labels=["gpu"])
        for index, handle in enumerate(self._handles):
            try:
                rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except self._nvml.NVMLError as exc:
                log.warning("NVML read failed", extra={"gpu": index, "error": str(exc)})
                continue
            utilisation.add_metric([str(index)], rates.gpu / 100.0)
            used.add_metric([str(index)], float(memory.used))
            total.add_metric([str(index)], float(memory.total))
        yield from (utilisation, used, total)
