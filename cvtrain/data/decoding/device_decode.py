"""`data.decode=device`: JPEGs decoded on the training device (nvJPEG through `torchvision.io.decode_jpeg` on a GPU).

The data workers still read each file, parse its header and draw the crop box (the same `RandomResizedCrop`
sampling as `data.decode=workers`), but they ship the compressed bytes, a tenth of the decoded pixels, instead of
decoding. `JpegBatch.to(device)` then decodes the whole batch in one call on the device, crops and resizes each
image there (bilinear, antialiased) and applies the rest of the pipeline (centre or random crop, flip). Files the
device decoder cannot take (PNG, CMYK JPEGs, JPEGs stored sideways or mirrored with an EXIF orientation:
`jpeg_size` is None) are decoded by the workers as before, turned upright, and ride along as finished images.

The workers draw every random choice (`CropPlan`) exactly as `data.decode=workers` does. The device decode is a
full-size one (no DCT scaling), and the GPU resizes in floats: pixels can differ from `data.decode=workers` by
that rounding, never by the recipe. On the CPU (`trainer.device=cpu`) both modes give the same pixels wherever
the workers decode at full size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from cvtrain.data.decoding.crop_plan import CropPlan, finish
from cvtrain.errors import DataError


@dataclass
class JpegCrop:
    """One sample left for the device: the JPEG file's bytes and the random choices already drawn for it."""

    data: torch.Tensor  # uint8 [N], the JPEG file
    plan: CropPlan
    path: str

    @staticmethod
    def stack(images: list[JpegCrop | torch.Tensor]) -> JpegBatch:
        return JpegBatch(images)


class JpegBatch:
    """A batch of `JpegCrop`s and finished uint8 images, in sample order; `to(device)` gives the uint8 batch."""

    def __init__(self, images: list[JpegCrop | torch.Tensor]):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device, non_blocking: bool = False) -> torch.Tensor:
        crops = [image for image in self.images if isinstance(image, JpegCrop)]
        decoded = iter(_decode(crops, torch.device(device)))
        out = []
        for image in self.images:
            if isinstance(image, JpegCrop):
                plan = image.plan
                pixels = F.resized_crop(next(decoded), *plan.box, size=list(plan.out), antialias=True)
                out.append(finish(pixels, plan))
            else:
                out.append(image.to(device, non_blocking=non_blocking))
        return torch.stack(out)


def _decode(crops: list[JpegCrop], device: torch.device) -> list[torch.Tensor]:
    """The crops' files decoded on `device` in one call; a file the decoder refuses is named in the error."""
    if not crops:
        return []
    try:
        return decode_jpeg([c.data for c in crops], mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        pass  # find which file it was
    for crop in crops:
        try:
            decode_jpeg(crop.data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as e:
            raise DataError(
                f"cannot decode {crop.path} on {device} ({str(e).splitlines()[0]}). Check the data with "
                "`cvtrain data check`, or use data.decode=workers, where data.on_bad_image=skip can skip such "
                "files."
            ) from None
    raise DataError(f"the batch of {len(crops)} JPEGs ({crops[0].path}, ...) failed to decode on {device}")
