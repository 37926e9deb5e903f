"""Pictures drawn with PIL: labelled boxes whose labels never cover each other, a colour legend under a mask
overlay, and the grid of predictions.png. Images are uint8 RGB numpy arrays [H, W, 3]; text is sized to the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cvtrain.contracts.plots import Preview

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1
RGB = tuple[int, int, int]

# Distinct colours for boxes, by class index (cycled for more classes).
BOX_COLOURS = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990",
    "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075", "#a9a9a9", "#ffe119", "#ffd8b1", "#000000",
)  # fmt: skip
OK_COLOUR, WRONG_COLOUR = (0, 130, 0), (200, 0, 0)


def class_colour(index: int) -> RGB:
    hex_colour = BOX_COLOURS[index % len(BOX_COLOURS)]
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text_size_for(height: int, width: int) -> int:
    """Label text height in pixels: readable on a thumbnail, not oversized on a photo."""
    return int(min(40, max(11, round(max(height, width) / 40))))


def _text_box(text: str, size: int) -> tuple[int, int]:
    x0, y0, x1, y1 = font(size).getbbox(text)
    pad = max(2, size // 5)
    return int(x1 - min(x0, 0)) + 2 * pad, int(size + 2 * pad)


def _overlap(a: Rect, b: Rect) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(
    boxes: Sequence[Rect], sizes: Sequence[tuple[int, int]], image_size: tuple[int, int]
) -> list[Rect]:
    """Where each box's label (of `sizes` (w, h)) goes, labels placed in order (best detection first).

    A label sits above its box's top-left corner; if that leaves the image or covers a label already placed, it
    moves inside the box at the top, below the box, or inside at the bottom; failing those, into the free slot
    just above or below another label that is nearest to the box's top. The first free spot inside the image
    wins; when there is none, the spot that covers the least of other labels.
    """
    height, width = image_size
    placed: list[Rect] = []
    for (x0, y0, _, y1), (w, h) in zip(boxes, sizes, strict=True):
        x = min(max(x0, 0.0), max(width - w, 0.0))
        slots = sorted([o[3] for o in placed] + [o[1] - h for o in placed], key=lambda y: abs(y - (y0 - h)))
        best, best_cost = None, math.inf
        for y in [y0 - h, y0, y1, y1 - h, *slots]:
            rect = (x, y, x + w, y + h)
            inside = y >= 0 and y + h <= height
            cost = sum(_overlap(rect, other) for other in placed) + (0.0 if inside else 1e12)
            if cost < best_cost:
                best, best_cost = rect, cost
            if cost == 0:
                break
        assert best is not None
        if best[1] < 0 or best[3] > height:  # nowhere inside: clamp to the image
            y = min(max(best[1], 0.0), max(height - h, 0.0))
            best = (best[0], y, best[2], y + h)
        placed.append(best)
    return placed


def _ink(colour: RGB) -> RGB:
    """Black or white text, whichever reads better on `colour`."""
    r, g, b = colour
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def draw_boxes(
    image: np.ndarray, boxes: np.ndarray, texts: Sequence[str], colours: Sequence[RGB]
) -> np.ndarray:
    """`image` with each box outlined and its text on a filled label of the box's colour (see `place_labels`).
    Boxes are XYXY pixels, best first (earlier labels get the better spots)."""
    height, width = image.shape[:2]
    picture = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(picture)
    line = max(1, round(max(height, width) / 250))
    size = text_size_for(height, width)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for box, colour in zip(boxes, colours, strict=True):
        draw.rectangle([float(v) for v in box], outline=colour, width=line)
    sizes = [_text_box(text, size) for text in texts]
    spots = place_labels([tuple(b) for b in boxes], sizes, (height, width))
    pad = max(2, size // 5)
    for text, colour, spot in zip(texts, colours, spots, strict=True):
        draw.rectangle(spot, fill=colour)
        draw.text((spot[0] + pad, spot[1] + pad), text, fill=_ink(colour), font=font(size))
    return np.asarray(picture)


def legend_entries(
    label_map: np.ndarray,
    class_names: Sequence[str],
    palette: np.ndarray,
    skip: Sequence[int] = (0,),
    void: int | None = None,
) -> list[tuple[str, RGB]]:
    """(name, colour) of every class present in `label_map`, by class index, except `skip` (background), then
    "void" if the `void` index is present; other indices without a name are left out."""
    present = np.unique(label_map).tolist()
    names = {c: class_names[c] for c in present if c < len(class_names) and c not in skip}
    if void is not None and void in present:
        names[void] = "void"
    return [(name, tuple(int(v) for v in palette[c])) for c, name in names.items()]


def add_legend(image: np.ndarray, entries: Sequence[tuple[str, RGB]]) -> np.ndarray:
    """`image` with a white strip below it: a colour swatch and the name of each entry, wrapped into rows. An image
    narrower than the widest entry is padded with white on the right, so no name is cut."""
    if not entries:
        return image
    height, width = image.shape[:2]
    size = text_size_for(height, width)
    gap = size // 2
    cells = [(name, colour, size + gap // 2 + _text_box(name, size)[0]) for name, colour in entries]
    width = max(width, max(c[2] for c in cells) + 2 * gap)
    image = np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255)
    rows: list[list[tuple[str, RGB, int]]] = [[]]
    used = gap
    for cell in cells:
        if rows[-1] and used + cell[2] > width:
            rows.append([])
            used = gap
        rows[-1].append(cell)
        used += cell[2] + gap
    row_h = size + gap
    strip = Image.new("RGB", (width, row_h * len(rows) + gap), "white")
    draw = ImageDraw.Draw(strip)
    for r, row in enumerate(rows):
        x, y = gap, gap + r * row_h
        for name, colour, cell_w in row:
            draw.rectangle([x, y, x + size, y + size], fill=colour, outline=(0, 0, 0))
            draw.text((x + size + gap // 2, y - size // 8), name, fill=(0, 0, 0), font=font(size))
            x += cell_w + gap
    return np.concatenate([image, np.asarray(strip)], axis=0)


def add_caption(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """`image` with a white strip below it holding `lines` of text, sized to the image; padded with white on the
    right where a line is wider than the image, so no text is cut."""
    height, width = image.shape[:2]
    size = text_size_for(height, width)
    gap = size // 2
    width = max(width, *(_text_box(line, size)[0] + 2 * gap for line in lines))
    image = np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255)
    row_h = size + gap
    strip = Image.new("RGB", (width, row_h * len(lines) + gap), "white")
    draw = ImageDraw.Draw(strip)
    for r, line in enumerate(lines):
        draw.text((gap, gap + r * row_h), line, fill=(0, 0, 0), font=font(size))
    return np.concatenate([image, np.asarray(strip)], axis=0)


def fit_to(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """`image` scaled (up or down) so that its longer side is `side` pixels, and the scale applied."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)), scale


