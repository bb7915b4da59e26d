"""``python -m hostats.analysis [PATH]``: write the spec reference generated from the declaration of the
spec's keys (default ``docs/spec-reference.md``; a test checks the committed file is up to date)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hostats.analysis.spec import write_spec_reference

DEFAULT_PATH = "docs/spec-reference.md"


def main(argv: Sequence[str] | None = None) -> int:
    # a parser, not sys.argv[1]: "--help" (or a mistyped option) was taken for the path and written to
    parser = argparse.ArgumentParser(
        prog="python -m hostats.analysis",
        description="Write the spec reference (the keys of analysis.toml, their types, defaults and allowed "
                    "values), generated from their declaration in hostats/analysis/spec.py.")
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH,
                        help=f"the Markdown file to write (default: {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    try:
        print(write_spec_reference(args.path))
    except OSError as exc:
        parser.error(f"cannot write {args.path}: {exc.strerror or exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
