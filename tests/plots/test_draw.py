"""Labelled boxes whose labels never overlap, the legend of a mask overlay, and the predictions.png grid."""

from __future__ import annotations

import itertools

import numpy as np

from cvtrain.contracts.plots import Panel, Preview
from cvtrain.data.decoding.palette import VOC_PALETTE
from cvtrain.plots.draw import (
    add_legend,
    class_colour,
    draw_boxes,
    fit_to,
    font,
    legend_entries,
    place_labels,
    text_size_for,
    tile_previews,
    wrap_text,
)


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_labels_of_overlapping_boxes_do_not_overlap_and_stay_in_the_image() -> None:
    # Three identical boxes, one nested inside them and one touching the top edge: five labels of 40x12.
    boxes = [(20, 30, 120, 110), (20, 30, 120, 110), (20, 30, 120, 110), (25, 35, 60, 70), (50, 0, 150, 40)]
    spots = place_labels(boxes, [(40, 12)] * len(boxes), image_size=(160, 200))
    assert len(spots) == 5
    for a, b in itertools.combinations(spots, 2):
        assert not overlaps(a, b), (a, b)
    for x0, y0, x1, y1 in spots:
        assert x0 >= 0 and x1 <= 200 and y0 >= 0 and y1 <= 160
    assert spots[0] == (20, 18, 60, 30)  # the best box keeps the usual spot, above its top-left corner
    assert spots[4][1] >= 0  # the box at the top edge gets its label inside or below, not cut off


def test_a_label_wider_than_the_space_right_of_its_box_shifts_left_into_the_image() -> None:
    (spot,) = place_labels([(180, 50, 199, 90)], [(60, 12)], image_size=(100, 200))
    assert spot[2] <= 200 and spot[0] == 140


def test_draw_boxes_outlines_in_the_class_colour_and_fills_the_label() -> None:
    image = np.full((120, 160, 3), 255, dtype=np.uint8)
    drawn = draw_boxes(image, np.array([[20.0, 40, 100, 100]]), ["circle 0.93"], [class_colour(0)])
    assert drawn.shape == image.shape and (image == 255).all()  # the input is left alone
    assert tuple(drawn[70, 20]) == class_colour(0)  # the left edge of the box
    label = drawn[40 - text_size_for(120, 160) : 40, 20:60]  # the filled label above the box
    assert (label == class_colour(0)).all(axis=2).mean() > 0.5


def test_legend_entries_name_the_painted_classes_present() -> None:
    label_map = np.array([[0, 2, 2], [5, 255, 0]], dtype=np.uint8)
    names = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle"]
    entries = legend_entries(label_map, names, VOC_PALETTE)
    assert entries == [
        ("bicycle", tuple(VOC_PALETTE[2].tolist())),
        ("bottle", tuple(VOC_PALETTE[5].tolist())),
    ]
    with_void = legend_entries(label_map, names, VOC_PALETTE, void=255)
    assert with_void[-1] == ("void", tuple(VOC_PALETTE[255].tolist())) and len(with_void) == 3


def test_add_legend_appends_a_strip_with_the_swatches_below_the_image() -> None:
    image = np.zeros((64, 200, 3), dtype=np.uint8)
    entries = [(f"class {i}", class_colour(i)) for i in range(6)]
    out = add_legend(image, entries)
    assert out.shape[1] == 200 and out.shape[0] > 64 and (out[:64] == 0).all()
    strip = out[64:]
    for _, colour in entries:
        assert (strip == colour).all(axis=2).sum() > 20, colour  # every swatch is drawn (rows wrap to fit)
    assert add_legend(image, []) is image


def test_tile_previews_lays_out_a_grid_of_headed_panels() -> None:
    panel = Panel(np.zeros((50, 80, 3), dtype=np.uint8), "a.jpg: truth")
    previews = [Preview((panel, Panel(panel.image, "predicted", ok=False))) for _ in range(5)]
    grid = tile_previews(previews, columns=2)
    cell_w = 2 * 80 + 3 * 6
    assert grid.shape[1] == 2 * cell_w and grid.shape[0] == 3 * (50 + 16 + 12)  # one 16 px line of heading
    assert fit_to(np.zeros((50, 80, 3), dtype=np.uint8), 160)[0].shape == (100, 160, 3)


def test_a_long_heading_wraps_onto_more_lines_instead_of_being_cut() -> None:
    heading = "German short-haired pointer -> English springer 0.973"
    lines = wrap_text(heading, 120, 13)
    assert len(lines) > 1 and " ".join(lines) == heading  # every word kept, the probability too
    assert all(font(13).getlength(line) <= 120 for line in lines)
    panel = Panel(np.zeros((50, 120, 3), dtype=np.uint8), heading, ok=False)
    grid = tile_previews([Preview((panel,))], columns=1)
    assert grid.shape[0] == 50 + 16 * len(lines) + 12
    assert wrap_text("Supercalifragilisticexpialidocious", 60, 13)[0].endswith("…")  # one word: cut
