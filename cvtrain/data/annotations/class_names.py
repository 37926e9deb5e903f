"""Class lists that more than one data format names: VOC's 20 classes are VOC's labels and what `data=coco_seg`
maps COCO's categories to with `classes=voc`."""

# The 20 Pascal VOC classes in the devkit's order; segmentation prepends "background".
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC_SEG_CLASSES = ("background", *VOC_CLASSES)  # label 0 is background, 1..20 the VOC classes, 255 void
