import inspect

import pytest
import torch
from torch import nn
from torchvision.models import detection as tvdet
from torchvision.models.detection.ssd import SSD

from cvtrain.errors import ConfigError
from cvtrain.models.detection import TorchvisionDetector, _replace_class_head, build_torchvision_detector
from cvtrain.models.weights import hub_checkpoint_path

TINY_FRCNN = {"backbone": "mobilenet_v3_large_320_fpn", "min_size": 64, "max_size": 96}
# torchvision's FasterRCNN defaults, which FasterRCNNConfig's comments (cvtrain/config/model.py) quote.
FASTER_RCNN_DEFAULTS: dict[str, int | float] = {
    "min_size": 800,
    "max_size": 1333,
    "rpn_pre_nms_top_n_train": 2000,
    "rpn_pre_nms_top_n_test": 1000,
    "rpn_post_nms_top_n_train": 2000,
    "rpn_post_nms_top_n_test": 1000,
    "rpn_nms_thresh": 0.7,
    "rpn_fg_iou_thresh": 0.7,
    "rpn_bg_iou_thresh": 0.3,
    "rpn_batch_size_per_image": 256,
    "rpn_positive_fraction": 0.5,
    "rpn_score_thresh": 0.0,
    "box_score_thresh": 0.05,
    "box_nms_thresh": 0.5,
    "box_detections_per_img": 100,
    "box_fg_iou_thresh": 0.5,
    "box_bg_iou_thresh": 0.5,
    "box_batch_size_per_image": 512,
    "box_positive_fraction": 0.25,
}
# What torchvision's fasterrcnn_mobilenet_v3_large_320_fpn builder sets over those defaults.
MOBILENET_320_DEFAULTS = {
    **FASTER_RCNN_DEFAULTS,
    "min_size": 320,
    "max_size": 640,
    "rpn_pre_nms_top_n_test": 150,
    "rpn_post_nms_top_n_test": 150,
    "rpn_score_thresh": 0.05,
}
FASTER_RCNN_LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}


def _images_and_targets() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    images = [torch.rand(3, 80, 96), torch.rand(3, 64, 72)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [40.0, 5.0, 90.0, 30.0]]),
            "labels": torch.tensor([0, 2]),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # an image with no objects
    ]
    return images, targets


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_the_quoted_defaults_are_torchvisions():
    signature = inspect.signature(tvdet.FasterRCNN.__init__).parameters
    assert {key: signature[key].default for key in FASTER_RCNN_DEFAULTS} == FASTER_RCNN_DEFAULTS


def test_options_reach_torchvision_and_unset_ones_keep_the_backbone_default():
    model = build_torchvision_detector(
        arch="faster_rcnn",
        num_classes=3,
        backbone="mobilenet_v3_large_320_fpn",
        box_score_thresh=0.3,
        rpn_batch_size_per_image=64,
        box_detections_per_img=None,  # None: torchvision's default
    ).model
    defaults = MOBILENET_320_DEFAULTS
    assert model.roi_heads.score_thresh == 0.3
    assert model.rpn.fg_bg_sampler.batch_size_per_image == 64
    assert model.roi_heads.detections_per_img == defaults["box_detections_per_img"]
    assert model.transform.min_size == (defaults["min_size"],)
    assert model.rpn._pre_nms_top_n == {"training": 2000, "testing": defaults["rpn_pre_nms_top_n_test"]}
    assert model.roi_heads.box_predictor.cls_score.out_features == 4  # 3 classes + background


class _RecordingDetector(nn.Module):
    """Stands in for a torchvision detector: records its targets, returns labels in torchvision's numbering."""

    def forward(self, images, targets=None):
        self.targets = targets
        if self.training:
            return {"loss": torch.zeros(())}
        return [{"boxes": torch.zeros(2, 4), "scores": torch.ones(2), "labels": torch.tensor([1, 3])}]


def test_wrapper_shifts_labels_in_and_out():
    inner = _RecordingDetector()
    detector = TorchvisionDetector(model=inner, num_classes=3)
    images, targets = _images_and_targets()
    detector.train()(images, targets)
    assert [t["labels"].tolist() for t in inner.targets] == [[1, 3], []]
    assert targets[0]["labels"].tolist() == [0, 2]  # the caller's targets are left alone
    detections = detector.eval()(images)
    assert detections[0]["labels"].tolist() == [0, 2]
    assert set(detections[0]) == {"boxes", "scores", "labels"}


def test_out_of_range_labels_are_config_errors():
    detector = TorchvisionDetector(model=_RecordingDetector(), num_classes=3).train()
    images, targets = _images_and_targets()
    targets[0]["labels"] = torch.tensor([0, 3])
    with pytest.raises(ConfigError, match="num_classes=3"):
        detector(images, targets)


