"""``hdr-plugin eval`` argument parsing (torch is imported only when the command runs)."""

from __future__ import annotations

from pathlib import Path


def add_eval_parser(sub, add_engine_options) -> None:
    e = sub.add_parser("eval", help="score the validation split (PU21-PSNR etc.) with ablations")
    e.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with hdr/INDEX.csv")
    e.add_argument("--size", type=int, default=384, help="validation view size (default 384)")
    e.add_argument("--views", type=int, default=2, help="views per validation scene (default 2)")
    e.add_argument("--seed", type=int, default=2020)
    e.add_argument("--limit", type=int, default=None, help="only the first N scenes (quick check)")
    e.add_argument("--json", type=Path, default=None, help="also write all numbers to this JSON file")
    add_engine_options(e)
    e.set_defaults(func=_run)


def _run(args) -> int:
    from .evaluate import run_eval

    return run_eval(args)
