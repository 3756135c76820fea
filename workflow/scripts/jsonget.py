#!/usr/bin/env python3
"""Print one top-level value of a JSON file: ``jsonget.py [--yaml] FILE KEY`` (used by rules to read the path of
the teacher that dev selection chose, at job time, from ``runs/teacher/{task}/selected.json``).

With ``--yaml`` the value is printed as a double-quoted YAML scalar, so that ``--set "model.teacher=$teacher"``
gives lrcbert the path itself whatever it holds (``#``, ``: ``, quotes, brackets would otherwise be read as YAML).
Rules put the printed text in a double-quoted shell variable: the shell never parses it."""

import json
import sys

if __name__ == "__main__":
    args = sys.argv[1:]
    as_yaml = bool(args) and args[0] == "--yaml"
    args = args[1:] if as_yaml else args
    if len(args) != 2:
        sys.exit("usage: jsonget.py [--yaml] FILE KEY")
    with open(args[0], encoding="utf-8") as f:
        data = json.load(f)
    if args[1] not in data:
        sys.exit(f"jsonget: {args[0]} has no key {args[1]!r}")
    value = data[args[1]]
    print(json.dumps(value) if as_yaml else value)
