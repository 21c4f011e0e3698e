"""``hdr-plugin train``: run a training stage, or export the trained weights.

    hdr-plugin train lin --runs runs --data ../shared/data --steps 12000
    hdr-plugin train export --runs runs --out weights
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .stages import DEFAULT_BATCH, STAGES

log = logging.getLogger("hdr_plugin.train")


def add_train_parser(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train one stage (deq, lin, hal, ref, joint) or export the best weights",
        description="Stage-wise training on synthetic pairs made from real HDR scenes; resumes from <runs>/<stage>/last.pt.",
    )
    t.add_argument("stage", choices=[*STAGES, "export"], help="stage to train, or 'export' to write weights/")
    t.add_argument("--runs", type=Path, default=Path("runs"), help="checkpoint folder, kept out of git (default ./runs)")
    t.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with hdr/INDEX.csv (default ../shared/data)")
    t.add_argument("--steps", type=int, default=10000, help="total steps of the learning-rate schedule")
    t.add_argument("--max-minutes", type=float, default=None, help="stop this session after N minutes (resumable)")
    t.add_argument("--batch", type=int, default=None, help=f"batch size (defaults {DEFAULT_BATCH})")
    t.add_argument("--crop", type=int, default=256)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    t.add_argument("--workers", type=int, default=1, help="data synthesis worker processes")
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--val-views", type=int, default=1, help="views per held-out scene in the validation set (more: finer ranking)")
    t.add_argument("--val-size", type=int, default=256, help="validation crop size in pixels")
    t.add_argument("--hal-input", default="camera", choices=["camera", "linear"],
                   help="hal stage input: the camera output linearised with its true curve (JPEG and quantization included; default) or the clean linear image")
    t.add_argument("--light-weight", type=float, default=0.0, help="hal stage: weight of the missing-light term (stops, over-exposed region)")
    t.add_argument("--log-weight", type=float, default=0.0, help="hal stage: weight of the paper's log-domain L2 over the over-exposed region")
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    t.add_argument("--device", default="cpu")
    t.add_argument("--config", type=Path, default=None, help="model config YAML (default: the shipped one)")
    t.add_argument("--init", type=Path, default=None, help="start from these weights instead of random; export: take the networks no run in --runs trained from them")
    t.add_argument("--out", type=Path, default=Path("weights"), help="export: destination folder (default weights/)")
    t.set_defaults(func=lambda args: run_train(args))


def run_train(args: argparse.Namespace) -> int:
    logging.getLogger("hdr_plugin").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.stage == "export":
        from ..model import ModelConfig
        from .export import export_weights

        config = ModelConfig.load(args.config) if args.config else None  # default: each network's own run config
        info = export_weights(args.runs, args.out, data=args.data, config=config, init=args.init)
        print(f"wrote {info.path} ({info.path.stat().st_size / 1e6:.1f} MB, sha256 {info.sha256[:16]}...)")
        return 0
    from ..devices import resolve_device
    from .train import TrainOptions, train

    device = resolve_device(args.device)
    opts = TrainOptions(
        stage=args.stage,
        runs=args.runs,
        data=args.data,
        steps=args.steps,
        max_minutes=args.max_minutes,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        seed=args.seed,
        precision=args.precision,
        device=str(device),
        threads=args.threads,
        workers=args.workers,
        log_every=args.log_every,
        val_every=args.val_every,
        val_views=args.val_views,
        val_size=args.val_size,
        hal_input=args.hal_input,
        light_weight=args.light_weight,
        log_weight=args.log_weight,
        config=args.config,
        init=args.init,
    )
    try:
        out = train(opts)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.stage}: checkpoints in {out}")
    return 0
