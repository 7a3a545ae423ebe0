"""Per-module mutation score from mutmut's results (mutants/**/*.py.meta).

    python -m tools.mutation_score [--survivors]

Killed counts tests that failed and mutants that ran out of time (an infinite
loop is caught); the score is killed / (killed + survived + no tests).
"""
import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, 24, -24, 152, 255}  # mutmut's exit codes for "tests failed" and "timeout"
SURVIVED = {0}
NO_TESTS = {5, 33}


def scores(root=Path("mutants")):
    """{module: (killed, survived, no_tests, [surviving mutant names])} for every module run."""
    table = {}
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        ran = {name: code for name, code in codes.items() if code is not None}
        if not ran:
            continue
        count = Counter("killed" if c in KILLED else "survived" if c in SURVIVED else
                        "no tests" if c in NO_TESTS else "other" for c in ran.values())
        module = str(meta.relative_to(root))[: -len(".meta")]
        table[module] = (count["killed"], count["survived"], count["no tests"],
                         sorted(n for n, c in ran.items() if c in SURVIVED | NO_TESTS))
    return table


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    table = scores()
    if not table:
        print("no mutmut results under mutants/: run `make mutate` first")
        return 1
    print(f"{'module':<22} {'killed':>7} {'survived':>9} {'no tests':>9} {'score':>7}")
    for module, (killed, survived, no_tests, _) in table.items():
        total = killed + survived + no_tests
        if killed + survived == 0:  # run without its own tests selected: no score to give
            print(f"{module:<22} {'':>7} {'':>9} {no_tests:>9}  not run against its tests")
            continue
        print(f"{module:<22} {killed:>7} {survived:>9} {no_tests:>9} {100 * killed / total:>6.1f}%")
    if "--survivors" in argv:
        for *_, names in table.values():
            for name in names:
                print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
