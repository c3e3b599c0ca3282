"""Peak memory and wall time of a full ``faq-search adapt`` run on a 1,000-entry FAQ, measured from outside.

The FAQ is the one benchmarks/adapt.py times (all entries of both shared sets,
topped up to 1,000 with stackfaq answers under a query's wording), written to
a CSV in a temporary folder. ``faq-search adapt`` runs on it as a child
process, exactly as a user would start it (training, the guard, indexing and
writing the bundle), and the child's peak resident set is read with
``resource.getrusage(RUSAGE_CHILDREN)`` once it has exited: the whole command,
not one function inside it. The guard's verdict (held-out served-ranking
MRR@10 before and after, with standard errors) comes from the command's
``--json`` report.

    python benchmarks/bench_adapt.py [--max-steps N] [--data DIR] [--keep DIR]

Target of the quality issue: peak memory <= 3 GB (3e9 bytes) for 1,000 entries.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared_data import REPO, add_data_option, require_sets

TARGET_BYTES = 3e9


def write_faq(path: Path, data: Path) -> int:
    """Write the 1,000-entry FAQ (id, question, answer) as CSV; the number of rows written."""
    from adapt import SETS, thousand_entries  # benchmarks/adapt.py: the same FAQ it times in-process

    require_sets(data, SETS)
    entries = thousand_entries(data)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "answer"])
        for entry in entries:
            writer.writerow([entry.id, entry.questions[0] if entry.questions else "", entry.answer])
    return len(entries)


def run(faq: Path, out: Path, max_steps: int | None) -> tuple[dict[str, object], float, float]:
    """``(the --json report, wall seconds, the child's peak RSS in GiB)``."""
    command = [str(Path(sys.executable).with_name("faq-search")), "adapt", str(faq), "--out", str(out), "--json"]
    if max_steps is not None:
        command += ["--max-steps", str(max_steps)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"faq-search adapt failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0**2  # Linux: KiB
    return json.loads(done.stdout), wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_data_option(parser)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on training steps (default: adapt's own)")
    parser.add_argument("--keep", type=Path, default=None, help="write the FAQ and bundle here instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faq-bench-adapt-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        faq = folder / "faq1000.csv"
        rows = write_faq(faq, args.data)
        before = os.getloadavg()[0]
        report, wall, peak = run(faq, folder / "bundle", args.max_steps)
    after = os.getloadavg()[0]
    print(f"faq-search adapt on a {rows}-entry FAQ (max steps: {args.max_steps or 'default'})")
    print(f"  load average (1 min) before/after: {before:.2f} / {after:.2f}; {os.cpu_count()} CPUs")
    print(
        f"  wall time {wall:.0f} s, peak resident memory of the command {peak:.2f} GiB = {peak * 1024**3:.3g} bytes "
        f"(target <= {TARGET_BYTES:.3g} bytes)"
    )
    keys = ("pairs", "steps", "stopped", "held_out_questions", "folds", "before", "before_error", "after")
    keys += ("after_error", "gain", "gain_error", "kept")
    print("  report: " + ", ".join(f"{k}={report[k]}" for k in keys if k in report))


if __name__ == "__main__":
    main()
