#!/usr/bin/env python3
"""Counts individual test cases across meson's log and prints one closing line.

meson counts a TAP test executable as one test; we want every Criterion test
case counted, and a skip counted as a skip, with its reason shown.
"""
import json
import re
import sys

TAP_LINE = re.compile(r"^(not ok|ok)\b(.*)$")


def count_tap(stdout, totals, name):
    seen = 0
    for line in stdout.splitlines():
        m = TAP_LINE.match(line.strip())
        if not m:
            continue
        seen += 1
        rest = m.group(2)
        if "# SKIP" in rest.upper():
            totals["skipped"] += 1
            print(f"skipped: {name}{rest}")
        elif m.group(1) == "ok":
            totals["passed"] += 1
        else:
            totals["failed"] += 1
            print(f"FAILED: {name}{rest}")
    return seen


def main(path):
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    with open(path) as f:
        for raw in f:
            t = json.loads(raw)
            name, result = t["name"], t["result"]
            failed_before = totals["failed"]
            seen = count_tap(t.get("stdout") or "", totals, name)
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and totals["failed"] == failed_before:
                # A crash or timeout of the whole executable counts once more,
                # so it can never hide behind the cases that did pass.
                totals["failed"] += 1
                print(f"FAILED: {name} ({result})")
            elif seen == 0:
                totals["skipped" if result == "SKIP" else "passed"] += 1
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
