"""What the detection task shows and writes: the truth next to the detections (predictions.png), predictions.json
in COCO results format (`cvtrain eval eval.save_predictions=true`), pictures with the boxes (and Mask R-CNN's
masks) drawn and a table of them (`cvtrain predict`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.table import Table
from torchvision.utils import draw_segmentation_masks

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.plots import Panel, Preview
from cvtrain.data.decoding.images import BadImageError, read_image
from cvtrain.metrics.coco import encode_masks
from cvtrain.metrics.detection import ground_truth_of
from cvtrain.plots.draw import class_colour, draw_boxes
from cvtrain.tasks.detection import Detections, to_original_pixels
from cvtrain.tasks.previews import PictureNames, preview_canvas


def draw_detections(
    image: np.ndarray,
    boxes: torch.Tensor | np.ndarray,
    labels: Sequence[int],
    class_names: Sequence[str],
    scores: Sequence[float] | None = None,
) -> np.ndarray:
    """uint8 RGB [H, W, 3] with each box (XYXY pixels, best first) outlined in its class colour and labelled
    "class score" (or just "class", for ground truth) where the label covers no other."""
    names = [class_names[c] for c in labels]
    texts = names if scores is None else [f"{n} {s:.2f}" for n, s in zip(names, scores, strict=True)]
    return draw_boxes(image, np.asarray(boxes, dtype=np.float64), texts, [class_colour(c) for c in labels])


class COCOResultsWriter:
    """predictions.json: a list of {"image_id", "category_id", "bbox": [x, y, w, h], "score"}, the COCO results
    format, so pycocotools (or `cvtrain eval predictions=FILE`) re-scores it.

    `image_id` is the dataset's own (the COCO file's id; a VOC image's file stem), `category_id` the file's id
    (`label_to_cat_id`), boxes are in original image pixels. Every detection the model returned is written;
    Mask R-CNN's also with its mask as COCO RLE (`segmentation`), so the file scores as boxes and as masks.
    """

    def __init__(self, *, path: Path, label_to_cat_id: Mapping[int, int]):
        self.path = Path(path)
        self.label_to_cat_id = dict(label_to_cat_id)
        self.records: list[dict[str, Any]] = []

    def update(self, batch: Batch, predictions: list[dict[str, torch.Tensor]]) -> None:
        for meta, prediction in zip(batch.meta, predictions, strict=True):
            boxes = prediction["boxes"].detach().cpu().double().tolist()
            scores = prediction["scores"].detach().cpu().double().tolist()
            labels = prediction["labels"].detach().cpu().tolist()
            masks = encode_masks(prediction["masks"]) if "masks" in prediction else [None] * len(labels)
            for (x0, y0, x1, y1), score, label, rle in zip(boxes, scores, labels, masks, strict=True):
                record = {
                    "image_id": meta["image_id"],
                    "category_id": self.label_to_cat_id[int(label)],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                }
                self.records.append(record if rle is None else {**record, "segmentation": rle})

    def write(self) -> None:
        self.path.write_text(json.dumps(self.records) + "\n")


class DrawnDetectionsWriter:
    """`cvtrain predict`: `predictions/<stem>.png` (the original image with boxes, class names and scores drawn)
    and predictions.json: one record per image {"path", "drawn", "detections": [{"label", "class_name",
    "score", "box": [x0, y0, x1, y1] in original pixels}]}, best first. Only scores >= `score_threshold`.
    Mask R-CNN's masks are drawn (translucent, in the box's colour) and recorded as COCO RLE (`segmentation`)."""

    def __init__(self, *, out_dir: Path, class_names: list[str], score_threshold: float):
        self.out_dir = Path(out_dir)
        self.picture_dir = self.out_dir / "predictions"
        self.class_names = class_names
        self.score_threshold = score_threshold
        self.records: list[dict[str, Any]] = []
        self._picture_path = PictureNames(self.picture_dir)

    def update(self, batch: Batch, predictions: list[dict[str, torch.Tensor]]) -> None:
        self.picture_dir.mkdir(parents=True, exist_ok=True)
        for meta, prediction in zip(batch.meta, predictions, strict=True):
            keep = prediction["scores"] >= self.score_threshold
            order = prediction["scores"][keep].argsort(descending=True)
            boxes = prediction["boxes"][keep][order].detach().cpu()
            scores = prediction["scores"][keep][order].detach().cpu()
            labels = prediction["labels"][keep][order].detach().cpu()
            masks = prediction["masks"][keep][order].detach().cpu() if "masks" in prediction else None
            detections = [
                {
                    "label": int(label),
                    "class_name": self.class_names[int(label)],
                    "score": float(score),
                    "box": [float(v) for v in box],
                }
                for box, score, label in zip(boxes, scores, labels, strict=True)
            ]
            if masks is not None:
                for detection, rle in zip(detections, encode_masks(masks), strict=True):
                    detection["segmentation"] = rle
            picture = self._picture_path(Path(meta["path"]))
            self._draw(Path(meta["path"]), boxes, detections, picture, masks)
            self.records.append({"path": meta["path"], "drawn": str(picture), "detections": detections})

    def _draw(
        self,
        source: Path,
        boxes: torch.Tensor,
        detections: list[dict[str, Any]],
        picture: Path,
        masks: torch.Tensor | None = None,
    ) -> None:
        try:
            image = read_image(source)  # the original pixels: boxes are in them
        except BadImageError:
            return  # it was read a moment ago; if it vanished since, the JSON record still holds the boxes
        if masks is not None and detections:  # Mask R-CNN: translucent masks first, the labelled boxes on top
            colours = [class_colour(d["label"]) for d in detections]
            image = draw_segmentation_masks(image, masks.bool(), alpha=0.45, colors=colours)
        pixels = draw_detections(
            image.permute(1, 2, 0).numpy(),
            boxes.numpy(),
            [d["label"] for d in detections],
            self.class_names,
            [d["score"] for d in detections],
        )
        Image.fromarray(pixels).save(picture)

    def write(self) -> None:
        (self.out_dir / "predictions.json").write_text(json.dumps(self.records, indent=1) + "\n")


class DetectionOutputs:
    def __init__(self, *, class_names: list[str], score_threshold: float = 0.5):
        self.class_names = list(class_names)
        self.score_threshold = score_threshold

    def preview(self, batch: Batch, predictions: Detections, limit: int) -> list[Preview]:
        """The ground-truth boxes next to the detections scoring >= `score_threshold`."""
        previews = []
        for i, found in enumerate(predictions[:limit]):
            image, target, meta = batch.images[i], batch.targets[i], batch.meta[i]
            canvas, scale = preview_canvas(meta, image)
            truth = to_original_pixels(target["boxes"].float(), meta["input_size"], tuple(meta["orig_size"]))
            keep = found["scores"] >= self.score_threshold
            order = found["scores"][keep].argsort(descending=True)
            boxes, labels, scores = (found[k][keep][order].cpu() for k in ("boxes", "labels", "scores"))
            name = Path(meta["path"]).name
            previews.append(
                Preview(
                    (
                        Panel(
                            draw_detections(
                                canvas, truth.cpu() * scale, target["labels"].tolist(), self.class_names
                            ),
                            f"{name}: truth",
                        ),
                        Panel(
                            draw_detections(
                                canvas, boxes * scale, labels.tolist(), self.class_names, scores.tolist()
                            ),
                            f"predicted, score >= {self.score_threshold}",
                        ),
                    )  # fmt: skip
                )
            )
        return previews

    def results_writer(self, dataset: Any, out_dir: Path) -> COCOResultsWriter:
        """predictions.json in COCO results format, with the dataset's own image and category ids."""
        view = ground_truth_of(dataset).coco_ground_truth()
        return COCOResultsWriter(
            path=Path(out_dir) / "predictions.json", label_to_cat_id=view.label_to_cat_id
        )

    def predict_writer(self, out_dir: Path) -> DrawnDetectionsWriter:
        """Each image with its boxes drawn, and predictions.json."""
        return DrawnDetectionsWriter(
            out_dir=Path(out_dir), class_names=self.class_names, score_threshold=self.score_threshold
        )

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> Table:
        table = Table(
            title=f"detections with score >= {self.score_threshold} (drawn in {Path(out_dir) / 'predictions'})",
            show_header=True,
            header_style="bold",
        )
        table.add_column("image")
        table.add_column("objects", justify="right")
        table.add_column("detections (score)")
        for record in records:
            found = ", ".join(f"{d['class_name']} ({d['score']:.2f})" for d in record["detections"][:8])
            more = len(record["detections"]) - 8
            table.add_row(
                Path(record["path"]).name,
                str(len(record["detections"])),
                found + (f", ... {more} more" if more > 0 else ""),
            )
        return table
