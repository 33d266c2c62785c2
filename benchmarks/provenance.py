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


def cpu():
    """The processor's model name and its vector extensions that change TensorFlow's kernels.

    The same code and packages round differently on processors with other
    vector units (oneDNN picks its kernels by them), so a seed's result can
    differ from one machine to the next; this records which kind ran it.
    """
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    extensions = sorted(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile"))
    return {"model": model or platform.processor() or None, "extensions": extensions}


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
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "cpu": cpu()},
    }


# Recipe fields added after results were committed, with the value those
# results were run with.
LATER_RECIPE_FIELDS = {"update_pruned_weights": False}


def recipe_of(result):
    """The recipe a results dict was run with, fields added since it was written included."""
    return {**LATER_RECIPE_FIELDS, **result["recipe"]}
