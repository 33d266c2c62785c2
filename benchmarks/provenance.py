"""Where a results file comes from: the command, the code and the machine.

Every benchmark starts its JSON with `header(...)`, so a figure can be traced
to the commit and the package versions that produced it.
"""

import importlib.metadata
import os
import platform
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("keras_scl", "keras", "tensorflow", "tensorflow-datasets", "tensorflow-model-optimization", "tf-keras")


def _git(*args):
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit():
    """The checked-out commit, marked when the code differs from it; `None` outside git.

    Results files are left out of the comparison (re-running a benchmark
    rewrites them), and so is Markdown documentation, which no result
    depends on.
    """
    head = _git("rev-parse", "HEAD")
    if head is None:
        return None
    changed = _git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results", ":(exclude)*.md")
    return head + (" with uncommitted changes" if changed else "")


def versions():
    """Installed versions of the packages a result depends on (`None`: not installed)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


def header(script, argv):
    """The fields every results JSON starts with.

    Args:
        script: file name of the benchmark, e.g. `"run.py"`.
        argv: the arguments it was given (`None`: the process's own).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    return {
        "command": " ".join(["python", f"benchmarks/{script}", *args]),
        "commit": commit(),
        "versions": versions(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
