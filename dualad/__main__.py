"""Command line: ``python -m dualad [COMMAND]`` (also installed as the ``dualad`` script).

Commands
--------
compare
    Time forward vs reverse mode on the built-in problem suite (the main job).
jacobian MODULE:FUNCTION --x POINT
    Jacobian of a user's function at a point, by forward, reverse or auto mode.
example (default)
    Differentiate a built-in function R^5 -> R^4 and print its Jacobian twice:
    column by column (one ``dualad.jvp`` per basis vector) and in chunked vector
    mode (``dualad.jacobian``), then check both against central finite differences.

Adding a command: write ``add_<name>_parser(subparsers)`` that registers the
subparser with ``set_defaults(run=run_<name>)``, and ``run_<name>(args) -> int``;
call the former in ``build_parser``. A mistake by the user raises ``UsageError``
and becomes a one-line message and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

import dualad
from dualad.commands import UsageError, add_compare_parser, add_jacobian_parser
from dualad.testing import numerical_jacobian
from dualad.transforms import _pick_chunk

PROG = "dualad"


# -- example ------------------------------------------------------------------
EXAMPLE_FORMULA = "f(x) = tanh(W2 @ sin(W1 @ x + b)) * exp(-sum(x[:3]))"
#: the forward Jacobians must match each other to rounding and finite differences to truncation
AGREE_TOL, FD_TOL = 1e-12, 1e-6


def example_problem(seed: int = 0):
    """The built-in example: ``(f, x)`` with ``f: R^5 -> R^4`` written in plain NumPy."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((6, 5))
    W2 = rng.standard_normal((4, 6))
    b = rng.standard_normal(6)
    x = np.array([0.3, -0.2, 0.1, 0.5, -0.4])

    def f(x):
        return np.tanh(W2 @ np.sin(W1 @ x + b)) * np.exp(-np.sum(x[:3]))
    return f, x


def _fmt(a) -> str:
    return np.array2string(np.asarray(a), precision=6, suppress_small=False, max_line_width=100,
                           floatmode="fixed", sign=" ")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_example_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "example", help="differentiate a built-in example and print its Jacobian (default)",
        description=f"Differentiate the built-in {EXAMPLE_FORMULA} (W1 6x5, W2 4x6, b seeded) at a "
                    "fixed x in R^5: the Jacobian column by column with dualad.jvp, in chunked "
                    "vector mode with dualad.jacobian, and checked by central finite differences.")
    parser.add_argument("--chunk", type=_positive_int, default=None,
                        help="tangents per forward pass for dualad.jacobian "
                             "(default: the library picks, here all 5 in one pass)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random weights W1, W2, b (default: 0)")
    parser.set_defaults(run=run_example)
    return parser


def run_example(args: argparse.Namespace) -> int:
    f, x = example_problem(args.seed)
    n = x.size
    print(f"dualad {dualad.__version__}: forward-mode AD on dual numbers")
    print(f"  {EXAMPLE_FORMULA}")
    print(f"  W1: 6x5, W2: 4x6, b: 6 from numpy.random.default_rng({args.seed})")
    print(f"  x    = {_fmt(x)}")
    print(f"  f(x) = {_fmt(f(x))}")

    print(f"\nJacobian column by column: {n} passes of dualad.jvp(f, x, e_j), one tangent each")
    start = time.perf_counter()
    columns = []
    for j in range(n):
        _, column = dualad.jvp(f, x, np.eye(n)[j])
        columns.append(column)
        print(f"  J[:, {j}] = {_fmt(column)}", flush=True)
    by_columns = np.stack(columns, axis=-1)
    columns_ms = 1e3 * (time.perf_counter() - start)

    k = _pick_chunk(args.chunk, n, [x])  # the tangents per pass dualad.jacobian will use
    passes = math.ceil(n / k)
    print(f"\nJacobian in chunked vector mode: dualad.jacobian(f, x, chunk={args.chunk}) -> "
          f"{k} tangent{'s' if k > 1 else ''} per pass, {passes} pass{'es' if passes > 1 else ''}")
    start = time.perf_counter()
    chunked = dualad.jacobian(f, x, chunk=args.chunk)
    chunked_ms = 1e3 * (time.perf_counter() - start)
    print("\n".join("  " + line for line in _fmt(chunked).splitlines()))

    agree = float(np.max(np.abs(by_columns - chunked)))
    fd_error = float(np.max(np.abs(chunked - numerical_jacobian(f, x))))
    ok = agree <= AGREE_TOL and fd_error <= FD_TOL
    print(f"\nmax |column by column - chunked| = {agree:.1e}   (tolerance {AGREE_TOL:.0e})")
    print(f"max |chunked - central differences| = {fd_error:.1e}   "
          f"(tolerance {FD_TOL:.0e})")
    print(f"time: column by column {columns_ms:.2f} ms, chunked {chunked_ms:.2f} ms "
          "(first calls include warm-up)")
    print("OK" if ok else "MISMATCH: the Jacobians disagree beyond tolerance")
    return 0 if ok else 1


# -- the command line ---------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="dualad: automatic differentiation of plain NumPy code. "
                    "Without a command, runs 'example'.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {dualad.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_example_parser(subparsers)
    add_compare_parser(subparsers)
    add_jacobian_parser(subparsers)
    return parser


DEFAULT_COMMAND = "example"


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # bad usage: argparse prints usage and exits with code 2
    if args.command is None:
        args = parser.parse_args([DEFAULT_COMMAND])
    try:
        return args.run(args)
    except UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`: stop quietly (recipe of the Python docs, "signal")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
