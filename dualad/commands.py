"""The ``compare`` and ``jacobian`` commands of ``python -m dualad``."""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ADError


class UsageError(Exception):
    """A mistake on the command line or in the user's input: reported without a traceback."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


# -- compare ------------------------------------------------------------------
def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare", help="time forward vs reverse mode on the built-in problem suite",
        description="For each problem of the built-in suite (dualad.problems), time f, the "
                    "forward-mode Jacobian (dualad) and the reverse-mode Jacobian (reversead) in "
                    "this process, check that they agree, and show which mode the cost model picks.")
    parser.add_argument("--quick", action="store_true", help="a small subset (seconds)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (best is shown)")
    parser.add_argument("--only", default=None, help="run only problems whose name contains this")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the results as JSON")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads while timing (default 1: on small shared machines "
                             "multi-threaded BLAS makes small products erratic; 0 = leave as is)")
    parser.add_argument("--plot", dest="plot_path", default=None,
                        help="also write a plot (PNG; needs matplotlib: pip install 'dualad[plot]')")
    parser.set_defaults(run=run_compare)
    return parser


def run_compare(args: argparse.Namespace) -> int:
    from .compare import HEADER, compare
    from .problems import suite

    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    if args.plot_path is not None and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'dualad[plot]'")
    problems = [p for p in suite(args.quick) if args.only is None or args.only in p.name]
    if not problems:
        raise UsageError(f"no problem name contains {args.only!r}")
    if args.blas_threads < 0:
        raise UsageError(f"--blas-threads must be >= 0, got {args.blas_threads}")
    print(HEADER, flush=True)
    reports, start = [], time.perf_counter()
    with _blas_threads(args.blas_threads):
        for i, problem in enumerate(problems, 1):
            print(f"[{i}/{len(problems)}] {problem.name} ...", file=sys.stderr, flush=True)
            report = compare(problem.f, problem.x, name=problem.name, repeats=args.repeats,
                             memory=False)
            reports.append(report)
            print(report.row(), flush=True)
    picked_right = sum(r.predicted == r.faster for r in reports)
    print(f"\n'picked' (cost model) matches the measured faster mode in {picked_right} of "
          f"{len(reports)} problems; {time.perf_counter() - start:.1f} s in all")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps([r.to_dict() for r in reports], indent=1))
        print(f"wrote {args.json_path}")
    if args.plot_path:
        plot_reports(reports, args.plot_path)
        print(f"wrote {args.plot_path}")
    return 0


def _blas_threads(n):
    """Limit BLAS to ``n`` threads for the block (0: no limit)."""
    import contextlib
    if n == 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


def plot_reports(reports, path) -> None:
    """A bar chart of cost(forward)/cost(reverse) per problem (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in reports]
    ratios = [r.ratio for r in reports]
    colors = ["tab:blue" if r.faster == "forward" else "tab:orange" for r in reports]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(reports) + 1.5))
    ax.barh(names, ratios, color=colors)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("cost(forward) / cost(reverse)   (blue: forward faster, orange: reverse faster)")
    ax.set_title("dualad vs reversead: Jacobian cost on the built-in suite")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- jacobian -----------------------------------------------------------------
def add_jacobian_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "jacobian", help="Jacobian of MODULE:FUNCTION at a point",
        description="Import FUNCTION from MODULE (a module name on the path, or a .py file), "
                    "evaluate its Jacobian at the point given by --x, and print it or write it.")
    parser.add_argument("target", metavar="MODULE:FUNCTION")
    parser.add_argument("--x", required=True, help="the point: a .npy or .csv file, or a literal "
                                                    "such as '1.5' or '[1, 2, 3]'")
    parser.add_argument("--out", default=None, help="write the Jacobian to this .npy or .csv file")
    parser.add_argument("--mode", choices=("auto", "forward", "reverse"), default="auto")
    parser.add_argument("--chunk", type=int, default=None, help="tangents/cotangents per pass")
    parser.set_defaults(run=run_jacobian)
    return parser


def load_function(target: str):
    """``MODULE:FUNCTION`` -> the function (MODULE may be a dotted name or a path to a .py file)."""
    module_name, sep, func_name = target.rpartition(":")
    if not sep or not module_name or not func_name:
        raise UsageError(f"expected MODULE:FUNCTION, got {target!r}")
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UsageError(f"no such file: {module_name}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except ImportError as err:
        raise UsageError(f"cannot import module {module_name!r}: {err}") from None
    except Exception as err:  # the user's module raised while importing
        raise UsageError(f"importing {module_name!r} raised {type(err).__name__}: {err}", 1) from None
    func = getattr(module, func_name, None)
    if func is None:
        raise UsageError(f"module {module_name!r} has no attribute {func_name!r}")
    if not callable(func):
        raise UsageError(f"{target} is a {type(func).__name__}, not a function")
    return func


def load_point(text: str) -> np.ndarray:
    """The point from a .npy/.csv file or a Python literal."""
    path = Path(text)
    if text.endswith((".npy", ".csv")):
        if not path.is_file():
            raise UsageError(f"no such point file: {text}")
        try:
            x = np.load(path, allow_pickle=False) if text.endswith(".npy") else np.loadtxt(path, delimiter=",", ndmin=1)
        except (ValueError, OSError) as err:
            raise UsageError(f"cannot read the point from {text}: {err}") from None
    else:
        try:
            x = np.array(ast.literal_eval(text))
        except (ValueError, SyntaxError) as err:
            raise UsageError(f"--x must be a .npy/.csv file or a number/list literal, got {text!r} "
                             f"({type(err).__name__})") from None
    if x.dtype.kind not in "biuf":
        raise UsageError(f"the point must be real numbers, got dtype {x.dtype}")
    return x.astype(np.float64) if x.dtype.kind != "f" else x


def run_jacobian(args: argparse.Namespace) -> int:
    from .compare import choose_mode, jacobian, sizes

    func = load_function(args.target)
    x = load_point(args.x)
    if args.chunk is not None and args.chunk < 1:
        raise UsageError(f"--chunk must be a positive integer, got {args.chunk}")
    if args.out is not None and not args.out.endswith((".npy", ".csv")):
        raise UsageError(f"--out must end in .npy or .csv, got {args.out}")
    try:
        mode = args.mode
        if mode == "auto":
            mode = choose_mode(*sizes(func, x))
        J = np.asarray(jacobian(func, x, mode=mode, chunk=args.chunk))
    except ADError as err:
        raise UsageError(f"cannot differentiate {args.target} at x of shape {x.shape}: {err}", 1) from None
    except Exception as err:  # the user's function failed: report it, no traceback
        raise UsageError(f"{args.target} raised {type(err).__name__} at x of shape {x.shape}: {err}", 1) from None
    print(f"{args.target}: Jacobian of shape {J.shape} by {mode} mode", file=sys.stderr)
    if args.out is None:
        print(np.array2string(J, max_line_width=120))
    elif args.out.endswith(".npy"):
        np.save(args.out, J)
    else:
        np.savetxt(args.out, J.reshape(J.shape[0] if J.ndim else 1, -1), delimiter=",")
    return 0
