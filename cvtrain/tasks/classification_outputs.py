"""What classification shows and writes: each image headed with its true and predicted class (predictions.png),
the top-k classes of every image in predictions.json, and a table of them (`cvtrain predict`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.plots import Panel, Preview
from cvtrain.tasks.previews import PREVIEW_SIDE, preview_canvas


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

    def predict_writer(self, out_dir: Path) -> TopKWriter:
        return TopKWriter(Path(out_dir) / "predictions.json", k=self.topk, class_names=self.class_names)

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> Table:
        table = Table(title=f"top-{self.topk} predictions", show_header=True, header_style="bold")
        table.add_column("image")
        table.add_column("top classes (probability)")
        for r in records:
            ranked = ", ".join(
                f"{self.class_names[c]} ({s:.3f})" for c, s in zip(r["top5"], r["scores"], strict=True)
            )
            table.add_row(Path(r["path"]).name, ranked)
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