def tile_previews(previews: Sequence[Preview], columns: int) -> np.ndarray:
    """The predictions.png grid: each preview's panels side by side with their headings (wrapped onto as many
    lines as they need: a long class name and its probability are never cut), `columns` previews per row, on white."""
    margin, size = 6, 13
    line_h = size + 3
    cells = []
    for preview in previews:
        widths = [p.image.shape[1] for p in preview.panels]
        headings = [wrap_text(p.heading, p.image.shape[1], size) for p in preview.panels]
        top = line_h * max(len(lines) for lines in headings) + margin
        cell_h = max(p.image.shape[0] for p in preview.panels) + top + margin
        cell = Image.new("RGB", (sum(widths) + margin * (len(widths) + 1), cell_h), "white")
        draw = ImageDraw.Draw(cell)
        x = margin
        for panel, lines in zip(preview.panels, headings, strict=True):
            ink = {None: (0, 0, 0), True: OK_COLOUR, False: WRONG_COLOUR}[panel.ok]
            for row, line in enumerate(lines):
                draw.text((x, margin // 2 + row * line_h), line, fill=ink, font=font(size))
            cell.paste(Image.fromarray(np.ascontiguousarray(panel.image)), (x, top))
            x += panel.image.shape[1] + margin
        cells.append(cell)
    if not cells:
        return np.full((32, 32, 3), 255, dtype=np.uint8)
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    col_w = max(c.width for c in cells)
    row_hs = [max(c.height for c in row) for row in rows]
    grid = Image.new("RGB", (col_w * min(columns, len(cells)), sum(row_hs)), "white")
    y = 0
    for row, row_h in zip(rows, row_hs, strict=True):
        for i, cell in enumerate(row):
            grid.paste(cell, (i * col_w, y))
        y += row_h
    return np.asarray(grid)


def wrap_text(text: str, width: int, size: int) -> list[str]:
    """`text` broken at spaces into lines of at most `width` pixels; only a single word wider than that is cut."""
    lines: list[str] = []
    for word in text.split():
        if lines and font(size).getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(_fit_text(word, width, size))
    return lines or [""]


def _fit_text(text: str, width: int, size: int) -> str:
    """`text`, cut with an ellipsis so that it fits in `width` pixels."""
    if font(size).getlength(text) <= width:
        return text
    while text and font(size).getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"
