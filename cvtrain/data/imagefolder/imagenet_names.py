"""ImageNet-1k's class names by WordNet id (wnid), the folder names of the ImageNet layout: for copies that ship
no LOC_synset_mapping.txt (Imagenette, Imagewoof, a subset made by hand).

`imagenet_wnids.txt` lists the 1,000 wnids of ImageNet's LOC_synset_mapping.txt, sorted, which is ImageNet-1k's
class order; the names are torchvision's for that order (the `categories` of its ImageNet weights), which tell
apart the two names ImageNet gives twice ("crane bird" and "crane", "maillot tank suit" and "maillot").
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from torchvision.models import ResNet50_Weights

WNIDS_FILE = Path(__file__).with_name("imagenet_wnids.txt")


@cache
def imagenet_names() -> dict[str, str]:
    """wnid -> class name, for the 1,000 classes of ImageNet-1k."""
    wnids = WNIDS_FILE.read_text(encoding="ascii").split()
    return dict(zip(wnids, ResNet50_Weights.IMAGENET1K_V1.meta["categories"], strict=True))
