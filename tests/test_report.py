"""total/report.py: the committed docs/results/ pages match the committed tables, a changed table makes
--check name the page it feeds, and the generator writes nothing outside --out."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
from conftest import ROOT, run_script


def copy_tree(tmp_path: Path) -> tuple[Path, Path]:
    """total/figures (without the PDFs, which no page links) and docs/results under tmp_path, laid out
    as in the clone so that the pages' relative links are the committed ones."""
    figures, out = tmp_path / "total" / "figures", tmp_path / "docs" / "results"
    shutil.copytree(ROOT / "total" / "figures", figures)
    shutil.copytree(ROOT / "docs" / "results", out)
    return figures, out


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_committed_pages_match_the_committed_tables():
    proc = run_script("total/report.py", "--check", check=False)
    assert proc.returncode == 0, proc.stderr


def readme_copy(tmp_path: Path) -> Path:
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    return readme


def test_a_changed_number_makes_check_name_its_page(tmp_path):
    figures, out = copy_tree(tmp_path)
    readme = readme_copy(tmp_path)
    assert run_script("total/report.py", "--check", "--figures", str(figures), "--out", str(out), "--readme",
                      str(readme), check=False).returncode == 0
    table = figures / "results_table_contention_r8_paired.csv"
    df = pd.read_csv(table)
    df.loc[0, "d_reward"] += 0.5
    df.to_csv(table, index=False)
    proc = run_script("total/report.py", "--check", "--figures", str(figures), "--out", str(out), "--readme",
                      str(readme), check=False, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: docs/results/contention.md is stale: run python total/report.py"]


def test_a_changed_headline_number_makes_the_readme_stale(tmp_path):
    figures, out = copy_tree(tmp_path)
    readme = readme_copy(tmp_path)
    table = figures / "results_table.csv"
    table.write_text(table.read_text().replace("-2.6648 [", "-2.9999 [", 1))
    proc = run_script("total/report.py", "--check", "--figures", str(figures), "--out", str(out), "--readme",
                      str(readme), check=False, cwd=tmp_path)
    assert proc.returncode == 1
    assert "error: README.md is stale: run python total/report.py" in proc.stderr.splitlines()


def test_the_generator_writes_only_under_out_and_reproduces_the_committed_pages(tmp_path):
    figures, out = copy_tree(tmp_path)
    shutil.rmtree(out)
    readme = readme_copy(tmp_path)
    before = digests(tmp_path)
    run_script("total/report.py", "--figures", str(figures), "--out", str(out), "--readme", str(readme), cwd=tmp_path)
    after = digests(tmp_path)
    outside = {k: v for k, v in after.items() if not k.startswith("docs/results/")}
    assert outside == before
    assert digests(out) == digests(ROOT / "docs" / "results")
