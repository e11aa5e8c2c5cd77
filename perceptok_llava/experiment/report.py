"""Summaries of the relative-depth experiment: mean and 95 % interval over seeds per arm and
point count, chance levels, a Markdown table and the plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

# Student's t, 97.5th percentile, for 1..30 degrees of freedom (the normal's 1.96 beyond).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def interval(values: list[float]) -> dict[str, Any]:
    """Mean and the half-width of its 95 % t-interval (None for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "ci95": None, "values": values}
    df = len(values) - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96
    return {"mean": mean, "ci95": t * statistics.stdev(values) / len(values) ** 0.5, "values": values}


def overall(entries: dict[str, Any], key: str) -> float:
    """``key`` over every point count, weighted by the questions asked."""
    n = sum(e["n"] for e in entries.values())
    return sum(e[key] * e["n"] for e in entries.values()) / max(n, 1)


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """test set → arm → point count ("2".."5", "all") → answer accuracy (and, for chains of
    thought, ``depth_read``) as ``interval`` dicts over seeds; plus ``chance`` per point count."""
    out: dict[str, Any] = {}
    for test, counts in results["test_sets"].items():
        total = sum(counts.values())
        chance = {k: 1 / int(k) for k in counts} | {"all": sum(n / int(k) for k, n in counts.items()) / max(total, 1)}
        table: dict[str, Any] = {"chance": chance, "arms": {}}
        for arm in results["arms"]:
            runs = [r["tests"][test] for r in results["runs"] if r["arm"] == arm]
            if not runs:
                continue
            row: dict[str, Any] = {}
            for k in list(counts) + ["all"]:
                pick = (lambda e, key: overall(e, key)) if k == "all" else (lambda e, key, k=k: e[k][key])
                row[k] = {"accuracy": interval([pick(e, "accuracy") for e in runs])}
                if "depth_read_accuracy" in next(iter(runs[0].values())):
                    row[k]["depth_read"] = interval([pick(e, "depth_read_accuracy") for e in runs])
            table["arms"][arm] = row
        out[test] = table
    return out


def _cell(entry: dict[str, Any]) -> str:
    ci = entry["ci95"]
    return f"{100 * entry['mean']:.1f}" + (f" ± {100 * ci:.1f}" if ci is not None else "")


def markdown(results: dict[str, Any]) -> str:
    """One table per test set: accuracy (%) per arm and point count, mean ± 95 % interval."""
    lines = []
    for test, table in results["summary"].items():
        ks = [k for k in table["chance"] if k != "all"] + ["all"]
        oracle = {name: o.get(test, {}) for name, o in results["oracle"].items()}
        lines += [f"**{test}** test set ({', '.join(f'{n}×{k} points' for k, n in results['test_sets'][test].items())}), "
                  f"accuracy in % over {results['seeds']} seeds (mean ± 95 % interval):", "",
                  "| arm | " + " | ".join(f"{k} points" if k != "all" else "all" for k in ks) + " |",
                  "|---" * (len(ks) + 1) + "|"]
        for arm, row in table["arms"].items():
            lines.append(f"| {arm} | " + " | ".join(_cell(row[k]["accuracy"]) for k in ks) + " |")
            if "depth_read" in row[ks[0]]:
                lines.append(f"| {arm}: read off its depth map | "
                             + " | ".join(_cell(row[k]["depth_read"]) for k in ks) + " |")
        for name, per_k in oracle.items():
            if per_k:
                lines.append(f"| true map through `{name}` tokens | "
                             + " | ".join(f"{100 * per_k[k]:.1f}" if k in per_k else "" for k in ks) + " |")
        lowest = results["lowest_point"][test]
        lines.append("| no model: the lowest point is nearest | "
                     + " | ".join(f"{100 * lowest[k]:.1f}" if k in lowest else "" for k in ks) + " |")
        lines.append("| chance | " + " | ".join(f"{100 * table['chance'][k]:.1f}" for k in ks) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: str | Path) -> None:
    """Grouped bars: accuracy per arm and point count (95 % intervals over seeds as error bars),
    diamonds for chain-of-thought answers read off the generated depth maps, chance as a dashed
    step and the no-model lowest-point rule as a dotted one; one panel per test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from perceptok.checkpoint import atomic_write

    tests = list(results["summary"])
    fig, axes = plt.subplots(1, len(tests), figsize=(7 * len(tests), 5.2), squeeze=False)
    for ax, test in zip(axes[0], tests):
        table = results["summary"][test]
        ks = [k for k in table["chance"] if k != "all"] + ["all"]
        arms = list(table["arms"])
        width = 0.8 / max(len(arms), 1)
        for i, arm in enumerate(arms):
            row = table["arms"][arm]
            means = [100 * row[k]["accuracy"]["mean"] for k in ks]
            errs = [100 * (row[k]["accuracy"]["ci95"] or 0) for k in ks]
            xs = [j + (i - (len(arms) - 1) / 2) * width for j in range(len(ks))]
            ax.bar(xs, means, width, yerr=errs, capsize=3, label=arm)
            if "depth_read" in row[ks[0]]:
                ax.plot(xs, [100 * row[k]["depth_read"]["mean"] for k in ks], "D", color="black", markersize=4,
                        label="chain of thought read off its generated depth map")
        lowest = results["lowest_point"][test]
        for j, k in enumerate(ks):
            ax.hlines(100 * table["chance"][k], j - 0.45, j + 0.45, colors="black", linestyles="dashed",
                      label="chance" if j == 0 else None)
            if k in lowest:
                ax.hlines(100 * lowest[k], j - 0.45, j + 0.45, colors="gray", linestyles="dotted",
                          label="no model: lowest point is nearest" if j == 0 else None)
        ax.set_xticks(range(len(ks)), [f"{k} points" if k != "all" else "all" for k in ks])
        ax.set_ylabel("answer accuracy (%)")
        ax.set_ylim(0, 100)
        seeds = results["seeds"]
        ax.set_title(f"Relative depth, {test} test set ({seeds} seed{'s' * (seeds > 1)}, 95 % intervals)")
    by_label = dict(zip(*reversed(axes[0][0].get_legend_handles_labels())))  # one entry per label
    fig.legend(list(by_label.values()), list(by_label), loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
