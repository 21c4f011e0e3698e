"""Mutation fuzzing of the image reader (hdr_plugin.io.read_input).

Builds a small corpus of valid PNG (8/16-bit, gray, RGBA, interlaced), JPEG (baseline,
progressive, restart markers, EXIF), TIFF (raw, LZW, deflate, 16-bit, tiled), WebP (lossy,
lossless), BMP, Radiance HDR and OpenEXR (scanline and tiled, several compressions,
alpha, luminance/chroma) files, mutates them (bit flips, random bytes, truncation,
insertion, deletion, block copies, header fields patched to 0 / 2^16-1 / 2^31-1 ...) and
feeds every mutant through ``read_input``.  The only acceptable outcomes are a decoded
image or an ``ImageReadError`` (a ``CorruptImageWarning`` with ``--allow-corrupt``);
anything else is a finding, and so is a worker process that dies (a crash in C code).

    nice -n 19 python tools/fuzz_inputs.py --cases 100000 --workers 1 --out fuzz-findings

prints a summary line and exits 1 if there were findings; the inputs that caused them are
saved in ``--out``.  The test suite runs a few hundred cases of the same mutator
(tests/test_fuzz_inputs.py).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's hdr_plugin

#: pixel limit used while fuzzing: mutated headers claim huge sizes; the limit logic is
#: what is exercised, not the machine's memory
FUZZ_MAX_PIXELS = 4_000_000
INTERESTING = [0, 1, 2, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def _image(rng: np.random.Generator, h: int, w: int, c: int, dtype=np.uint8) -> np.ndarray:
    import cv2

    top = 255 if dtype == np.uint8 else 65535
    a = rng.integers(0, top + 1, (h, w, c)).astype(np.float32)
    a = cv2.GaussianBlur(a, (7, 7), 2)
    a[: h // 4, : w // 3] = top  # a clipped block
    a = np.clip(a, 0, top).astype(dtype)
    return a[:, :, 0] if a.ndim == 3 and c == 1 else a


def seed_corpus() -> dict[str, bytes]:
    """Valid files in every supported format and a few variants of each (a few KB each)."""
    import cv2
    import OpenEXR
    from PIL import Image

    rng = np.random.default_rng(2020)
    out: dict[str, bytes] = {}

    def enc(ext, a, params=()):
        ok, buf = cv2.imencode(ext, a, list(params))
        assert ok, ext
        return buf.tobytes()

    rgb8, rgba8, gray8 = _image(rng, 40, 56, 3), _image(rng, 33, 47, 4), _image(rng, 30, 41, 1)
    rgb16 = _image(rng, 24, 36, 3, np.uint16)
    out["rgb8.png"] = enc(".png", rgb8)
    out["rgba8.png"] = enc(".png", rgba8)
    out["gray8.png"] = enc(".png", gray8)
    out["rgb16.png"] = enc(".png", rgb16)
    pil = Image.fromarray(rgb8[:, :, ::-1])
    buf = io.BytesIO()
    pil.save(buf, "PNG", interlace=True)
    out["interlaced.png"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rgb8[:, :, 0]).convert("P").save(buf, "PNG")
    out["palette.png"] = buf.getvalue()
    out["base.jpg"] = enc(".jpg", rgb8, [cv2.IMWRITE_JPEG_QUALITY, 92])
    out["progressive.jpg"] = enc(".jpg", rgb8, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    out["restart.jpg"] = enc(".jpg", rgb8, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])
    out["gray.jpg"] = enc(".jpg", gray8)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    pil.save(buf, "JPEG", exif=exif, quality=90)
    out["exif.jpg"] = buf.getvalue()
    out["raw.tif"] = enc(".tif", rgb8, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    out["lzw.tif"] = enc(".tif", rgba8, [cv2.IMWRITE_TIFF_COMPRESSION, 5])
    out["deflate16.tif"] = enc(".tif", rgb16, [cv2.IMWRITE_TIFF_COMPRESSION, 8])
    buf = io.BytesIO()
    pil.save(buf, "TIFF", compression="packbits")
    out["packbits.tif"] = buf.getvalue()
    out["lossy.webp"] = enc(".webp", rgb8, [cv2.IMWRITE_WEBP_QUALITY, 80])
    out["lossless.webp"] = enc(".webp", rgba8, [cv2.IMWRITE_WEBP_QUALITY, 101])
    out["rgb.bmp"] = enc(".bmp", rgb8)
    out["rgb.ppm"] = enc(".ppm", rgb8)
    lin = (rgb8[:, :, ::-1].astype(np.float32) / 64.0) ** 2
    out["scene.hdr"] = enc(".hdr", np.ascontiguousarray(lin[:, :, ::-1]))

    def exr(name, channels, compression="ZIP", tiled=False):
        header = {"compression": getattr(OpenEXR, f"{compression}_COMPRESSION"), "type": OpenEXR.tiledimage if tiled else OpenEXR.scanlineimage}
        if tiled:
            tiles = OpenEXR.TileDescription()
            tiles.xSize, tiles.ySize, tiles.mode = 16, 16, OpenEXR.ONE_LEVEL
            header["tiles"] = tiles
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.exr")
            with OpenEXR.File(header, channels) as f:
                f.write(p)
            out[name] = Path(p).read_bytes()

    r, g, b = (np.ascontiguousarray(lin[:, :, i]) for i in range(3))
    half = {k: v.astype(np.float16) for k, v in zip("RGB", (r, g, b))}
    exr("zip.exr", half)
    exr("none.exr", dict(half), "NO")
    exr("piz.exr", dict(half), "PIZ")
    exr("rle.exr", dict(half), "RLE")
    exr("zips_float.exr", {k: v for k, v in zip("RGB", (r, g, b))}, "ZIPS")
    exr("alpha.exr", dict(half, A=np.ones_like(r, np.float16)))
    exr("tiled.exr", dict(half), "ZIP", tiled=True)
    exr("luma.exr", {"Y": (0.2 * r + 0.7 * g + 0.1 * b).astype(np.float16)})
    return out


def mutate(data: bytes, rnd: random.Random) -> bytes:
    """One to four random mutations, biased towards the header where the lies are."""
    b = bytearray(data)
    for _ in range(rnd.choice((1, 1, 1, 2, 2, 3, 4))):
        if not b:
            break
        n = len(b)
        head = rnd.random() < 0.5
        pos = rnd.randrange(min(n, 96) if head else n)
        op = rnd.randrange(9)
        if op == 0:  # bit flip
            b[pos] ^= 1 << rnd.randrange(8)
        elif op == 1:  # random bytes
            k = rnd.randint(1, 8)
            b[pos : pos + k] = bytes(rnd.randrange(256) for _ in range(k))
        elif op == 2:  # truncate
            del b[rnd.randrange(1, n) if n > 1 else 0 :]
        elif op == 3:  # insert
            b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif op == 4:  # delete
            del b[pos : pos + rnd.randint(1, 16)]
        elif op == 5:  # an interesting 16/32-bit value, either byte order
            v = rnd.choice(INTERESTING)
            width = rnd.choice((2, 4))
            b[pos : pos + width] = (v & ((1 << (8 * width)) - 1)).to_bytes(width, rnd.choice(("big", "little")))
        elif op == 6:  # copy a block elsewhere
            k = rnd.randint(1, min(64, n))
            src = rnd.randrange(max(1, n - k))
            b[pos : pos + k] = b[src : src + k]
        elif op == 7:  # zero a run
            k = rnd.randint(1, 64)
            b[pos : pos + k] = bytes(len(b[pos : pos + k]))
        else:  # an 0xFF marker byte (JPEG markers, TIFF/EXR sizes)
            b[pos] = 0xFF
    return bytes(b)


def check_one(path: str, data: bytes, allow_corrupt: bool) -> str | None:
    """Feed ``data`` (written to ``path``) through read_input; a description of a finding, or None."""
    from hdr_plugin.io import CorruptImageWarning, ImageReadError, read_input

    Path(path).write_bytes(data)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            img = read_input(path, "display", max_pixels=FUZZ_MAX_PIXELS, allow_corrupt=allow_corrupt)
        for w in caught:
            if not issubclass(w.category, CorruptImageWarning):
                return f"unexpected warning {w.category.__name__}: {w.message}"
            if not allow_corrupt:
                return f"CorruptImageWarning without allow_corrupt: {w.message}"
        rgb = img.rgb
        if rgb.dtype != np.float32 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] * rgb.shape[1] > FUZZ_MAX_PIXELS:
            return f"bad result array {rgb.dtype} {rgb.shape}"
        if not np.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 1:
            return "result outside [0, 1] or not finite"
        if img.alpha is not None and img.alpha.shape != rgb.shape[:2]:
            return f"alpha shape {img.alpha.shape} vs {rgb.shape}"
    except ImageReadError as e:
        if not str(e).startswith(path):
            return f"ImageReadError without the file name: {e}"
    except Exception as e:  # the finding this tool looks for
        return f"{type(e).__name__}: {e}\n" + traceback.format_exc(limit=6)
    return None


def _worker(seeds: dict[str, bytes], start: int, count: int, seed: int, tmp: str, results):
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a runaway allocation fails, not the machine
    except (ImportError, ValueError, OSError):
        pass
    names = sorted(seeds)
    for i in range(start, start + count):
        rnd = random.Random(seed * 1_000_003 + i)
        name = names[i % len(names)]
        data = mutate(seeds[name], rnd)
        path = os.path.join(tmp, f"case{i}{Path(name).suffix}")
        with open(os.path.join(tmp, f"current-{os.getpid()}"), "wb") as f:
            f.write(f"{i}\n{name}\n".encode() + data)
        finding = check_one(path, data, allow_corrupt=(i % 5 == 0))
        os.unlink(path)
        results.put((i, name, finding, data if finding else b""))
    results.put(None)


def run(cases: int, workers: int, seed: int, out: Path) -> int:
    seeds = seed_corpus()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    findings, done, crashes = 0, 0, 0
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    with tempfile.TemporaryDirectory() as tmp:
        per = -(-cases // workers)
        pending = [(w * per, min(per, cases - w * per)) for w in range(workers) if cases - w * per > 0]
        while pending:
            start, count = pending.pop(0)
            results = ctx.Queue()
            p = ctx.Process(target=_worker, args=(seeds, start, count, seed, tmp, results), daemon=True)
            p.start()
            last = start - 1
            while True:
                try:
                    item = results.get(timeout=5)
                except Exception:
                    if p.is_alive():
                        continue
                    item = "dead"
                if item is None:
                    break
                if item == "dead":  # the worker died in C code: save the case, go on after it
                    crashes += 1
                    cur = Path(tmp) / f"current-{p.pid}"
                    blob = cur.read_bytes() if cur.exists() else b""
                    (out / f"crash-{last + 1}.bin").write_bytes(blob)
                    print(f"CRASH at case {last + 1} (exit code {p.exitcode}); saved {out / f'crash-{last + 1}.bin'}", flush=True)
                    if start + count - (last + 2) > 0:
                        pending.insert(0, (last + 2, start + count - (last + 2)))
                    break
                i, name, finding, data = item
                last = i
                done += 1
                if finding:
                    findings += 1
                    (out / f"finding-{i}-{name}").write_bytes(data)
                    (out / f"finding-{i}-{name}.txt").write_text(finding)
                    print(f"finding at case {i} ({name}): {finding.splitlines()[0]}", flush=True)
                if done % 5000 == 0:
                    print(f"{done}/{cases} cases, {findings} findings, {crashes} crashes, {time.time() - t0:.0f} s", flush=True)
            p.join(timeout=10)
    print(f"fuzz_inputs: {done} cases over {len(seeds)} seed files, {crashes} crashes, {findings} exceptions outside ImageReadError, {time.time() - t0:.0f} s")
    return 1 if findings or crashes else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    args = ap.parse_args(argv)
    return run(args.cases, args.workers, args.seed, args.out)


if __name__ == "__main__":
    sys.exit(main())
