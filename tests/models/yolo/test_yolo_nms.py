import torch

from cvtrain.models.yolo.nms import select_detections


def detect(boxes, scores, **overrides):
    options = dict(image_size=(100, 100), conf_threshold=0.1, iou_threshold=0.5, max_det=100)
    options.update(overrides)
    return select_detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores), **options)


def test_overlapping_boxes_of_one_class_keep_the_best() -> None:
    boxes = [[10, 10, 50, 50], [12, 12, 52, 52], [60, 60, 90, 90]]
    scores = [[0.9, 0.0], [0.8, 0.0], [0.7, 0.0]]
    out = detect(boxes, scores)
    assert out["boxes"].tolist() == [[10, 10, 50, 50], [60, 60, 90, 90]]
    assert torch.allclose(out["scores"], torch.tensor([0.9, 0.7]))
    assert out["labels"].tolist() == [0, 0]


def test_nms_is_class_wise() -> None:
    boxes = [[10, 10, 50, 50], [12, 12, 52, 52]]
    out = detect(boxes, [[0.9, 0.0], [0.0, 0.8]])
    assert out["labels"].tolist() == [0, 1]
    assert out["boxes"].tolist() == [[10, 10, 50, 50], [12, 12, 52, 52]]


def test_one_box_can_be_reported_for_several_classes() -> None:
    out = detect([[10, 10, 50, 50]], [[0.6, 0.3]])
    assert out["labels"].tolist() == [0, 1]
    assert torch.allclose(out["scores"], torch.tensor([0.6, 0.3]))


def test_conf_threshold_and_max_det() -> None:
    boxes = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]]
    scores = [[0.05], [0.5], [0.9], [0.7]]
    out = detect(boxes, scores)
    assert torch.allclose(out["scores"], torch.tensor([0.9, 0.7, 0.5]))  # best first, 0.05 dropped
    out = detect(boxes, scores, max_det=2)
    assert out["boxes"].tolist() == [[40, 40, 50, 50], [60, 60, 70, 70]]


def test_boxes_are_clipped_to_the_image_and_boxes_in_the_padding_dropped() -> None:
    # image_size is (height 40, width 60): the second box lies entirely right of the image.
    out = detect([[-5, 10, 70, 50], [65, 0, 90, 20]], [[0.9], [0.8]], image_size=(40, 60))
    assert out["boxes"].tolist() == [[0, 10, 60, 40]]


def test_nothing_above_threshold_gives_empty_tensors() -> None:
    out = detect([[0, 0, 10, 10]], [[0.01]])
    assert out["boxes"].shape == (0, 4) and out["scores"].shape == (0,) and out["labels"].dtype == torch.int64
