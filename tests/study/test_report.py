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
    table = figures / "results_table_contention_r2_paired.csv"  # not in the README headline
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


def bench_copy(tmp_path: Path) -> tuple[Path, Path]:
    """bench/results and docs/performance.md under tmp_path."""
    bench, page = tmp_path / "bench" / "results", tmp_path / "docs" / "performance.md"
    shutil.copytree(ROOT / "bench" / "results", bench)
    page.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "docs" / "performance.md", page)
    return bench, page


def check_performance(bench: Path, page: Path, cwd: Path):
    return run_script("total/report.py", "--check", "--bench", str(bench), "--performance", str(page),
                      check=False, cwd=cwd)


def test_a_changed_benchmark_number_makes_check_name_the_performance_page(tmp_path):
    import json
    bench, page = bench_copy(tmp_path)
    assert check_performance(bench, page, tmp_path).returncode == 0
    path = bench / "hop_table.json"
    record = json.loads(path.read_text())
    assert set(record) >= {"command", "machine", "date", "rows"}
    record["rows"][0]["ratio"] *= 2
    path.write_text(json.dumps(record))
    proc = check_performance(bench, page, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: docs/performance.md is stale: run python total/report.py"]


def test_a_benchmark_without_committed_json_shows_its_command_not_a_number(tmp_path):
    bench, page = bench_copy(tmp_path)
    (bench / "update_cost.json").unlink()
    assert check_performance(bench, page, tmp_path).returncode == 1
    run_script("total/report.py", "--bench", str(bench), "--performance", str(page), "--figures",
               str(ROOT / "total" / "figures"), "--out", str(tmp_path / "docs" / "results"), "--readme",
               str(tmp_path / "no_readme.md"), cwd=tmp_path)
    section = page.read_text().split("## update_cost", 1)[1].split("\n## ", 1)[0]
    assert "No result committed" in section and "python bench/update_cost.py" in section and "|" not in section


def test_a_malformed_benchmark_record_is_one_line_naming_the_file(tmp_path):
    bench, page = bench_copy(tmp_path)
    (bench / "scale.json").write_text('{"rows": []}')
    proc = check_performance(bench, page, tmp_path)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {bench / 'scale.json'}: not a bench/record.py record")
