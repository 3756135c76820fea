#!/usr/bin/env python3
"""Print one top-level value of a JSON file: ``jsonget.py FILE KEY`` (used by rules to read the path of the
teacher that dev selection chose, at job time, from ``runs/teacher/{task}/selected.json``)."""
import json
import sys

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: jsonget.py FILE KEY")
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    if sys.argv[2] not in data:
        sys.exit(f"jsonget: {sys.argv[1]} has no key {sys.argv[2]!r}")
    print(data[sys.argv[2]])
