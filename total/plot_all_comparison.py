"""Every figure from the saved results: learning curves, latency CDF, latency/cost breakdown,
latency-vs-cost Pareto, DWA weights, scalability (PNG each; --formats png,pdf adds PDFs), then the results table.
Right after training there is no evaluation yet: it is made first, as `total/evaluate_all.py` with its
defaults would (every run under --results and every heuristic, test split), so the command just works.

    python total/plot_all_comparison.py [--results DIR] [--figures DIR] [--region Server1_Trap]
    python total/plot_all_comparison.py --update-committed-figures     # refresh the committed total/figures/

Output goes to <results>/figures/ (git-ignored) unless --figures or --update-committed-figures says otherwise,
so a quick experiment never replaces the committed figures.
"""
from __future__ import annotations

from pathlib import Path

from schedkit.paths import eval_dir
from total import (
    evaluate_all,
    make_table,
    plot_cost_breakdown,
    plot_dwa,
    plot_latency_cdf,
    plot_learning_curves,
    plot_pareto,
    plot_scalability,
)
from total.common import figure_main

FIGURES = [plot_learning_curves, plot_latency_cdf, plot_cost_breakdown, plot_pareto, plot_dwa, plot_scalability]


def draw(results: Path, figures: Path, regions: list[str]) -> list[Path]:
    if not (eval_dir(results, regions) / "episodes.csv").exists():
        print(f"note: no evaluation in {eval_dir(results, regions)} yet; running total/evaluate_all.py first")
        evaluate_all.main(["--results", str(results), "--region", *regions])
    written = [p for module in FIGURES for p in module.draw(results, figures, regions)]
    table = make_table.main(["--results", str(results), "--figures", str(figures), "--region", *regions])
    return written + [table / f"results_table.{ext}" for ext in ("md", "csv", "tex")]


if __name__ == "__main__":
    figure_main(draw, __doc__)
