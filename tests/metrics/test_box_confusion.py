"""The detector's confusion matrix: one-to-one matches at IoU 0.5 whatever the class, background row and column."""

from __future__ import annotations

import pickle

import torch

from cvtrain.contracts.batch import Batch
from cvtrain.data.annotations.coco_api import coco_api_from_dict
from cvtrain.metrics.box_confusion import BoxConfusionEvaluator, match_counts

CAT, DOG, BG = 0, 1, 2


def boxes(*xyxy: list[float]) -> torch.Tensor:
    return torch.tensor(xyxy, dtype=torch.float64).reshape(-1, 4)


def labels(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def test_matches_misses_false_positives_and_wrong_classes() -> None:
    gt = boxes([0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60])
    det = boxes([0, 0, 10, 11], [20, 20, 30, 30], [80, 80, 90, 90])
    counts = match_counts(gt, labels(CAT, CAT, DOG), det, labels(CAT, DOG, CAT), num_classes=2)
    expected = torch.zeros(3, 3, dtype=torch.int64)
    expected[CAT, CAT] = 1  # found
    expected[CAT, DOG] = 1  # found with the wrong class: off the diagonal
    expected[DOG, BG] = 1  # missed
    expected[BG, CAT] = 1  # a detection of nothing
    assert counts.tolist() == expected.tolist()


def test_each_box_and_detection_is_matched_once_greedily_by_iou() -> None:
    gt = boxes([0, 0, 10, 10], [0, 0, 10, 12])
    det = boxes([0, 0, 10, 11], [0, 0, 10, 10.5])
    # IoUs: gt0-det0 .909, gt0-det1 .952, gt1-det0 .917, gt1-det1 .875: gt0-det1 first, then gt1-det0
    counts = match_counts(gt, labels(CAT, DOG), det, labels(DOG, CAT), num_classes=2)
    assert counts.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    duplicate = match_counts(gt[:1], labels(CAT), boxes([0, 0, 10, 10], [0, 0, 10, 10]), labels(CAT, CAT), 2)
    assert duplicate.tolist() == [[1, 0, 0], [0, 0, 0], [1, 0, 0]]  # the second copy is a false positive


def test_iou_of_exactly_half_matches_and_crowd_regions_absorb_detections() -> None:
    half = match_counts(boxes([0, 0, 10, 10]), labels(CAT), boxes([0, 0, 10, 5]), labels(CAT), 2)
    assert half[CAT, CAT] == 1
    crowd = boxes([100, 100, 200, 200])
    inside = match_counts(boxes(), labels(), boxes([110, 110, 130, 130]), labels(DOG), 2, crowd)
    assert inside.sum() == 0  # neither a false positive nor a match (COCOeval ignores it too)
    nothing = match_counts(boxes(), labels(), boxes(), labels(), 2)
    assert nothing.sum() == 0


def test_the_evaluator_reads_the_coco_view_in_original_pixels_and_merges() -> None:
    coco = coco_api_from_dict(
        {
            "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 100}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 3, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
                {
                    "id": 2,
                    "image_id": 7,
                    "category_id": 5,
                    "bbox": [50, 50, 40, 40],
                    "area": 1600,
                    "iscrowd": 1,
                },
            ],
            "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
        }
    )

    def evaluator() -> BoxConfusionEvaluator:
        return BoxConfusionEvaluator(
            coco_gt=coco,
            label_to_cat_id={0: 3, 1: 5},
            class_names=["cat", "dog"],
            score_threshold=0.5,
            image_id_map={"a": 7},
        )

    first, second = evaluator(), evaluator()
    prediction = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [60, 60, 70, 70], [0, 0, 10, 10]]),
        "scores": torch.tensor([0.9, 0.8, 0.3]),  # the last is below the threshold
        "labels": torch.tensor([1, 1, 0]),
    }
    batch = Batch(images=[], targets=[], meta=[{"image_id": "a"}])
    first.update(batch, [prediction])
    second.update(batch, [prediction])
    first.merge(second)
    data = first.plot_data().confusion
    assert data is not None and data.names == ["cat", "dog", "background"]
    assert data.counts.tolist() == [[0, 2, 0], [0, 0, 0], [0, 0, 0]]  # the dog in the crowd region is ignored
    assert first.compute() == {}
    copy = pickle.loads(pickle.dumps(first))  # what a distributed merge gathers from each rank
    assert copy.coco_gt is None and copy.counts.tolist() == data.counts.tolist()
