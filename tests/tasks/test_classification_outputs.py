"""What `cvtrain predict` of a classifier leaves: each image drawn with its top-k classes under it, predictions.json,
and a console summary of a handful of rows and the counts, however many images there were."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console

from cvtrain.contracts.batch import Batch
from cvtrain.tasks.classification_outputs import SHOWN, ClassificationOutputs

CLASSES = ["English springer", "German short-haired pointer", "tench"]


def predict(tmp_path: Path, n: int) -> tuple[ClassificationOutputs, list[dict]]:
    """`n` 40x30 grey images, the first two in sub-folders with the same stem; image i mostly class i % 3."""
    paths = [tmp_path / "in" / "a" / "x.png", tmp_path / "in" / "b" / "x.png"]
    paths += [tmp_path / "in" / f"{i}.png" for i in range(2, n)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((30, 40, 3), 128, dtype=np.uint8)).save(path)
    probabilities = torch.full((n, 3), 0.1)
    probabilities[torch.arange(n), torch.arange(n) % 3] = 0.8
    outputs = ClassificationOutputs(class_names=CLASSES, topk=2)
    writer = outputs.predict_writer(tmp_path / "run")
    batch = Batch(images=[], targets=torch.full((n,), -1), meta=[{"path": str(p)} for p in paths])
    writer.update(batch, probabilities)
    writer.write()
    assert writer.records == json.loads((tmp_path / "run" / "predictions.json").read_text())
    return outputs, writer.records


def test_each_image_is_drawn_with_its_top_classes_under_it(tmp_path: Path) -> None:
    _, records = predict(tmp_path, 3)
    drawn = [Path(r["drawn"]) for r in records]
    assert [p.name for p in drawn] == ["x.png", "x_1.png", "2.png"]  # same stem in two folders: both kept
    assert all(p.parent == tmp_path / "run" / "predictions" for p in drawn)
    pixels = np.asarray(Image.open(drawn[1]))
    # the picture on top, unchanged; a caption strip below, widened to the longest name (never cut)
    assert pixels.shape[0] > 30 and pixels.shape[1] > 40 and (pixels[:30, :40] == 128).all()
    assert (pixels[30:] < 128).any()  # text


def test_the_console_shows_a_handful_of_images_and_the_counts(tmp_path: Path) -> None:
    outputs, records = predict(tmp_path, 25)
    out = io.StringIO()
    Console(file=out, width=200).print(outputs.show_predictions(records, tmp_path / "run"))
    text = " ".join(out.getvalue().split())  # the caption wraps at the table's width
    assert SHOWN == 10 and "9.png" in text and "10.png" not in text  # x.png twice, then 2.png .. 9.png
    assert f"... {25 - SHOWN} more" in text and "in predictions.json" in text
    assert "German short-haired pointer (0.800)" in text
    assert "25 image(s); predicted first: English springer 9, German short-haired pointer 8, tench 8" in text
