"""`cvtrain eval predictions=FILE`: score a saved COCO-format results file, with no model and no images.

    cvtrain eval data=coco data.val_ann=instances_val2017.json predictions=results.json
    cvtrain eval data=voc data.root=VOCdevkit predictions=predictions.json     # data.val_years, data.val_split
    cvtrain eval data=shapes predictions=predictions.json                      # data.layout picks the copy

COCO files are scored by pycocotools exactly as the official evaluation does (`map`, `map_50`, ... in
`COCOeval.stats` order); VOC data gets the devkit's `voc_map` / `voc07_map` and COCO AP on its COCO view. This is
how another detector's output, or our own `eval.save_predictions=true` file, is re-scored.
"""

from __future__ import annotations

from typing import Any

from cvtrain.config import choice
from cvtrain.data.build_detection import coco_annotation_path, shapes_dataset, voc_dataset
from cvtrain.data.voc import VOCDetection
from cvtrain.errors import ConfigError
from cvtrain.metrics.coco import score_coco_results
from cvtrain.metrics.voc import score_voc_results


def _score(data: Any, results_file: str) -> dict[str, float]:
    if data.format == "coco":
        return score_coco_results(ann_file=coco_annotation_path(data, "val"), results_file=results_file)
    if data.format == "voc":
        dataset = voc_dataset(data, train=False, require_images=False)
    elif data.format == "shapes":
        dataset = shapes_dataset(data, train=False, require_images=False)
        if not isinstance(dataset, VOCDetection):  # data.layout=coco: the json of the COCO copy
            return score_coco_results(ann_file=dataset.ann_file, results_file=results_file)
    else:
        raise ConfigError(
            f"predictions= scores detections on data=coco, data=voc or data=shapes, not data={data.format}"
        )
    return score_voc_results(voc_dataset=dataset, results_file=results_file)


def score_predictions_file(cfg: Any) -> dict[str, Any]:
    """The metrics of `cfg.predictions` on the validation split of `cfg.data` (what `cvtrain eval` prints)."""
    metrics = _score(cfg.data, str(cfg.predictions))
    layout = f" ({choice(cfg.data.layout)} layout)" if cfg.data.format == "shapes" else ""
    return {
        "status": "ok",
        **metrics,
        "predictions": str(cfg.predictions),
        "data": f"{cfg.data.format}{layout}",
    }
