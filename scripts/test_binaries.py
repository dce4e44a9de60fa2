"""Reads `cargo test --no-run --message-format=json` on stdin and prints one line per test
binary: its path and its package's directory, tab-separated, the `tests` package's end-to-end
binaries first (the longest), so that scripts/test can run them several at a time."""

import json
import os
import sys


def main() -> None:
    binaries = []
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if not message["profile"]["test"]:
            continue
        directory = os.path.dirname(message["manifest_path"])
        end_to_end = os.path.basename(directory) == "tests"
        binaries.append((not end_to_end, message["executable"], directory))
    if not binaries:
        sys.exit("no test binaries in cargo's output")
    for _, executable, directory in sorted(binaries):
        print(f"{executable}\t{directory}")


main()
