"""What classification shows and writes: each image headed with its true and predicted class (predictions.png),
the top-k classes of every image in predictions.json, and for `cvtrain predict` each image with its top-k classes
written under it and a summary table."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from rich.table import Table

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.plots import Panel, Preview
from cvtrain.data.decoding.images import BadImageError, read_image
from cvtrain.plots.draw import add_caption
from cvtrain.tasks.previews import PREVIEW_SIDE, PictureNames, preview_canvas

SHOWN = 10  # images listed on the console by `cvtrain predict` (all of them are in predictions.json)


class ClassificationOutputs:
    def __init__(self, *, class_names: list[str], topk: int = 5):
        self.class_names = class_names
        self.topk = min(topk, len(class_names))

    def preview(self, batch: Batch, predictions: torch.Tensor, limit: int) -> list[Preview]:
        """Each image headed "true class -> predicted class probability", green when right, red when wrong."""
        scores, top = predictions[:limit].max(dim=1)
        labels = batch.targets[:limit].tolist()
        previews = []
        for i, (label, score, best) in enumerate(zip(labels, scores.tolist(), top.tolist(), strict=True)):
            image, _ = preview_canvas(batch.meta[i], batch.images[i], side=PREVIEW_SIDE * 3 // 4)
            heading = f"{self.class_names[label]} -> {self.class_names[best]} {score:.2f}"
            previews.append(Preview((Panel(image, heading, ok=label == best),)))
        return previews

    def results_writer(self, dataset: Any, out_dir: Path) -> TopKWriter:
        return TopKWriter(Path(out_dir) / "predictions.json", k=self.topk, class_names=self.class_names)

    def predict_writer(self, out_dir: Path) -> DrawnTopKWriter:
        """Each image with its top-k classes written under it, and predictions.json."""
        return DrawnTopKWriter(Path(out_dir), k=self.topk, class_names=self.class_names)

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> Table:
        """The first `SHOWN` images and, for all of them, how often each class came first (a folder of a thousand
        images is a thousand lines in predictions.json, not on the console)."""
        table = Table(
            title=f"top-{self.topk} predictions (drawn in {Path(out_dir) / 'predictions'})",
            show_header=True,
            header_style="bold",
        )
        table.add_column("image")
        table.add_column("top classes (probability)")
        for r in records[:SHOWN]:
            ranked = ", ".join(
                f"{self.class_names[c]} ({s:.3f})" for c, s in zip(r["top5"], r["scores"], strict=True)
            )
            table.add_row(Path(r["path"]).name, ranked)
        if len(records) > SHOWN:
            table.add_row(f"... {len(records) - SHOWN} more", "in predictions.json")
        firsts = Counter(r["top5_names"][0] for r in records).most_common()
        shown = ", ".join(f"{name} {n}" for name, n in firsts[:SHOWN])
        more = f", {len(firsts) - SHOWN} more classes" if len(firsts) > SHOWN else ""
        table.caption = f"{len(records)} image(s); predicted first: {shown}{more}"
        return table


class TopKWriter:
    """predictions.json: one record per image, {"path", "label", "label_name", "top5": [class indices],
    "top5_names": [class names], "scores": [probs]}.

    "top5" holds min(5, number of classes) indices, best first; "label" is -1 and "label_name" null for images
    without a label.
    """

    def __init__(self, path: Path, k: int, class_names: list[str]):
        self.path = path
        self.k = k
        self.class_names = class_names
        self.records: list[dict[str, Any]] = []

    def update(self, batch: Batch, predictions: torch.Tensor) -> None:
        scores, indices = predictions.topk(self.k, dim=1)
        labels = batch.targets.tolist()
        for meta, label, idx, sc in zip(batch.meta, labels, indices.tolist(), scores.tolist(), strict=True):
            self.records.append(
                {
                    "path": meta["path"],
                    "label": int(label),
                    "label_name": self.class_names[label] if label >= 0 else None,
                    "top5": idx,
                    "top5_names": [self.class_names[c] for c in idx],
                    "scores": sc,
                }
            )

    def write(self) -> None:
        self.path.write_text(json.dumps(self.records, indent=1) + "\n")


class DrawnTopKWriter(TopKWriter):
    """`cvtrain predict`: predictions.json as `TopKWriter` writes it, each record also naming "drawn":
    `predictions/<stem>.png`, the image with its top-k classes and probabilities written under it."""

    def __init__(self, out_dir: Path, k: int, class_names: list[str]):
        super().__init__(out_dir / "predictions.json", k, class_names)
        self._picture_path = PictureNames(out_dir / "predictions")

    def update(self, batch: Batch, predictions: torch.Tensor) -> None:
        start = len(self.records)
        super().update(batch, predictions)
        self._picture_path.folder.mkdir(parents=True, exist_ok=True)
        for record in self.records[start:]:
            picture = self._picture_path(Path(record["path"]))
            lines = [
                f"{name} {score:.3f}"
                for name, score in zip(record["top5_names"], record["scores"], strict=True)
            ]
            try:
                image = read_image(record["path"]).permute(1, 2, 0).numpy()
            except BadImageError:  # it was read a moment ago; if it vanished since, the record still holds it
                continue
            Image.fromarray(add_caption(image, lines)).save(picture)
            record["drawn"] = str(picture)
