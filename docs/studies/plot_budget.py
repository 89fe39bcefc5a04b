"""Error against training compute from the regime studies: excess risk / Bayes against iterations.

    python docs/studies/plot_budget.py     # reads regime_variants{,_1500,_5000}.json, writes budget.png

One panel per n (128, the trained depth; 512; 1024), one line per variant that has at least two
budgets, the seed mean with the seed standard deviation as error bars, both axes logarithmic.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
FILES = ["regime_variants.json", "regime_variants_1500.json", "regime_variants_5000.json"]


def main() -> None:
    runs = [json.loads((HERE / f).read_text()) for f in FILES if (HERE / f).exists()]
    sizes = runs[0]["sizes"]
    names = sorted({v for r in runs for v in r["variants"]})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), sharey=True)
    for ax, n in zip(axes, sizes):
        for name in names:
            pts = sorted((r["iterations"], r["variants"][name]["excess_over_bayes"][str(n)])
                         for r in runs if name in r["variants"])
            if len(pts) < 2:
                continue
            ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts], yerr=[p[1]["seed_sd"] for p in pts],
                        marker="o", capsize=2, label=name)
        ax.axhline(3, color="grey", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="training iterations (16 tasks each)", title=f"n = {n}")
        budgets = sorted({r["iterations"] for r in runs})
        ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axes[0].set_ylabel("excess risk / Bayes (linreg d = 8)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "budget.png", dpi=110)
    print("wrote", HERE / "budget.png")


if __name__ == "__main__":
    main()
