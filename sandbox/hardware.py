"""Hardware limits a network must meet to be deployable, checked on the host after scoring.

A candidate over a limit is a failure of its own kind (`over_limit`) whose message carries the
numbers, while its validation accuracy is still recorded: the report's Pareto front (accuracy vs.
size and latency) needs every measured point, not only the ones that fit.

Who measures: with a limit on, the trained net is exported and measured again in a fresh sandbox
without the candidate's code (the verifier), and peak memory is read from the job's cgroup
where the backend has one; a figure only the candidate's own process reported fails an active
limit as "cannot be verified". What each limit compares against:
- `params`: trainable and frozen parameters, counted once.
- `flops`: forward FLOPs for one image (torch.utils.flop_counter).
- `peak_memory_mb`: host memory, the peak of the job's memory cgroup as the host reads it
  (`ContainerPeak`, `Cgroup`): everything charged to the job, so also the page cache it filled
  (the data it read, tmpfs files, a library read from disk for the first time) and, in the warm
  worker, the worker's own imported torch. Measured here on
  mnist5k, a small net reads about 400 MiB on every backend. Where no cgroup can be read (an
  engine on another host, the systemd driver), the runner's own figure stands, self-reported (on a
  GPU the most memory torch allocated there, on a CPU the process's peak resident memory), and an
  active limit fails as "cannot be verified". GPU memory is reported apart, self-reported, as
  `peak_gpu_memory_mb`; no limit reads it.
- `latency_ms`: the median of several batch-1 forward passes in eval mode, after warm-up, on the
  training device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

OVER_LIMIT = "over_limit"

# metric in the result -> (limit field, how a number of it reads)
_METRICS = {
    "params": ("max_params", "{:,.0f} params"),
    "flops": ("max_flops", "{:,.0f} FLOPs"),
    "peak_memory_mb": ("max_peak_memory_mb", "{:,.1f} MiB peak memory"),
    "latency_ms": ("max_latency_ms", "{:,.2f} ms latency"),
}


@dataclass(frozen=True)
class HardwareLimits:
    max_params: int | None = None
    max_flops: int | None = None
    max_peak_memory_mb: float | None = None
    max_latency_ms: float | None = None

    def active(self) -> dict[str, float]:
        """The limits that are set, by field name."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


def violations(limits: HardwareLimits, measured: Mapping[str, object]) -> list[str]:
    """One phrase per limit the measured numbers break, e.g. '106,154 params > 50,000 max'.

    A limit whose metric was not measured counts as broken: nothing shows that the net fits.
    """
    active = limits.active()
    found = []
    for metric, (limit_name, text) in _METRICS.items():
        if limit_name not in active:
            continue
        limit = active[limit_name]
        value = measured.get(metric)
        if isinstance(value, bool) or not isinstance(value, int | float):
            found.append(f"{metric} not measured (max {text.format(limit)})")
        elif value > limit:
            found.append(f"{text.format(value)} > {text.format(limit).split(' ', 1)[0]} max")
    return found


def over_limit_message(found: list[str], val_accuracy: float) -> str:
    return (
        f"over the hardware limits: {'; '.join(found)} "
        f"(validation accuracy {val_accuracy:.4f} does not count)"
    )
