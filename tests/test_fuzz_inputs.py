"""Fuzzing the image reader: mutated PNG, JPEG, TIFF, WebP, BMP, Radiance and OpenEXR bytes
through ``read_input``.  Only a decoded image or the project's ``ImageReadError`` (naming
the file) may come out.  A few hundred cases here; ``tools/fuzz_inputs.py --cases 100000``
runs the same mutator at length (in worker processes, so that crashes in C are caught too).
"""

from __future__ import annotations

import importlib.util
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("fuzz_inputs", ROOT / "tools" / "fuzz_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FUZZ = _tool()
SEEDS = FUZZ.seed_corpus()
NAMES = sorted(SEEDS)


def test_the_seed_corpus_is_valid_and_covers_every_format():
    from hdr_plugin.io import probe_image, read_input

    formats = set()
    with tempfile.TemporaryDirectory() as d:
        for name, data in SEEDS.items():
            p = Path(d) / name
            p.write_bytes(data)
            formats.add(probe_image(p).format)
            img = read_input(p, "display")  # every seed decodes cleanly: no warning, no error
            assert img.rgb.shape[0] > 0, name
    assert {"PNG", "JPEG", "TIFF", "WebP", "BMP", "OpenEXR", "Radiance HDR"} <= formats


@pytest.mark.parametrize("batch", range(4))
def test_random_mutations_raise_only_image_read_errors(batch):
    findings = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(60):
            case = batch * 60 + i
            rnd = random.Random(case)
            name = NAMES[case % len(NAMES)]
            data = FUZZ.mutate(SEEDS[name], rnd)
            finding = FUZZ.check_one(str(Path(d) / f"case{case}{Path(name).suffix}"), data, allow_corrupt=case % 3 == 0)
            if finding:
                findings.append(f"case {case} ({name}): {finding}")
    assert not findings, "\n".join(findings)


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(NAMES),
    patches=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    head_patches=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=3),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    allow=st.booleans(),
)
def test_hypothesis_byte_patches_and_truncations(name, patches, head_patches, cut, allow):
    data = bytearray(SEEDS[name])
    for where, value in patches:
        data[int(where * len(data))] = value
    for where, value in head_patches:  # headers are where size lies live
        if where < len(data):
            data[where] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    with tempfile.TemporaryDirectory() as d:
        finding = FUZZ.check_one(str(Path(d) / f"x{Path(name).suffix}"), bytes(data), allow_corrupt=allow)
    assert finding is None, finding
