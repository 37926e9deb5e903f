#!/usr/bin/env bash
# The peer for detection: Ultralytics YOLOv8n trained from its model yaml (no pretrained weights) on coco128,
# Ultralytics' convention (train = val), on the CPU, with save_json=True so that pycocotools can score its
# predictions beside cvtrain's (scripts/peers/score_ultralytics.py).
#
#   scripts/peers/ultralytics_coco128.sh DATA_DIR OUT_DIR [IMAGES] [EPOCHS] [IMGSZ] [BATCH] [WORKERS]
#
# DATA_DIR is coco128_yolo/object_detection (how to get it: docs/benchmarks.md, "Results on real data"). IMAGES (default 128) keeps the first
# that many training images, in file-name order, as a YOLO dataset under OUT_DIR/data that both tools read.
# Ultralytics lives in its own venv (VENV, default OUT_DIR/../venv-ul): never a cvtrain dependency.
set -euo pipefail
data=$(realpath "$1"); out=$(realpath -m "$2")
images=${3:-128} epochs=${4:-100} imgsz=${5:-320} batch=${6:-8} workers=${7:-2}
venv=${VENV:-$(dirname "$out")/venv-ul}

if [ ! -x "$venv/bin/yolo" ]; then
  python3 -m venv "$venv"
  # the CPU build of the same torch cvtrain uses, then Ultralytics and its own dependencies
  "$venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 ultralytics
fi

# The subset both tools train and validate on: images/train + labels/train, and a data.yaml naming the 80 classes.
subset="$out/data"
mkdir -p "$subset/images/train" "$subset/labels/train"
ls "$data/images/train2017" | sort | head -n "$images" | while read -r f; do
  ln -sf "$data/images/train2017/$f" "$subset/images/train/$f"
  label="$data/labels/train2017/${f%.*}.txt"
  if [ -f "$label" ]; then cp "$label" "$subset/labels/train/"; fi
done
{
  echo "path: $subset"
  echo "train: images/train"
  echo "val: images/train"
  sed -n '/^names:/,$p' "$data/config.yaml"
} > "$subset/data.yaml"

cd "$out"
export YOLO_OFFLINE=1  # nothing to download: no fonts, no AMP check weights, no hub
/usr/bin/time -v "$venv/bin/yolo" detect train model=yolov8n.yaml pretrained=False data="$subset/data.yaml" \
  epochs="$epochs" imgsz="$imgsz" batch="$batch" workers="$workers" device=cpu plots=False \
  project="$out" name=ultralytics exist_ok=True 2>&1 | tee "$out/ultralytics_train.log"
"$venv/bin/yolo" detect val model="$out/ultralytics/weights/last.pt" data="$subset/data.yaml" \
  imgsz="$imgsz" batch="$batch" device=cpu save_json=True plots=False conf=0.001 \
  project="$out" name=ultralytics_val exist_ok=True 2>&1 | tee "$out/ultralytics_val.log"
