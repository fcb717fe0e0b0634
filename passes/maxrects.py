"""MaxRects rectangle packing of one crossbar (Jylanki, "A thousand ways to pack the bin").

A crossbar keeps the list of maximal free rectangles; a block goes where it leaves the
shortest leftover side (best short side fit). Rectangles are (row, col, rows, cols)."""

from __future__ import annotations


class Crossbar:
    __slots__ = ("rows", "cols", "free", "used_cells")

    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self.free = [(0, 0, rows, cols)]
        self.used_cells = 0

    def copy(self) -> "Crossbar":
        other = Crossbar.__new__(Crossbar)
        other.rows, other.cols, other.free, other.used_cells = self.rows, self.cols, list(self.free), self.used_cells
        return other

    def fit(self, h: int, w: int) -> tuple[int, int, int] | None:
        """(score, row, col) of the best spot for an h x w block, or None if none."""
        best = None
        for r, c, fh, fw in self.free:
            if h <= fh and w <= fw:
                score = min(fh - h, fw - w)
                if best is None or (score, r, c) < best:
                    best = (score, r, c)
        return best

    def place(self, r: int, c: int, h: int, w: int) -> None:
        new = []
        for fr, fc, fh, fw in self.free:
            if r >= fr + fh or r + h <= fr or c >= fc + fw or c + w <= fc:
                new.append((fr, fc, fh, fw))
                continue
            if r > fr:
                new.append((fr, fc, r - fr, fw))
            if r + h < fr + fh:
                new.append((r + h, fc, fr + fh - r - h, fw))
            if c > fc:
                new.append((fr, fc, fh, c - fc))
            if c + w < fc + fw:
                new.append((fr, c + w, fh, fc + fw - c - w))
        # keep only maximal rectangles
        new = sorted(set(new), key=lambda x: -x[2] * x[3])
        kept = []
        for a in new:
            if not any(b[0] <= a[0] and b[1] <= a[1] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]
                       for b in kept):
                kept.append(a)
        self.free = kept
        self.used_cells += h * w
