"""``hdr-plugin eval`` argument parsing (torch is imported only when the command runs)."""

from __future__ import annotations

from pathlib import Path

#: real photos of ``ldr_real/`` shown by ``--sheet`` unless ``--sheet-photos`` says otherwise
DEFAULT_SHEET_PHOTOS = ("singlehdr/HDR-Real/01214", "singlehdr/HDR-Real/00218")


def add_eval_parser(sub, add_engine_options) -> None:
    e = sub.add_parser("eval", help="score the validation split (PU21-PSNR, light held, texture) with ablations")
    e.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with hdr/INDEX.csv")
    e.add_argument("--split", choices=["v1", "v2"], default="v1",
                   help="validation split (training/splits.yaml): v1 = the 16 scenes x 2 views every earlier number "
                        "was measured on (default); v2 = 20 scenes x 4 views")
    e.add_argument("--size", type=int, default=384, help="validation view size (default 384)")
    e.add_argument("--views", type=int, default=None, help="views per validation scene (default: the split's, v1 2, v2 4)")
    e.add_argument("--seed", type=int, default=2020)
    e.add_argument("--limit", type=int, default=None, help="only the first N scenes (quick check)")
    e.add_argument("--jpeg-variant", action="store_true",
                   help="also score everything on a camera-JPEG variant of the pairs (quality 60-90, 4:2:0, light "
                        "sharpening; seeded); about doubles the run time")
    e.add_argument("--json", type=Path, default=None, help="also write all numbers to this JSON file")
    e.add_argument("--sheet", type=Path, default=None, metavar="DIR",
                   help="instead of scoring, write a picture sheet of real photos (ldr_real/) at 0/-2/-4 EV beside the "
                        "paper's tone-mapped result into DIR (those photos carry no licence: keep the sheet out of git)")
    e.add_argument("--sheet-photos", nargs="+", default=list(DEFAULT_SHEET_PHOTOS), metavar="FOLDER",
                   help="scene folders under <data>/ldr_real/ with in.jpg (and ours.jpg) (default: %(default)s)")
    add_engine_options(e)
    e.set_defaults(func=_run)


def _run(args) -> int:
    from .evaluate import run_eval

    return run_eval(args)
