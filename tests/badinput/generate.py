"""Generate the bad-input corpus: every way a scene bundle can be broken, next to good scenes.

Why generated, not committed: the files are derived from a real good bundle (so a "truncated
TIFF" is a real TIFF cut short, a "mismatched sidecar" a real Capella sidecar with wrong rows),
they stay tiny, and a reader change cannot drift away from what the corpus exercises.

``build_corpus(root)`` writes everything under ``root`` and returns the :class:`Case` list: for
each file the batch will see, whether it must fail and words its failure reason must contain
(besides the file's own name), or that it must succeed with no alerts. The two good scenes are
``good/tiny_sar.tif`` and ``good/tiny_opt.tif``. Run as a script to write a corpus to look at:
``python tests/badinput/generate.py /tmp/corpus``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from pipelines.scene.write import write_optical_tile, write_sar_bundle
from detectors.synth.optical import make_optical_tile
from detectors.synth.sar import make_sar_scene

ACQ = datetime(2025, 7, 1, 10, 0, tzinfo=timezone.utc)
HUGE = 200_000  #: rows and columns the crafted header claims (40 Gpx; the file is < 1 KB)


@dataclass(frozen=True)
class Case:
    """One file of the corpus and what the batch must say about it."""

    name: str  # path relative to the corpus root (may hold odd characters)
    fails: bool  # True: a per-scene failure; False: scanned fine
    words: tuple[str, ...] = ()  # lower-case words the failure reason must contain
    max_alerts: int | None = None  # for a scene that must succeed: at most this many alerts
    error: str | None = None  # expected exception class name in the report


def write_good_scenes(root: Path) -> tuple[Path, Path]:
    """The same tiny SAR bundle (2 vessels, 1 lifeboat) and optical tile (2 fires) as test_cli_scan."""
    sar = make_sar_scene(seed=7, rows=512, cols=512, spacing_m=0.5, n_vessels=2, n_lifeboats=1,
                         land=False, nodata_border=False)
    sar_tif = write_sar_bundle(root / "good", "tiny_sar", sar, origin_utm=(500000.0, 4000000.0), epsg=32633,
                               acquired=ACQ)
    opt = make_optical_tile(seed=11, rows=160, cols=160, pixel_size_m=30.0, sensor="landsat8", n_fires=2,
                            traps=True)
    opt_tif = write_optical_tile(root / "good", "tiny_opt", opt, origin_utm=(600000.0, 4400000.0), epsg=32610,
                                 acquired=ACQ)
    return sar_tif, opt_tif


def _write(path: Path, data: np.ndarray, dtype: str, *, descriptions: list[str] | None = None,
           nodata: float | None = None, compress: str | None = None, tags: dict[str, str] | None = None) -> Path:
    """A small UTM GeoTIFF (10 m pixels), optionally with band names, nodata and compression."""
    profile: dict[str, Any] = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                                   dtype=dtype, crs="EPSG:32633",
                                   transform=rasterio.Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0))
    if nodata is not None:
        profile["nodata"] = nodata
    if compress:
        profile["compress"] = compress
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data.astype(dtype))
            for i, d in enumerate(descriptions or [], start=1):
                ds.set_band_description(i, d)
            ds.update_tags(ACQUISITION_DATETIME="2025-08-01T10:30:00Z", **(tags or {}))
    return path


def _sar_sidecar(template: dict, rows: int, cols: int, data_type: str = "UInt16", **image: Any) -> dict:
    doc = json.loads(json.dumps(template))
    doc["collect"]["image"].update(rows=rows, columns=cols, data_type=data_type, **image)
    return doc


def _bundle(root: Path, stem: str, data: np.ndarray, dtype: str, sidecar: dict | str | None,
            **kw: Any) -> Path:
    tif = _write(root / f"{stem}.tif", data, dtype, **kw)
    if isinstance(sidecar, dict):
        (root / f"{stem}_extended.json").write_text(json.dumps(sidecar))
    elif isinstance(sidecar, str):
        (root / f"{stem}_extended.json").write_text(sidecar)
    return tif


def huge_header_tiff(path: Path, rows: int = HUGE, cols: int = HUGE, bits: int = 16, compression: int = 1) -> Path:
    """A BigTIFF whose header claims ``rows x cols`` pixels in one strip; the file is tiny.

    ``compression`` is the TIFF code (1 none, 8 deflate): a deflate strip may legitimately be
    small, so only the block-size limit can catch that one.

    Hand-built (tag by tag) because no writer would produce a header that lies: this is what a
    corrupt or malicious file looks like. Reading it naively would allocate rows*cols*bits/8 bytes.
    """
    # A deflate strip claims the 64 bytes actually present (a plausible compressed size), so only
    # the block-size limit can tell that decoding it would need rows*cols*bits/8 bytes.
    nbytes = rows * cols * bits // 8 if compression == 1 else 64
    # (tag, type, count, value); types: 3 SHORT, 4 LONG, 16 LONG8. Values are left-justified in 8 bytes.
    data_offset = 16 + 8 + 11 * 20 + 8
    entries = [
        (256, 4, 1, cols), (257, 4, 1, rows), (258, 3, 1, bits), (259, 3, 1, compression), (262, 3, 1, 1),
        (273, 16, 1, data_offset), (277, 3, 1, 1), (278, 4, 1, rows), (279, 16, 1, nbytes),
        (284, 3, 1, 1), (339, 3, 1, 1),
    ]
    out = bytearray(b"II" + struct.pack("<HHHQ", 43, 8, 0, 16))
    out += struct.pack("<Q", len(entries))
    for tag, typ, count, value in entries:
        fmt = {3: "<H6x", 4: "<I4x", 16: "<Q"}[typ]
        out += struct.pack("<HHQ", tag, typ, count) + struct.pack(fmt, value)
    out += struct.pack("<Q", 0)
    assert len(out) == data_offset
    out += b"\x00" * 64  # a few pixels' worth; the header claims ~nbytes
    path.write_bytes(bytes(out))
    return path


def sparse_bomb_tiff(path: Path, sidecar_template: dict | None = None, rows: int = HUGE, cols: int = HUGE,
                     block: int = 1024) -> Path:
    """A genuine sparse tiled uint16 GeoTIFF of ``rows x cols`` pixels with one written block of
    sea-like clutter (GDAL ``SPARSE_OK``: every other block has offset 0), plus a Capella sidecar
    that agrees with it when ``sidecar_template`` is given. About 0.6 MB for 40 Gpx.

    Unlike :func:`huge_header_tiff` nothing about it is corrupt: its block tables are consistent
    and each written block is where they say, so only a pixel budget can refuse it.
    """
    rng = np.random.default_rng(1)
    patch = rng.gamma(4.0, 100.0, size=(block, block)).clip(1, 65535).astype(np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="uint16",
                           crs="EPSG:32633", transform=rasterio.Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0),
                           nodata=0, tiled=True, blockxsize=block, blockysize=block, sparse_ok=True,
                           compress="DEFLATE", bigtiff="YES") as ds:
            ds.write(patch, 1, window=rasterio.windows.Window(0, 0, block, block))
    if sidecar_template is not None:
        side = _sar_sidecar(sidecar_template, rows, cols)
        geom = side["collect"]["image"].get("image_geometry") or {}
        if isinstance(geom.get("geotransform"), list):
            geom["geotransform"] = [500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5]
        path.with_name(path.stem + "_extended.json").write_text(json.dumps(side))
    return path


def build_corpus(root: Path) -> list[Case]:
    """Write the good scenes and every bad input under ``root``; return what each must produce."""
    root.mkdir(parents=True, exist_ok=True)
    sar_tif, opt_tif = write_good_scenes(root)
    template = json.loads((sar_tif.parent / "tiny_sar_extended.json").read_text())
    good_bytes = sar_tif.read_bytes()
    bad = root / "bad"
    bad.mkdir()
    cases: list[Case] = []

    def add(name: str, fails: bool, *words: str, max_alerts: int | None = None, error: str | None = None) -> None:
        cases.append(Case(name, fails, tuple(w.lower() for w in words), max_alerts, error))

    rng = np.random.default_rng(0)
    small = rng.integers(50, 400, size=(1, 64, 64)).astype(np.uint16)
    side64 = _sar_sidecar(template, 64, 64)

    # ---- truncated and corrupt TIFFs
    (bad / "truncated_half.tif").write_bytes(good_bytes[: len(good_bytes) // 2])
    shutil.copy(sar_tif.parent / "tiny_sar_extended.json", bad / "truncated_half_extended.json")
    add("bad/truncated_half.tif", True, "truncated", "only")
    (bad / "truncated_header.tif").write_bytes(good_bytes[:40])
    add("bad/truncated_header.tif", True, "cannot open geotiff")
    huge_header_tiff(bad / "truncated_raw.tif", 64, 64)  # uncompressed 64 x 64, pixels cut off: size check
    (bad / "truncated_raw_extended.json").write_text(json.dumps(side64))
    add("bad/truncated_raw.tif", True, "truncated", "8,192 bytes")
    (bad / "corrupt_garbage.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 50)
    add("bad/corrupt_garbage.tif", True, "cannot open geotiff")
    (bad / "empty.tif").write_bytes(b"")
    add("bad/empty.tif", True, "cannot open geotiff")
    (bad / "not_a_tiff.tif").write_text("this is a text file, not a raster\n")
    add("bad/not_a_tiff.tif", True, "cannot open geotiff")
    comp = _bundle(bad, "corrupt_pixels", rng.integers(50, 400, size=(1, 256, 256)), "uint16",
                   _sar_sidecar(template, 256, 256), compress="deflate")
    blob = bytearray(comp.read_bytes())
    lo, hi = len(blob) // 3, 2 * len(blob) // 3  # pixel strips only: rasterio puts the IFD at the end
    blob[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    comp.write_bytes(bytes(blob))
    add("bad/corrupt_pixels.tif", True, "cannot read window")

    # ---- a header claiming 200,000 x 200,000 pixels (tiny file): rejected before any allocation
    huge_header_tiff(bad / "huge_header.tif")
    add("bad/huge_header.tif", True, "200000", "truncated")
    huge_header_tiff(bad / "huge_header_sar.tif")  # with a sidecar that agrees: the size check still fires
    (bad / "huge_header_sar_extended.json").write_text(json.dumps(_sar_sidecar(template, HUGE, HUGE)))
    add("bad/huge_header_sar.tif", True, "200000", "truncated")
    huge_header_tiff(bad / "huge_header_deflate.tif", compression=8)  # compressed: the block limit fires
    (bad / "huge_header_deflate_extended.json").write_text(json.dumps(_sar_sidecar(template, HUGE, HUGE)))
    add("bad/huge_header_deflate.tif", True, "200000", "one block")
    # A real sparse tiled GeoTIFF (< 1 MB) that claims 200,000 x 200,000 pixels, with a sidecar that
    # agrees: every block it points to exists, so only the pixel budget can refuse it.
    sparse_bomb_tiff(bad / "sparse_bomb.tif", template)
    add("bad/sparse_bomb.tif", True, "200,000 x 200,000", "40,000 mpx", "pixel budget", "--max-megapixels",
        error="SceneTooLargeError")

    # ---- sidecars: missing, malformed, wrong shape, wrong types, orphaned, mismatched with the TIFF
    _bundle(bad, "sidecar_missing", small, "uint16", None)
    add("bad/sidecar_missing.tif", True, "missing sidecar", "sidecar_missing_extended.json", error="SidecarError")
    _bundle(bad, "sidecar_malformed", small, "uint16", '{"collect": {"image": ')
    add("bad/sidecar_malformed.tif", True, "not valid json", error="SidecarError")
    _bundle(bad, "sidecar_list", small, "uint16", "[1, 2, 3]")
    add("bad/sidecar_list.tif", True, "json object", error="SidecarError")
    _bundle(bad, "sidecar_unknown", small, "uint16", {"hello": "world"})
    add("bad/sidecar_unknown.tif", True, "neither capella", error="SidecarError")
    rows_text = _sar_sidecar(template, 64, 64)
    rows_text["collect"]["image"]["rows"] = "sixty-four"
    _bundle(bad, "sidecar_rows_text", small, "uint16", rows_text)
    add("bad/sidecar_rows_text.tif", True, "rows", error="SidecarError")
    _bundle(bad, "sidecar_mismatch", small, "uint16", _sar_sidecar(template, 999, 777))
    add("bad/sidecar_mismatch.tif", True, "rows=999", "columns=777", "64 rows x 64 columns", error="SidecarError")
    (bad / "orphan_extended.json").write_text(json.dumps(side64))
    add("bad/orphan_extended.json", True, "no geotiff for sidecar")

    # ---- unknown / mismatched data types
    _bundle(bad, "dtype_unknown", small, "uint16", _sar_sidecar(template, 64, 64, data_type="CFloat128"))
    add("bad/dtype_unknown.tif", True, "data_type", error="SidecarError")
    _bundle(bad, "dtype_mismatch", small.astype(np.float64), "float64", side64)
    add("bad/dtype_mismatch.tif", True, "unsupported data type", "float64", error="SidecarError")
    cplx = (rng.random((3, 32, 32)) + 1j * rng.random((3, 32, 32))).astype(np.complex64)
    _bundle(bad, "optical_complex", cplx, "complex64", None, descriptions=["red", "nir", "swir22"])
    add("bad/optical_complex.tif", True, "unsupported data type", "complex64")

    # ---- NaN, inf and all-zero scenes: valid files whose pixels are all no-data -> no alerts, no failure
    nan_amp = np.full((1, 64, 64), np.nan, np.float32)
    _bundle(bad, "all_nan_sar", nan_amp, "float32", _sar_sidecar(template, 64, 64, data_type="Float32"))
    add("bad/all_nan_sar.tif", False, max_alerts=0)
    inf_amp = np.where(rng.random((1, 64, 64)) < 0.5, np.inf, -np.inf).astype(np.float32)
    _bundle(bad, "all_inf_sar", inf_amp, "float32", _sar_sidecar(template, 64, 64, data_type="Float32"))
    add("bad/all_inf_sar.tif", False, max_alerts=0)
    _bundle(bad, "all_zero_sar", np.zeros((1, 64, 64)), "uint16", side64)
    add("bad/all_zero_sar.tif", False, max_alerts=0)
    fire_bands = ["blue", "green", "red", "nir08", "swir16", "swir22"]
    _bundle(bad, "all_nan_optical", np.full((6, 48, 48), np.nan), "float32", None, descriptions=fire_bands)
    add("bad/all_nan_optical.tif", False, max_alerts=0)
    _bundle(bad, "all_zero_optical", np.zeros((6, 48, 48)), "float32", None, descriptions=fire_bands, nodata=0)
    add("bad/all_zero_optical.tif", False, max_alerts=0)

    # ---- wrong or missing band names
    refl = (rng.random((3, 32, 32)) * 0.3).astype(np.float32)
    _bundle(bad, "bands_unnamed", refl, "float32", None)
    add("bad/bands_unnamed.tif", True, "no recognisable band names")
    _bundle(bad, "bands_wrong", refl, "float32", None, descriptions=["foo", "bar", "baz"])
    add("bad/bands_wrong.tif", True, "no recognisable band names", "'foo'")
    _bundle(bad, "bands_partly_wrong", refl, "float32", None, descriptions=["red", "nir", "banana"])
    add("bad/bands_partly_wrong.tif", True, "unrecognised", "banana")
    _bundle(bad, "bands_duplicate", refl, "float32", None, descriptions=["red", "B4", "nir"])
    add("bad/bands_duplicate.tif", True, "duplicate band name 'red'")
    _bundle(bad, "bands_missing_for_fire", refl, "float32", None, descriptions=["blue", "green", "red"])
    add("bad/bands_missing_for_fire.tif", True, "band")

    # ---- symlinks: dangling, two-file loop, self loop, and a directory loop (must not hang)
    os.symlink("does_not_exist.tif", bad / "link_dangling.tif")
    add("bad/link_dangling.tif", True, "broken symlink", "does_not_exist.tif")
    os.symlink("link_loop_b.tif", bad / "link_loop_a.tif")
    os.symlink("link_loop_a.tif", bad / "link_loop_b.tif")
    add("bad/link_loop_a.tif", True, "symlink loop")
    add("bad/link_loop_b.tif", True, "symlink loop")
    os.symlink("link_self.tif", bad / "link_self.tif")
    add("bad/link_self.tif", True, "symlink loop")
    os.symlink("..", bad / "loopdir")  # bad/loopdir -> root: a walker that follows it never ends
    if hasattr(os, "mkfifo"):  # GDAL opening a FIFO would block forever: refused before any open()
        os.mkfifo(bad / "fifo.tif")
        add("bad/fifo.tif", True, "not a regular file")

    # ---- odd names: separators, newlines, shell characters, non-UTF-8 bytes
    odd = root / "odd"
    odd.mkdir()
    (odd / "back\\slash.tif").write_bytes(b"II*\x00" + b"\xff" * 40)
    add("odd/back\\slash.tif", True, "cannot open geotiff")
    (odd / "new\nline.tif").write_bytes(b"not a tiff")
    add("odd/new\nline.tif", True, "cannot open geotiff")
    (odd / "[").mkdir()  # the path odd/[/]markup.tif holds Rich's "[/]" closing tag: must print as text
    (odd / "[" / "]markup.tif").write_bytes(b"II*\x00")
    add("odd/[/]markup.tif", True, "cannot open geotiff")
    name = os.fsdecode(b"latin1_\xe9t\xe9.tif")  # not UTF-8: surrogate-escaped str
    (odd / name).write_bytes(good_bytes)
    add(f"odd/{name}", True, "not valid utf-8")
    # A good scene under a hostile name still produces its alerts.
    nice = "-odd name; $(x) ü*?.tif"
    shutil.copy(opt_tif, odd / nice)
    shutil.copy(opt_tif.parent / "tiny_opt_extended.json", odd / (Path(nice).stem + "_extended.json"))
    add(f"odd/{nice}", False)
    return cases


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "badinput_corpus")
    for c in build_corpus(target):
        print(("FAIL " if c.fails else "OK   ") + ascii(c.name), ", ".join(c.words))
