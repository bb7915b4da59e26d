"""``python -m hostats.analysis [PATH]``: write the spec reference generated from the declaration of the
spec's keys (default ``docs/spec-reference.md``; a test checks the committed file is up to date)."""
import sys

from hostats.analysis.spec import write_spec_reference

if __name__ == "__main__":
    print(write_spec_reference(*sys.argv[1:2]))
