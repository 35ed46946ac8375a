"""Run pytest under valgrind memcheck (PYTHONMALLOC=malloc) and fail on any
error or definite leak whose stack passes through dlbridge's own code.

CPython and NumPy report their own (known, harmless) uninitialised reads in
the garbage collector and one-time leaks at start-up; those are counted and
shown, but only records that name dlbridge (`_native`, `dlbridge::`,
`dlpark::`) or the test's C helpers fail the run. A helper is
tests/python/helpers/<name>.c, built by tests/python/cbuild.py into
<name>.so, so a valgrind frame names it as `fn (<name>.c:LINE)` (with debug
info) or `fn (in /tmp/dlbridge-helpers-.../<name>.so)`; the names come from
the helpers directory, so a new helper is covered without editing this file.

    python scripts/sanitize.py tests/python/test_error_matrix.py ...
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile

HELPERS = pathlib.Path(__file__).resolve().parents[1] / "tests" / "python" / "helpers"


def ours_pattern(helpers: list[str]) -> re.Pattern[str]:
    """Frames in dlbridge's extension, its Rust code, or a C test helper."""
    names = "|".join(map(re.escape, helpers))
    helper = rf"|(?<![\w.-])(?:{names})\.(?:c:\d+|so\b)" if helpers else ""
    return re.compile(rf"_native\.cpython|dlbridge::|dlpark::{helper}")


HELPER_NAMES = sorted(source.stem for source in HELPERS.glob("*.c"))
OURS = ours_pattern(HELPER_NAMES)


def main(argv: list[str]) -> int:
    log = tempfile.NamedTemporaryFile(prefix="dlbridge-valgrind-", suffix=".log", delete=False).name
    command = [
        "valgrind", "--tool=memcheck", f"--log-file={log}", "--leak-check=full",
        "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite", "--num-callers=40",
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", *argv,
    ]
    env = dict(os.environ, PYTHONMALLOC="malloc")
    tests = subprocess.run(command, env=env)
    text = open(log).read()
    records = [r for r in re.split(r"\n==\d+== \n", text) if re.search(r"Invalid|uninitialised|definitely lost|Mismatched|overlap", r)]
    ours = [r for r in records if OURS.search(r)]
    summary = re.findall(r"ERROR SUMMARY: .*", text)
    print(f"valgrind: {len(records)} error records in total, {len(ours)} through dlbridge; {summary[-1] if summary else ''}")
    print(f"valgrind log: {log}")
    for record in ours:
        print(record, file=sys.stderr)
    if tests.returncode != 0:
        print(f"pytest under valgrind failed with exit code {tests.returncode}", file=sys.stderr)
        return tests.returncode
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
