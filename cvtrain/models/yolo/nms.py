"""From per-candidate boxes and class scores to the contract's detections: threshold, clip, class-wise NMS."""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

# Candidates kept before NMS: bounds NMS time when an untrained model scores everything above a low threshold.
MAX_CANDIDATES = 30000


def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    *,
    image_size: tuple[int, int],
    conf_threshold: float,
    iou_threshold: float,
    max_det: int,
) -> dict[str, torch.Tensor]:
    """boxes [N, 4] XYXY pixels and class scores [N, C] of one image → {"boxes", "scores", "labels"}.

    Every (box, class) pair scoring above `conf_threshold` is a candidate (a box may be reported for two
    classes, which helps mAP); boxes are clipped to the image's own (height, width), those left without area are
    dropped, NMS runs per class (`torchvision.ops.batched_nms`) and the `max_det` best are kept, best first.
    """
    box_idx, labels = (scores > conf_threshold).nonzero(as_tuple=True)
    candidate_scores = scores[box_idx, labels]
    if candidate_scores.numel() > MAX_CANDIDATES:
        top = candidate_scores.topk(MAX_CANDIDATES).indices
        box_idx, labels, candidate_scores = box_idx[top], labels[top], candidate_scores[top]
    candidate_boxes = clip_boxes_to_image(boxes[box_idx], image_size)
    has_area = (candidate_boxes[:, 2] > candidate_boxes[:, 0]) & (
        candidate_boxes[:, 3] > candidate_boxes[:, 1]
    )
    candidate_boxes, candidate_scores, labels = (
        candidate_boxes[has_area],
        candidate_scores[has_area],
        labels[has_area],
    )
    keep = batched_nms(candidate_boxes, candidate_scores, labels, iou_threshold)[:max_det]
    return {"boxes": candidate_boxes[keep], "scores": candidate_scores[keep], "labels": labels[keep]}
