"""A run's PNG plots: accuracy per iteration, success rate, the Pareto front; an ablation's
curves (matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.results.numbers import ROLLING, measured_points, pareto_front


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


_KIND_MARKERS = "sDv^<>ph*+o"
_KIND_COLORS = ("tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan", "tab:orange")


def plot_accuracy(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    """Validation accuracy per iteration with the best-so-far curve; failures below, by kind."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    ok = [r for r in rows if r["status"] == "ok"]
    over = [r for r in rows if r["status"] != "ok" and r["val_accuracy"] is not None]
    top.scatter(
        [r["iteration"] for r in ok],
        [r["val_accuracy"] for r in ok],
        s=28,
        color="tab:blue",
        label="trained (validation accuracy)",
        zorder=3,
    )
    if over:
        top.scatter(
            [r["iteration"] for r in over],
            [r["val_accuracy"] for r in over],
            s=40,
            marker="x",
            color="tab:red",
            label="over a hardware limit (not counted)",
            zorder=3,
        )
    curve = summary["best_so_far"]
    xs = [r["iteration"] for r, v in zip(rows, curve, strict=True) if v is not None]
    ys = [v for v in curve if v is not None]
    if ys:
        top.step(xs, ys, where="post", color="tab:green", lw=2, label="best so far")
    top.set_ylabel("validation accuracy")
    highest = max([r["val_accuracy"] for r in ok + over] or [1.0])
    top.set_ylim(0, min(1.02, highest * 1.25 + 0.02))  # room above the points for the legend
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=9, ncols=3)
    rho = summary["spearman_rho"]
    rho_text = f", Spearman ρ {rho:.2f}" if rho is not None else ""  # noqa: RUF001
    top.set_title(f"{summary['run_id']}: {summary['ok']}/{summary['iterations']} trained{rho_text}")
    failed = [r for r in rows if r["status"] != "ok"]
    kinds = sorted({r["kind"] for r in failed})
    for n, kind in enumerate(kinds):
        its = [r["iteration"] for r in failed if r["kind"] == kind]
        marker = "x" if kind == "over_limit" else _KIND_MARKERS[n % len(_KIND_MARKERS)]
        color = "tab:red" if kind == "over_limit" else _KIND_COLORS[n % len(_KIND_COLORS)]
        bottom.scatter(its, [n] * len(its), marker=marker, s=36, color=color)
    bottom.set_yticks(range(len(kinds)), [f"{k} ({summary['failures'][k]})" for k in kinds])
    bottom.set_ylim(-0.7, max(len(kinds), 1) - 0.3)
    if not kinds:
        bottom.text(0.5, 0.5, "no failures", ha="center", va="center", transform=bottom.transAxes)
    bottom.set_title("failures by kind", fontsize=10)
    bottom.set_xlabel("iteration")
    bottom.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_success_rate(rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    its = [r["iteration"] for r in rows]
    oks = [1 if r["status"] == "ok" else 0 for r in rows]
    cumulative = [sum(oks[: i + 1]) / (i + 1) for i in range(len(oks))]
    rolling = [
        sum(oks[max(0, i + 1 - ROLLING) : i + 1]) / len(oks[max(0, i + 1 - ROLLING) : i + 1])
        for i in range(len(oks))
    ]
    ax.plot(its, cumulative, color="tab:blue", lw=2, label="cumulative")
    ax.plot(its, rolling, color="tab:orange", lw=1.5, ls="--", label=f"last {ROLLING}")
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("success rate")
    ax.set_title("share of candidates that trained")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pareto(rows: list[dict[str, Any]], limits: dict[str, Any], path: Path) -> None:
    """Accuracy vs. parameters (and vs. latency when measured), the front and the limits."""
    plt = pyplot()
    points = measured_points(rows)
    panels = [("params", "parameters", "max_params")]
    if any(p.get("latency_ms") is not None for p in points):
        panels.append(("latency_ms", "latency, batch 1 (ms)", "max_latency_ms"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 0.6, 4.4), squeeze=False)
    for ax, (cost, label, limit_name) in zip(axes[0], panels, strict=True):
        usable = [p for p in points if p.get(cost) is not None]
        ok = [p for p in usable if p["status"] == "ok"]
        over = [p for p in usable if p["status"] != "ok"]
        ax.scatter([p[cost] for p in ok], [p["val_accuracy"] for p in ok], s=28, label="trained")
        if over:
            ax.scatter(
                [p[cost] for p in over],
                [p["val_accuracy"] for p in over],
                s=40,
                marker="x",
                color="tab:red",
                label="over a limit",
            )
        front = pareto_front(usable, cost)
        if front:
            xs, ys = [p[cost] for p in front], [p["val_accuracy"] for p in front]
            ax.step(xs, ys, where="post", color="tab:green", lw=1.5)
            ax.scatter(
                xs, ys, s=110, facecolors="none", edgecolors="tab:green", lw=2, label="Pareto front"
            )
        if limits.get(limit_name) is not None:
            ax.axvline(limits[limit_name], color="tab:red", ls="--", lw=1, label="limit")
        values = [p[cost] for p in usable]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_xscale("log")  # sizes spanning orders of magnitude
        if not usable:
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("accuracy vs. cost (one point per distinct network)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ablation(results: dict[str, Any], path: Path) -> None:
    """An ablation's curves: mean best-so-far per variant over seeds, ± one standard deviation
    shaded (agent/results/ablate.py)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    for n, (variant, agg) in enumerate(results["variants"].items()):
        points = [(i, s) for i, s in enumerate(agg["curve"]) if s["mean"] is not None]
        if not points:
            continue
        xs = [i for i, _ in points]
        mean = [s["mean"] for _, s in points]
        low = [max(s["mean"] - s["std"], 0.0) for _, s in points]  # accuracy stays in [0, 1]
        high = [min(s["mean"] + s["std"], 1.0) for _, s in points]
        color = f"C{n % 10}"
        marker = "o" if len(xs) <= 30 else None
        label = f"{variant} ({agg['runs']} runs)"
        ax.plot(xs, mean, color=color, lw=2, marker=marker, ms=4, label=label)
        ax.fill_between(xs, low, high, color=color, alpha=0.2, lw=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("iteration")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(f"ablation {results['name']}: mean over seeds, ± one standard deviation shaded")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
