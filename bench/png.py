"""A tiny PNG bar-chart renderer for bench/run.py (no third-party dependencies).

Why hand-rolled: the chart is one picture of a handful of ratios. matplotlib would add a large
dependency (numpy, pillow, fonts) to a project whose runtime needs none of it, and gnuplot would
add a system package to the setup script; a PNG is just zlib-compressed RGB rows, and a 5x7
bitmap font for the labels fits in a page. Output is deterministic for the same input.
"""

from __future__ import annotations

import math
import struct
import zlib

# 5x7 glyphs, one string per row, '#' = ink. Labels are upper-cased before drawing.
_FONT_ROWS = {
    "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#",
    "B": "####.|#...#|#...#|####.|#...#|#...#|####.",
    "C": ".###.|#...#|#....|#....|#....|#...#|.###.",
    "D": "####.|#...#|#...#|#...#|#...#|#...#|####.",
    "E": "#####|#....|#....|####.|#....|#....|#####",
    "F": "#####|#....|#....|####.|#....|#....|#....",
    "G": ".###.|#...#|#....|#.###|#...#|#...#|.####",
    "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#",
    "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
    "J": "..###|...#.|...#.|...#.|...#.|#..#.|.##..",
    "K": "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",
    "L": "#....|#....|#....|#....|#....|#....|#####",
    "M": "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",
    "N": "#...#|##..#|#.#.#|#..##|#...#|#...#|#...#",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
    "P": "####.|#...#|#...#|####.|#....|#....|#....",
    "Q": ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",
    "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
    "S": ".####|#....|#....|.###.|....#|....#|####.",
    "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..",
    "U": "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
    "V": "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..",
    "W": "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.",
    "X": "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",
    "Y": "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",
    "Z": "#####|....#|...#.|..#..|.#...|#....|#####",
    "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
    "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
    "2": ".###.|#...#|....#|...#.|..#..|.#...|#####",
    "3": "####.|....#|....#|.###.|....#|....#|####.",
    "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
    "5": "#####|#....|####.|....#|....#|#...#|.###.",
    "6": ".###.|#....|#....|####.|#...#|#...#|.###.",
    "7": "#####|....#|...#.|..#..|.#...|.#...|.#...",
    "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
    "9": ".###.|#...#|#...#|.####|....#|....#|.###.",
    ".": ".....|.....|.....|.....|.....|.##..|.##..",
    ",": ".....|.....|.....|.....|.##..|..#..|.#...",
    "(": "...#.|..#..|.#...|.#...|.#...|..#..|...#.",
    ")": ".#...|..#..|...#.|...#.|...#.|..#..|.#...",
    "/": "....#|....#|...#.|..#..|.#...|#....|#....",
    "-": ".....|.....|.....|#####|.....|.....|.....",
    "+": ".....|..#..|..#..|#####|..#..|..#..|.....",
    "=": ".....|.....|#####|.....|#####|.....|.....",
    ">": ".#...|..#..|...#.|....#|...#.|..#..|.#...",
    "<": "...#.|..#..|.#...|#....|.#...|..#..|...#.",
    "%": "##..#|##..#|...#.|..#..|.#...|#..##|#..##",
    ":": ".....|.##..|.##..|.....|.##..|.##..|.....",
    " ": ".....|.....|.....|.....|.....|.....|.....",
    "_": ".....|.....|.....|.....|.....|.....|#####",
    "#": ".#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#.",
    "?": ".###.|#...#|....#|...#.|..#..|.....|..#..",
}
FONT = {ch: rows.split("|") for ch, rows in _FONT_ROWS.items() if rows}

WHITE, BLACK, GREY = (255, 255, 255), (40, 40, 40), (200, 200, 200)
GOOD, BAD = (60, 150, 80), (200, 80, 60)


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = [bytearray(WHITE * width) for _ in range(height)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        run = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            self.px[y][3 * x0 : 3 * x1] = run

    def text(
        self, x: int, y: int, s: str, color: tuple[int, int, int] = BLACK, scale: int = 2
    ) -> None:
        for ch in s.upper():
            glyph = FONT.get(ch, FONT["?"])
            for gy, row in enumerate(glyph):
                for gx, cell in enumerate(row):
                    if cell == "#":
                        self.rect(
                            x + gx * scale,
                            y + gy * scale,
                            x + (gx + 1) * scale,
                            y + (gy + 1) * scale,
                            color,
                        )
            x += 6 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.px)

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def text_width(s: str, scale: int = 2) -> int:
    return 6 * scale * len(s)


def bar_chart(title: str, bars: list[tuple[str, float | None]], *, limit: float = 64.0) -> bytes:
    """Horizontal bars of ``advantage`` values on a log2 axis centred on 1 (parity).

    A bar to the right of the centre line (green) means better than the reference, to the left
    (red) worse. Values beyond ``limit`` are clipped and marked with an arrow; ``None`` = n/a.
    """
    label_w = max(text_width(label) for label, _ in bars) + 20
    plot_w, bar_h, gap, top = 560, 22, 10, 60
    width = label_w + plot_w + 120
    height = top + len(bars) * (bar_h + gap) + 50
    c = Canvas(width, height)
    c.text(10, 12, title, scale=2)
    span = math.log2(limit)
    cx = label_w + plot_w // 2

    def xpos(v: float) -> int:
        return cx + round(max(-span, min(span, math.log2(v))) / span * (plot_w // 2))

    for k in range(-int(span), int(span) + 1):  # grid lines at powers of two
        x = xpos(2.0**k)
        c.rect(x, top - 6, x + 1, height - 40, GREY)
    for v, name in ((1 / limit, f"1/{int(limit)}"), (1.0, "1"), (limit, str(int(limit)))):
        x = xpos(v)
        c.text(x - text_width(name) // 2, height - 32, name)
    c.rect(cx - 1, top - 10, cx + 1, height - 38, BLACK)
    for i, (label, value) in enumerate(bars):
        y = top + i * (bar_h + gap)
        c.text(10, y + 4, label)
        if value is None or value <= 0:
            c.text(cx + 8, y + 4, "N/A", GREY)
            continue
        x = xpos(value)
        c.rect(min(cx, x), y, max(cx, x) + 1, y + bar_h, GOOD if value >= 1 else BAD)
        shown = f"{value:.2f}x" if value < 10 else f"{value:.0f}x"
        if abs(math.log2(value)) > span:
            shown = (">" if value > 1 else "<") + shown
        tx = max(cx, x) + 6 if value >= 1 else label_w + plot_w + 10
        c.text(min(tx, width - text_width(shown) - 4), y + 4, shown)
    return c.png()
