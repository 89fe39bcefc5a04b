"""Error against training compute from the regime studies: excess risk / Bayes against tasks seen.

    python docs/studies/plot_budget.py     # reads the regime_variants*.json of FILES, writes budget.png

One panel per n (128, the trained depth; 512; 1024), one line per variant that has at least two
budgets, the seed mean with the seed standard deviation as error bars, both axes logarithmic. The
x axis is tasks seen, iterations x tasks per iteration (16 on the CPU); a study with more tasks per
iteration (the GPU one) is its own series, drawn even as a single point.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
FILES = ["regime_variants.json", "regime_variants_1500.json", "regime_variants_5000.json",
         "regime_variants_15000.json", "regime_variants_15000_explicit.json", "regime_variants_5000x128_gpu.json",
         # one token per number of z (the recipe's lr; the lr study's files are another axis, not compute)
         "explicit_coordinate_tokens.json", "explicit_coordinate_tokens_1500.json", "explicit_coordinate_tokens_3000.json"]


def main() -> None:
    runs = [json.loads((HERE / f).read_text()) for f in FILES if (HERE / f).exists()]
    sizes = runs[0]["sizes"]

    def series(r: dict, name: str) -> str:
        tpb = r.get("tasks_per_batch", 16)
        return name if tpb == 16 else f"{name}, {tpb} tasks/it ({r.get('device', 'cpu')}, {r['seeds']} seed)"

    names = sorted({series(r, v) for r in runs for v in r["variants"]})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), sharey=True)
    for ax, n in zip(axes, sizes):
        for i, name in enumerate(names):
            pts = sorted((r["iterations"] * r.get("tasks_per_batch", 16), r["variants"][v]["excess_over_bayes"][str(n)])
                         for r in runs for v in r["variants"] if series(r, v) == name)
            if len(pts) < 2 and "tasks/it" not in name:
                continue
            ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts], yerr=[p[1]["seed_sd"] for p in pts],
                        marker="o" if "tasks/it" not in name else "*", ms=5 if "tasks/it" not in name else 10,
                        capsize=2, label=name, color=plt.cm.tab20(i % 20))  # more series than tab10 has colours
        ax.axhline(3, color="grey", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="tasks seen in training (iterations x tasks)", title=f"n = {n}")
    axes[0].set_ylabel("excess risk / Bayes (linreg d = 8)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "budget.png", dpi=110)
    print("wrote", HERE / "budget.png")


if __name__ == "__main__":
    main()
