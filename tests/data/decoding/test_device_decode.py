"""`data.decode=device`: the workers ship JPEG bytes and the random choices, the device decodes and finishes them.
On the CPU the pixels equal the workers' own pipeline wherever that decodes at full size; on a GPU (nvJPEG, float
resize) they stay within rounding of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from cvtrain.contracts.batch import Batch, stack_images
from cvtrain.data.decoding.device_decode import JpegBatch, JpegCrop
from cvtrain.data.decoding.jpeg import scale_divisor
from cvtrain.data.transforms.pipelines import ClassificationTransform
from cvtrain.errors import ConfigError, DataError
from tests.conftest import block_picture, fixture_dir, write_image, write_oriented


def aug(**overrides: object) -> object:
    fields = dict(
        image_size=224, resize_size=None, random_resized_crop=True, crop_scale=[0.08, 1.0], hflip=0.5
    )
    return OmegaConf.create({**fields, **overrides})


def photos() -> list[Path]:
    """Real JPEGs: COCO photos (about 640x480) and ImageNet ones (224 px)."""
    coco = sorted((fixture_dir("coco-sample") / "images").glob("*.jpg"))
    imagenet = sorted((fixture_dir("imagenet-mini") / "val").rglob("*.JPEG"))[:4]
    return coco + imagenet


PIPELINES = [
    pytest.param(dict(), True, id="train-random-resized-crop"),
    pytest.param(dict(random_resized_crop=False, hflip=1.0), True, id="train-resize-random-crop-flip"),
    pytest.param(dict(), False, id="eval-resize-centre-crop"),
]


def both_ways(transform: ClassificationTransform, deferred: ClassificationTransform, path: Path, seed: int):
    """(the workers' image, the device path's image on the CPU, the plan both drew) for one seed."""
    torch.manual_seed(seed)
    ours = transform.read(path)
    torch.manual_seed(seed)
    crop = deferred.read(path)
    assert isinstance(crop, JpegCrop)
    return ours, stack_images([crop]).to(torch.device("cpu"))[0], crop.plan


@pytest.mark.parametrize(("overrides", "train"), PIPELINES)
def test_on_the_cpu_the_device_path_equals_the_workers_pipeline(overrides: dict, train: bool) -> None:
    a = aug(**overrides)
    workers = ClassificationTransform(a, train=train)
    device = ClassificationTransform(a, train=train, defer_decode=True)
    compared = 0
    for path in photos():
        for seed in range(6):
            ours, theirs, plan = both_ways(workers, device, path, seed)
            assert theirs.dtype == torch.uint8 and theirs.shape == (3, 224, 224)
            if scale_divisor(plan.box, plan.out) == 1:  # the workers decoded at full size too
                assert torch.equal(ours, theirs), (path.name, seed, plan)
                compared += 1
            else:  # a DCT-scaled decode: the same picture, its box rounded to the scaled pixels
                assert (ours.float() - theirs.float()).abs().mean() < 8
    assert compared >= 20


def test_the_plan_draws_the_same_random_numbers_as_torchvisions_transforms() -> None:
    """A resize + random crop + flip pipeline: the crop offsets and flips follow v2.RandomCrop and
    v2.RandomHorizontalFlip for the same seed."""
    from torchvision.transforms import v2

    transform = ClassificationTransform(aug(random_resized_crop=False, resize_size=256), train=True)
    reference = v2.Compose([v2.RandomCrop(224), v2.RandomHorizontalFlip(0.5)])
    image = torch.arange(256 * 300, dtype=torch.int32).reshape(1, 256, 300).expand(3, -1, -1)
    flips = set()
    for seed in range(20):
        torch.manual_seed(seed)
        plan = transform.plan(256, 300)
        torch.manual_seed(seed)
        expected = reference(image)
        top, left, height, width = plan.crop
        got = image[..., top : top + height, left : left + width]
        assert torch.equal(got.flip(-1) if plan.flip else got, expected)
        flips.add(plan.flip)
    assert flips == {True, False}


def test_a_batch_mixes_deferred_jpegs_and_images_the_workers_decoded(tmp_path: Path) -> None:
    png = write_image(tmp_path / "drawing.png", size=(300, 260), fmt="PNG")
    jpeg = photos()[0]
    deferred = ClassificationTransform(aug(), train=False, defer_decode=True)
    samples = [deferred.read(jpeg), deferred.read(png), deferred.read(jpeg)]
    assert isinstance(samples[0], JpegCrop) and isinstance(samples[1], torch.Tensor)
    batch = Batch(images=stack_images(samples), targets=torch.tensor([0, 1, 2]), meta=[{}, {}, {}])
    assert isinstance(batch.images, JpegBatch) and len(batch.images) == 3
    images = batch.to(torch.device("cpu")).images
    assert images.shape == (3, 3, 224, 224) and images.dtype == torch.uint8
    assert torch.equal(images[1], ClassificationTransform(aug(), train=False).read(png))
    assert torch.equal(images[0], images[2])


def test_a_jpeg_the_device_cannot_decode_is_named(tmp_path: Path) -> None:
    data = photos()[0].read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[: len(data) // 2])  # the header parses, the scan data stops half way
    deferred = ClassificationTransform(aug(), train=True, defer_decode=True)
    batch = stack_images([deferred.read(photos()[0]), deferred.read(broken)])
    with pytest.raises(DataError, match=r"broken\.jpg.*data\.decode=workers"):
        batch.to(torch.device("cpu"))


def test_a_resize_smaller_than_the_crop_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="aug.resize_size=200"):
        ClassificationTransform(aug(resize_size=200), train=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (nvJPEG)")
@pytest.mark.parametrize(("overrides", "train"), PIPELINES)
def test_on_a_gpu_the_decoded_batch_is_within_rounding_of_the_cpus(overrides: dict, train: bool) -> None:
    deferred = ClassificationTransform(aug(**overrides), train=train, defer_decode=True)
    torch.manual_seed(0)
    batch = stack_images([deferred.read(path) for path in photos()])
    on_gpu = batch.to(torch.device("cuda"))
    on_cpu = batch.to(torch.device("cpu"))
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.uint8 and on_gpu.shape == on_cpu.shape
    difference = (on_gpu.cpu().float() - on_cpu.float()).abs()
    assert difference.mean() < 1.5 and difference.quantile(0.99) <= 8, (difference.mean(), difference.max())


def test_a_phone_photo_is_turned_upright_by_the_workers_not_deferred(tmp_path: Path) -> None:
    shown = block_picture(96, 64)
    upright = write_oriented(tmp_path / "upright.jpg", shown, 1)
    turned = write_oriented(tmp_path / "turned.jpg", shown, 6)
    a = aug(image_size=32, random_resized_crop=False)
    deferred = ClassificationTransform(a, train=False, defer_decode=True)
    workers = ClassificationTransform(a, train=False)
    items = [deferred.read(upright), deferred.read(turned)]
    assert isinstance(items[0], JpegCrop) and isinstance(items[1], torch.Tensor)
    batch = stack_images(items).to(torch.device("cpu"))
    assert torch.equal(batch[1], workers.read(turned))
    assert (batch[0].float() - batch[1].float()).abs().mean() < 1  # the same picture both ways
