#!/usr/bin/env bash
# The README's first command on a few real Pascal VOC 2012 photos, trained and evaluated on the same photos: a
# check that a detector trained as typed learns (no NaN, the loss falls, VOC mAP rises), not a benchmark of accuracy.
#
#     scripts/voc_first_command.sh VOCDEVKIT [EPOCHS] [extra overrides...]
#
# VOCDEVKIT holds VOC2012/{Annotations,JPEGImages,ImageSets/Main/trainval.txt}. The lighter backbone fits a CPU;
# model.pretrained_backbone=false because no ImageNet weights can be fetched without a network. The recipe is
# torchvision's detection reference: SGD lr 0.02 for a batch of 16, scaled to a batch of 4 (0.005), momentum 0.9,
# weight decay 1e-4, a linear warm-up over the first epoch from 0.001 x lr, and steps of 0.1 at 16/26 and 22/26 of
# the run. model.box_score_thresh=0.001 (torchvision's 0.05 by default) keeps the low-scored boxes of a young
# detector in the evaluation, as YOLO's and COCO-style evaluations do. Prints the first and last logged training
# loss and the VOC mAP of each evaluation.
set -euo pipefail
root=${1:?usage: scripts/voc_first_command.sh VOCDEVKIT [EPOCHS] [overrides...]}
epochs=${2:-20}
shift $(($# < 2 ? $# : 2))
run_dir=${RUN_DIR:-outputs/voc_first_command}
python=${PYTHON:-python}
milestones="[$((epochs * 16 / 26)),$((epochs * 22 / 26))]"

start=$(date +%s)
"$python" -m cvtrain.cli fit model=faster_rcnn data=voc data.root="$root" data.years=[2012] data.val_years=[2012] \
    data.train_split=trainval data.val_split=trainval model.backbone=mobilenet_v3_large_320_fpn \
    model.pretrained_backbone=false model.box_score_thresh=0.001 \
    optim.lr=0.005 optim.weight_decay=1e-4 sched=multistep "sched.milestones=$milestones" sched.warmup_epochs=1 \
    trainer.epochs="$epochs" trainer.eval_every=5 trainer.log_every=2 logger.console.progress=false data.num_workers=2 \
    hydra.run.dir="$run_dir" "$@" 2>&1 | tee "$run_dir.log"
echo "wall time: $(($(date +%s) - start)) s"
"$python" - "$run_dir.log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
losses = [float(x) for x in re.findall(r"step \d+ loss=([\d.naif]+)", text)]
maps = re.findall(r"epoch (\d+) eval: voc_map=([\d.]+).*? map=([\d.]+)", text)
print(f"training loss: first {losses[0]:.4f}, last {losses[-1]:.4f} ({len(losses)} logged steps)")
print("VOC mAP (COCO mAP) after epochs:", ", ".join(f"{e}: {v} ({c})" for e, v, c in maps))
PY
