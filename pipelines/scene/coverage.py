"""Which blocks of a GeoTIFF hold data at all, read from its block tables (no pixel is decoded).

Why: a GeoTIFF written with GDAL's ``SPARSE_OK`` (or any writer that leaves blocks out) stores
a never-written block as offset 0 / byte count 0, and GDAL hands it back as no-data. A swath-edge
scene, or a crafted header that claims 40 gigapixels over a few written blocks, is mostly such
blocks. Reading and scanning them costs time and energy for nothing, so the scan asks this map
first: a tile whose blocks are all absent is skipped unread, and a tile that is only partly
covered is cut to the bounding box of its present blocks (everything outside that box is no-data
anyway). A mostly empty scene then costs what its data costs.

Read with ``tifffile`` (a maintained TIFF reader) because rasterio does not expose GDAL's
``GDALGetDataCoverageStatus``, and asking GDAL per block (``BLOCK_OFFSET_x_y``) takes one call per
block: hundreds of thousands on a large tiled file, against one array read here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockCoverage:
    """Presence of each block of the full-resolution image: ``present[by, bx]`` (all bands)."""

    present: np.ndarray  # bool (ny, nx)
    block_rows: int
    block_cols: int
    rows: int
    cols: int

    @property
    def fraction_present(self) -> float:
        """Share of the blocks that hold data (1.0 for an ordinary, fully written file)."""
        return float(self.present.mean()) if self.present.size else 1.0

    def _span(self, row_off: int, col_off: int, height: int, width: int) -> tuple[int, int, int, int]:
        by0, bx0 = row_off // self.block_rows, col_off // self.block_cols
        by1 = -(-(row_off + height) // self.block_rows)
        bx1 = -(-(col_off + width) // self.block_cols)
        return by0, bx0, by1, bx1

    def data_bbox(self, row_off: int, col_off: int, height: int, width: int
                  ) -> tuple[int, int, int, int] | None:
        """(r0, c0, r1, c1) half-open pixel box, inside the window, of the window's present
        blocks; None when every block the window touches is absent."""
        by0, bx0, by1, bx1 = self._span(row_off, col_off, height, width)
        sub = self.present[by0:by1, bx0:bx1]
        if not sub.any():
            return None
        ys = np.flatnonzero(sub.any(axis=1))
        xs = np.flatnonzero(sub.any(axis=0))
        r0 = max(row_off, (by0 + int(ys[0])) * self.block_rows)
        r1 = min(row_off + height, (by0 + int(ys[-1]) + 1) * self.block_rows)
        c0 = max(col_off, (bx0 + int(xs[0])) * self.block_cols)
        c1 = min(col_off + width, (bx0 + int(xs[-1]) + 1) * self.block_cols)
        return r0, c0, r1, c1

    def absent_mask(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray | None:
        """Bool (height, width), True on pixels of absent blocks; None when all are present."""
        by0, bx0, by1, bx1 = self._span(row_off, col_off, height, width)
        sub = self.present[by0:by1, bx0:bx1]
        if sub.all():
            return None
        full = np.repeat(np.repeat(~sub, self.block_rows, axis=0), self.block_cols, axis=1)
        r, c = row_off - by0 * self.block_rows, col_off - bx0 * self.block_cols
        return full[r:r + height, c:c + width]


def block_coverage(path: Path, rows: int, cols: int) -> BlockCoverage | None:
    """The block map of ``path``'s first (full-resolution) image, or None when it cannot be told.

    None means "assume every block holds data" (not a TIFF tifffile can parse, tables that do not
    match the header GDAL read): the scan then reads every tile, as it always did.
    """
    try:
        import tifffile
    except ImportError:  # pragma: no cover - a declared dependency; stay correct without it
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if (int(page.imagelength), int(page.imagewidth)) != (rows, cols):
                return None
            if page.is_tiled:
                bh, bw = int(page.tilelength), int(page.tilewidth)
            else:
                bh, bw = int(page.rowsperstrip or rows), cols
            bh, bw = max(1, min(bh, rows)), max(1, bw)
            ny, nx = -(-rows // bh), -(-cols // bw)
            counts = np.asarray(page.databytecounts, dtype=np.int64)
            offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    except Exception as exc:  # any parse failure: fall back to reading (GDAL reports real errors)
        log.debug("%s: no block map (%s); every tile will be read", path, exc)
        return None
    per_plane = ny * nx
    if counts.size == 0 or counts.size % per_plane or offsets.size != counts.size:
        return None
    present = ((counts > 0) & (offsets > 0)).reshape(-1, ny, nx).any(axis=0)
    return BlockCoverage(present=present, block_rows=bh, block_cols=bw, rows=rows, cols=cols)