def test_tiny_faster_rcnn_trains_a_step_and_predicts_zero_based_labels():
    torch.manual_seed(0)
    detector = build_torchvision_detector(
        arch="faster_rcnn", num_classes=3, box_score_thresh=0.0, **TINY_FRCNN
    )
    images, targets = _images_and_targets()
    optimizer = torch.optim.SGD(detector.parameters(), lr=0.01)
    before = {n: p.detach().clone() for n, p in detector.named_parameters()}
    losses = detector.train()(images, targets)
    assert set(losses) == FASTER_RCNN_LOSSES
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    optimizer.step()
    changed = [n for n, p in detector.named_parameters() if not torch.equal(p, before[n])]
    assert any("box_predictor" in n for n in changed) and any("rpn" in n for n in changed)

    detector.eval()
    with torch.no_grad():
        raw = detector.model(images)
        detections = detector(images)
    assert len(detections) == 2
    for ours, theirs, image in zip(detections, raw, images, strict=True):
        assert torch.equal(ours["labels"], theirs["labels"] - 1)
        assert torch.equal(ours["boxes"], theirs["boxes"])
        if len(ours["labels"]):
            assert ours["labels"].min() >= 0 and ours["labels"].max() < 3
            # boxes are in the input image's pixels (torchvision resized to min_size and back)
            assert ours["boxes"][:, 2].max() <= image.shape[2] and ours["boxes"][:, 3].max() <= image.shape[1]


@pytest.mark.parametrize(
    ("arch", "options", "losses"),
    [
        ("ssd", {"backbone": "mobilenet_v3_large"}, {"bbox_regression", "classification"}),
        ("retinanet", {"min_size": 64, "max_size": 96}, {"bbox_regression", "classification"}),
    ],
    ids=["ssd", "retinanet"],
)
def test_ssd_and_retinanet_speak_the_same_contract(arch, options, losses):
    torch.manual_seed(0)
    detector = build_torchvision_detector(arch=arch, num_classes=3, **options)
    images, targets = _images_and_targets()
    assert set(detector.train()(images, targets)) == losses
    with torch.no_grad():
        detections = detector.eval()(images)
    assert all(set(d) == {"boxes", "scores", "labels"} for d in detections)
    assert all(((d["labels"] >= 0) & (d["labels"] < 3)).all() for d in detections)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "backbone"),
    [
        ("faster_rcnn", "resnet50_fpn"),
        ("faster_rcnn", "resnet50_fpn_v2"),
        ("faster_rcnn", "mobilenet_v3_large_fpn"),
        ("ssd", "vgg16"),
        ("retinanet", "resnet50_fpn_v2"),
    ],
)
def test_large_backbones_build(arch, backbone):
    detector = build_torchvision_detector(arch=arch, num_classes=5, backbone=backbone)
    assert isinstance(detector, TorchvisionDetector)


@pytest.mark.parametrize(
    "builder",
    [
        lambda: tvdet.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91),
        lambda: tvdet.retinanet_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=91, min_size=64
        ),
    ],
    ids=["ssdlite", "retinanet"],
)
def test_class_head_replacement_for_coco_models(builder):
    model = builder()
    _replace_class_head(model, 4)
    model.train()
    images, targets = _images_and_targets()
    shifted = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]
    losses = model(images, shifted)
    assert all(torch.isfinite(v) for v in losses.values())
    head = model.head.classification_head
    assert (head.num_columns if isinstance(model, SSD) else head.num_classes) == 4


@pytest.mark.parametrize(
    ("options", "weights_file"),
    [
        ({"pretrained": True}, "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth"),
        ({"pretrained_backbone": True}, "mobilenet_v3_large-8738ca79.pth"),
    ],
)
def test_missing_weights_name_the_path_to_put_them_at(empty_hub, options, weights_file):
    with pytest.raises(ConfigError) as error:
        build_torchvision_detector(
            arch="faster_rcnn", num_classes=3, backbone="mobilenet_v3_large_320_fpn", **options
        )
    assert str(empty_hub / "checkpoints" / weights_file) in str(error.value)
    assert not (empty_hub / "checkpoints").exists()  # nothing was downloaded


def test_pretrained_coco_weights_load_then_the_box_predictor_is_replaced(empty_hub):
    torch.manual_seed(0)
    reference = tvdet.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)  # 91 classes
    path = hub_checkpoint_path(tvdet.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.DEFAULT)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = build_torchvision_detector(arch="faster_rcnn", num_classes=3, pretrained=True, **TINY_FRCNN).model
    assert torch.equal(model.rpn.head.conv[0][0].weight, reference.rpn.head.conv[0][0].weight)
    assert torch.equal(model.roi_heads.box_head.fc6.weight, reference.roi_heads.box_head.fc6.weight)
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 16
    # torchvision's pretrained setup: frozen batch norm, first backbone blocks frozen (trainable layers = 3)
    assert not model.backbone.body["0"][0].weight.requires_grad
    assert model.backbone.body["16"][0].weight.requires_grad


@pytest.mark.parametrize(
    ("arch", "backbone"),
    [("faster_rcnn", "vgg16"), ("ssd", "resnet50_fpn"), ("retinanet", "mobilenet_v3_large")],
)
def test_a_backbone_the_model_lacks_is_a_config_error(arch, backbone):
    with pytest.raises(ConfigError, match=f"model.backbone='{backbone}' is not available for model={arch}"):
        build_torchvision_detector(arch=arch, num_classes=3, backbone=backbone)


def test_an_architecture_torchvision_lacks_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"model.arch='fcos' is not a torchvision detector; choose one of \['faster"
    ):
        build_torchvision_detector(arch="fcos", num_classes=3)
