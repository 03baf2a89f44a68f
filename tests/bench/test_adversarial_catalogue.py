"""bench/adversarial.py: the catalogue is complete and well-formed, and its runner classifies real child
processes (a clean one-line error, a traceback, a hang, a payload, a lost file, a write outside) correctly.
The catalogue itself is run on demand (`python bench/adversarial.py`), not here."""
from __future__ import annotations

from collections import Counter

import pytest

from bench import adversarial as adv
from bench.adversarial import Case


def test_catalogue_covers_the_audit():
    cases = adv.catalogue()
    assert len(cases) >= 188
    counts = Counter(c.category for c in cases)
    assert set(counts) == set(adv.CATEGORIES)
    for category, audited in adv.AUDIT_COUNTS.items():
        assert counts[category] >= audited, category
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), [n for n, k in Counter(names).items() if k > 1]
    for c in cases:
        assert c.expect in ("error", "accept"), c.name
        assert bool(c.cmd) != bool(c.py), c.name  # a command line or an API snippet, not both
        assert c.check is None or c.expect == "accept", c.name
        assert all(s.partition(":")[0] in adv.SETUPS or s.partition(":")[0] in ("fifo", "sparse", "link")
                   for s in c.setup), c.name


def test_selection_by_category_and_name():
    cases = adv.catalogue()
    gym = adv.select(cases, ["gym"], None)
    assert gym and all(c.category == "Gym API" for c in gym)
    assert [c.name for c in adv.select(cases, None, ["^yaml_duplicate_key$"])] == ["yaml_duplicate_key"]
    with pytest.raises(SystemExit):
        adv.select(cases, ["nonsense"], None)


SYNTHETIC = [
    (Case("CLI", "raises", "error", cmd=("-c", "raise ZeroDivisionError('boom')")), "traceback"),
    (Case("CLI", "one_line", "error", cmd=("-c", "import sys; sys.exit('error: x is not a number')")), "one-line"),
    (Case("CLI", "argparse_style", "error",
          cmd=("-c", "import argparse; p = argparse.ArgumentParser(prog='t'); p.add_argument('--n', type=int); "
                     "p.parse_args(['--n', 'x'])")), "one-line"),
    (Case("CLI", "two_error_lines", "error", cmd=("-c", "import sys; print('error: a', file=sys.stderr); "
                                                        "sys.exit('error: b')")), "traceback"),
    (Case("CLI", "exit_zero", "error", cmd=("-c", "pass")), "silently wrong"),
    (Case("CLI", "sleeps", "error", cmd=("-c", "import time; time.sleep(30)")), "hang"),
    (Case("CLI", "accepted", "accept", cmd=("-c", "open('out.txt', 'w').write('x')"),
          check=adv.exists("out.txt")), "documented"),
    (Case("CLI", "accepted_wrong", "accept", cmd=("-c", "pass"), check=adv.exists("out.txt")), "silently wrong"),
    (Case("CLI", "payload", "error", cmd=("-c", "open('{marker}', 'w'); raise SystemExit('error: refused')")),
     "code ran"),
    (Case("CLI", "overwrites", "error", cmd=("-c", "open('prior.txt', 'w').write('new'); raise SystemExit('error: x')"),
          files={"prior.txt": "old"}), "lost"),
    (Case("CLI", "writes_outside", "error", cmd=("-c", "open('../escaped.txt', 'w'); raise SystemExit('error: x')")),
     "lost"),
    # a KeyError from a line of the project that is not a `raise` statement: a traceback, not a user error
    (Case("Gym API", "api_accidental_error", "error", py="from bench.adversarial import m_del\nm_del('a')({})"),
     "traceback"),
    (Case("Gym API", "api_wrong", "accept", py="wrong('reward is NaN')"), "silently wrong"),
]


@pytest.mark.parametrize("case,outcome", SYNTHETIC, ids=[c.name for c, _ in SYNTHETIC])
def test_runner_classifies_child_processes(case, outcome, tmp_path):
    shared = adv.Shared(tmp_path, timeout=2.0, memory_mb=0)
    row = adv.run_case(case, shared, timeout=2.0, memory_mb=0)
    assert row["outcome"] == outcome, row


def test_api_wrapper_accepts_a_deliberate_raise_in_the_project(tmp_path):
    """An exception raised by a `raise` statement in the repository's code is a clean one-line error."""
    case = Case("Gym API", "plain_name", "error", py="from edgesim.inputs import integer\ninteger(3.7, 'action')")
    row = adv.run_case(case, adv.Shared(tmp_path, 30.0, 0), timeout=30.0, memory_mb=0)
    assert row["outcome"] == "one-line", row
    assert row["first_error_line"].startswith("error: InputError: action: expected an integer"), row


def test_table_format():
    rows = [{"category": "CLI", "name": "a", "expected": "error", "outcome": "one-line", "first_error_line": "error: x",
             "detail": ""},
            {"category": "CLI", "name": "b", "expected": "accept", "outcome": "traceback", "first_error_line": "E",
             "detail": "a traceback"}]
    text = adv.table(rows)
    assert text.splitlines()[0] == ("| category | cases | one-line | documented | traceback | silently wrong | lost | "
                                    "code ran | hang |")
    assert "| CLI | 2 | 1 | 0 | 1 | 0 | 0 | 0 | 0 |" in text
    assert adv.not_handled(rows) == ["- [CLI] b (accept): traceback: E (a traceback)"]
