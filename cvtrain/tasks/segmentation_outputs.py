"""What segmentation shows and writes: the true mask next to the predicted one (predictions.png), and for
`cvtrain eval eval.save_predictions=true` and `cvtrain predict`:

- `predictions/<stem>.png`: the predicted label map as a VOC palette PNG (pixel values are class indices, the
  palette shows them in VOC's colours), the same size as the original image and named after its file stem, so
  it can be scored with the VOC devkit or read back with `cvtrain.data.decoding.palette.read_index_png`;
- `overlays/<stem>.jpg` (predict only): the image with every non-background class painted over it, and a legend
  strip below it (colour and name of each class present);
- `predictions.json`: one record per image: {"path", "image_id", "mask", ["overlay"], "height", "width",
  "class_fractions": {class name: share of the image's pixels}} (paths relative to the run directory);
- `cvtrain predict` also prints a table of each image's classes and files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.table import Table

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.plots import Panel, Preview
from cvtrain.data.decoding.images import BadImageError, read_image
from cvtrain.data.decoding.palette import IGNORE_INDEX, VOC_PALETTE, colorize, write_index_png
from cvtrain.plots.draw import add_legend, legend_entries
from cvtrain.tasks.previews import preview_canvas
from cvtrain.tasks.segmentation import LabelMaps

OVERLAY_ALPHA = 0.5  # weight of the class colour over the image


def fractions_text(fractions: dict[str, float], limit: int = 6) -> str:
    """'background 71.2%, circle 20.1%, ...': the largest shares first."""
    ranked = sorted(fractions.items(), key=lambda item: -item[1])
    text = ", ".join(f"{name} {100 * share:.1f}%" for name, share in ranked[:limit])
    return text + (f", +{len(ranked) - limit} more" if len(ranked) > limit else "")


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """uint8 RGB [H, W, 3]: the image with the palette colour of every non-background pixel blended in."""
    colours = colorize(label_map, VOC_PALETTE).astype(np.float32)
    blended = image.astype(np.float32)
    painted = label_map != 0
    blended[painted] = (1 - alpha) * blended[painted] + alpha * colours[painted]
    return blended.round().clip(0, 255).astype(np.uint8)


def painted(image: np.ndarray, label_map: np.ndarray, class_names: list[str]) -> np.ndarray:
    """`overlay` with a legend strip below it: the colour and name of every painted class present (and of void,
    the ignored border of VOC's ground truth)."""
    entries = legend_entries(label_map, class_names, VOC_PALETTE, void=IGNORE_INDEX)
    return add_legend(overlay(image, label_map), entries)


class MaskWriter:
    """The prediction sink of `SegmentationTask` (see the module doc)."""

    def __init__(self, *, out_dir: Path, class_names: list[str], overlays: bool) -> None:
        self.out_dir = Path(out_dir)
        self.class_names = class_names
        self.overlays = overlays
        self.records: list[dict[str, Any]] = []
        self._stems: set[str] = set()

    def update(self, batch: Batch, predictions: torch.Tensor | list[torch.Tensor]) -> None:
        for meta, prediction in zip(batch.meta, list(predictions), strict=True):
            label_map = resize_label_map(prediction, meta["orig_size"]).numpy()
            stem = self._unique_stem(Path(meta["path"]).stem)
            mask_path = write_index_png(self.out_dir / "predictions" / f"{stem}.png", label_map)
            counts = np.bincount(label_map.reshape(-1), minlength=len(self.class_names))
            record: dict[str, Any] = {
                "path": meta["path"],
                "image_id": meta.get("image_id", stem),
                "mask": str(mask_path.relative_to(self.out_dir)),
                "height": int(label_map.shape[0]),
                "width": int(label_map.shape[1]),
                "class_fractions": {
                    self.class_names[c]: round(float(n) / label_map.size, 6)
                    for c, n in enumerate(counts)
                    if n
                },
            }
            if self.overlays:
                overlay_path = self._write_overlay(meta["path"], label_map, stem)
                if overlay_path is not None:
                    record["overlay"] = str(overlay_path.relative_to(self.out_dir))
            self.records.append(record)

    def _unique_stem(self, stem: str) -> str:
        """Inputs from different folders may share a file stem: keep every mask, suffixing repeats."""
        candidate, n = stem, 1
        while candidate in self._stems:
            candidate, n = f"{stem}_{n}", n + 1
        self._stems.add(candidate)
        return candidate

    def _write_overlay(self, image_path: str, label_map: np.ndarray, stem: str) -> Path | None:
        try:
            image = read_image(image_path).permute(1, 2, 0).numpy()
        except BadImageError:  # it was read a moment ago; if it vanished since, the mask is still written
            return None
        path = self.out_dir / "overlays" / f"{stem}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(painted(image, label_map, self.class_names)).save(path, quality=90)
        return path

    def write(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "predictions.json").write_text(json.dumps(self.records, indent=1) + "\n")


def resize_label_map(prediction: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [H, W] on the CPU at `size` (H, W), e.g. the image's original size (nearest neighbour)."""
    height, width = (int(v) for v in size)
    label_map = prediction.detach()
    if tuple(label_map.shape) != (height, width):
        label_map = F.interpolate(label_map[None, None].float(), size=(height, width), mode="nearest")[0, 0]
    return label_map.to("cpu", torch.uint8)


class SegmentationOutputs:
    def __init__(self, *, class_names: list[str]) -> None:
        self.class_names = list(class_names)

    def preview(self, batch: Batch, predictions: LabelMaps, limit: int) -> list[Preview]:
        """The true mask next to the predicted one, each painted over the image with its legend."""
        previews = []
        for i, predicted in enumerate(list(predictions)[:limit]):
            meta = batch.meta[i]
            canvas, _ = preview_canvas(meta, batch.images[i])
            size = canvas.shape[:2]
            truth = resize_label_map(batch.targets[i], size).numpy()
            guess = resize_label_map(predicted, size).numpy()
            previews.append(
                Preview(
                    (
                        Panel(painted(canvas, truth, self.class_names), f"{Path(meta['path']).name}: truth"),
                        Panel(painted(canvas, guess, self.class_names), "predicted"),
                    )
                )
            )
        return previews

    def results_writer(self, dataset: Any, out_dir: Path) -> MaskWriter:
        """Palette PNGs under `out_dir/predictions/` and predictions.json."""
        return MaskWriter(out_dir=Path(out_dir), class_names=self.class_names, overlays=False)

    def predict_writer(self, out_dir: Path) -> MaskWriter:
        """The palette PNGs, and each image with its mask painted over it under `out_dir/overlays/`."""
        return MaskWriter(out_dir=Path(out_dir), class_names=self.class_names, overlays=True)

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> Table:
        table = Table(title=f"predicted masks in {out_dir}", show_header=True, header_style="bold")
        for column in ("image", "size (HxW)", "classes (share of pixels)", "files"):
            table.add_column(column)
        for record in records:
            files = [record["mask"], *([record["overlay"]] if "overlay" in record else [])]
            table.add_row(
                Path(record["path"]).name,
                f"{record['height']}x{record['width']}",
                fractions_text(record["class_fractions"]),
                "\n".join(files),
            )
        return table
