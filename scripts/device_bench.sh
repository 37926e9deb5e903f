#!/usr/bin/env bash
# Issue 11's GPU measurements in one call on a lent GPU machine (python3 with torch/torchvision, no internet).
# Prepare first, on the CPU machine: bash scripts/device_bench_prepare.sh  (fills the git-ignored .devbench/)
#
# On the device, from the repo root, with .devbench carried along:  bash scripts/device_bench.sh
#   $OUT       where every log, bench.json and the summary go (required)
#   BUDGET     seconds the whole script may take (default 470): a benchmark that would not fit is skipped, and
#              each one's `timeout` is cut to what is left; torch.compile runs only if 120 s are left
#   SKIP       names of steps to leave out (see "What is run first" below)
#   PY         the interpreter (default python3)
# Smoke test on a CPU machine (tiny sizes, 2 steps, trainer.device=cpu, no wheel install):
#   SMOKE=1 PY=.venv/bin/python OUT=$(mktemp -d) bash scripts/device_bench.sh
# Config check only (every bench's overrides composed with `--cfg job`: no torch, no data, no timing), e.g. under
# another interpreter:  CHECK_CONFIGS=1 PY=... OUT=$(mktemp -d) bash scripts/device_bench.sh
# Output: $OUT/logs/<name>.log (stdout+stderr of each step), $OUT/<name>/bench.json (+ hydra/ config),
#   $OUT/runs.tsv (name, rc, start, wall), $OUT/gpu.csv (nvidia-smi every second), $OUT/summary.{txt,json}.
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
: "${OUT:?set OUT to an empty folder for the results}"
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
PY=${PY:-python3}
SMOKE=${SMOKE:-0}
BUDGET=${BUDGET:-470}
SITE=${SITE:-/tmp/site}
WORK=${WORK:-/tmp/devbench}              # generated data: shapes caches, the ImageFolder tree of real photos
INSTALL=${INSTALL:-$([ "$SMOKE" = 1 ] && echo 0 || echo 1)}
COMPILE=${COMPILE:-1}
CHECK_CONFIGS=${CHECK_CONFIGS:-0}
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1
export PYTHONPATH=$REPO:$REPO/.devbench/site:$SITE${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT/logs" "$WORK"
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
say() { printf '[%4ss] %s\n' "$(elapsed)" "$*"; }
printf 'name\trc\tstart_s\twall_s\tnote\n' > "$OUT/runs.tsv"

# ---------------------------------------------------------------------------------------------- sizes
if [ "$SMOKE" = 1 ]; then
    DEVICE=cpu; PREC=bf16; HALF=32; FP16_LEN=128  # fp16 autocast is a CUDA path
    RN_BATCH=4; RN_SIZE=64; RN_WARM=1; RN_STEPS=2
    JPEG_CLASSES=2; JPEG_PER_CLASS=16; JPEG_WORKERS=2; JPEG_BATCH=4; JPEG_WARM=1; JPEG_STEPS=2
    DET_SIZE=128; DET_TRAIN=24; DET_VAL=4; DET_BATCH=2; DET_WORKERS=2; DET_WARM=1; DET_STEPS=2
    DET_EXTRA=(model.min_size=128 model.max_size=128)
    YOLO_BATCH=4; YOLO_WORKERS=2; YOLO_WARM=1; YOLO_STEPS=2
    SEG_SIZE=128; SEG_TRAIN=24; SEG_VAL=4; SEG_BATCH=2; SEG_WORKERS=2; SEG_WARM=1; SEG_STEPS=2
    LOOP_ARGS=(--model resnet18 --image-size 32 --batch-size 4 --device cpu --warmup 1 --segment 1 --segments 2)
    T_RN=240; T_JPEG=240; T_DET=300; T_YOLO=240; T_SEG=240; T_LOOP=240; T_COMPILE=600; T_CHECK=240
else
    DEVICE=cuda; PREC=bf16; HALF=16; FP16_LEN=4096
    # ResNet-50 at 224 px, batch 256 (the usual per-GPU batch of NVIDIA's and torchvision's recipes)
    RN_BATCH=256; RN_SIZE=224; RN_WARM=10; RN_STEPS=50
    # 40 x 768 hard links of the 8 real COCO/VOC photos: 30,720 files, more than the 2 x (16 + 40) batches of
    # 256 both timings take, so no epoch boundary (a refill stall) falls inside them. warmup > num_workers (the
    # workers' first batches come together), and steps ~ 3 rounds of 14 workers' batches.
    JPEG_CLASSES=40; JPEG_PER_CLASS=768; JPEG_WORKERS=14; JPEG_BATCH=256; JPEG_WARM=16; JPEG_STEPS=40
    # 640 px scenes (Faster R-CNN resizes them to 800 inside, as COCO); 1,024 training scenes are written
    # once (single-threaded, ~47 ms each on the dev machine), in the background while the first runs time the GPU.
    DET_SIZE=640; DET_TRAIN=1024; DET_VAL=8; DET_BATCH=8; DET_WORKERS=14; DET_WARM=15; DET_STEPS=30
    DET_EXTRA=()
    # YOLO shares those scenes: 2 x (15 + 28) batches of 32 are ~2.7 epochs of 1,024 (compute img/s leaves out the
    # refill wait at each epoch start)
    YOLO_BATCH=32; YOLO_WORKERS=14; YOLO_WARM=15; YOLO_STEPS=28
    SEG_SIZE=520; SEG_TRAIN=768; SEG_VAL=8; SEG_BATCH=8; SEG_WORKERS=14; SEG_WARM=15; SEG_STEPS=30
    # fp32 in both loops (the script's choice), ResNet-50 at 224 px, batch 128: 10 turns of 20 steps each (~30 s)
    LOOP_ARGS=(--model resnet50 --image-size 224 --batch-size 128 --device cuda --segment 20 --segments 10)
    T_RN=150; T_JPEG=150; T_DET=180; T_YOLO=150; T_SEG=150; T_LOOP=150; T_COMPILE=300; T_CHECK=90
fi
SHAPES=$WORK/shapes
JPEG=$WORK/jpeg_photos
COMMON=(trainer.device=$DEVICE trainer.precision=$PREC logger.console.progress=false hydra.output_subdir=hydra)

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$OUT/runs.tsv"; }

# run NAME LIMIT_S CMD...: one step, under `timeout`, cut to the budget left; its output goes to logs/NAME.log
run() {
    local name=$1 limit=$2; shift 2
    if [[ " ${SKIP:-} " == *" $name "* ]]; then
        say "SKIP $name: named in SKIP"
        record "$name" skipped "$(elapsed)" 0 "SKIP"
        return 0
    fi
    local left=$(( BUDGET - $(elapsed) - 10 ))
    if [ "$left" -lt 30 ]; then
        say "SKIP $name: ${left}s of the ${BUDGET}s budget left"
        record "$name" skipped "$(elapsed)" 0 "budget"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local start; start=$(elapsed)
    local cmd="$*"
    say "RUN  $name (timeout ${limit}s): ${cmd//$'\n'/ }"
    timeout -k 10 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
    local rc=$? wall=$(( $(elapsed) - start ))
    local note=""; [ "$rc" = 124 ] || [ "$rc" = 137 ] && note="(timed out)"
    record "$name" "$rc" "$start" "$wall" "$note"
    if [ "$rc" = 0 ]; then
        say "done $name in ${wall}s: $(grep -E 'compute-bound|input-bound|num_workers=0:|^bare|^cvtrain fit step|^overhead' "$OUT/logs/$name.log" | tr '\n' ' ' | sed 's/  */ /g' | cut -c1-300)"
    else
        say "FAIL $name rc=$rc $note after ${wall}s; last lines of logs/$name.log:"
        tail -n 15 "$OUT/logs/$name.log" | cut -c1-400 | sed 's/^/    | /'
    fi
}

# bench NAME LIMIT_S OVERRIDES...: `cvtrain bench` into $OUT/NAME
bench() {
    local name=$1 limit=$2; shift 2
    local check=(); [ "$CHECK_CONFIGS" = 1 ] && check=(--cfg job)
    run "$name" "$limit" "$PY" -m cvtrain.cli bench "hydra.run.dir=$OUT/$name" "${COMMON[@]}" "$@" "${check[@]}"
}

# ---------------------------------------------------------------------------------------------- 0. install
if [ "$INSTALL" = 1 ]; then
    say "installing $(ls .devbench/whl | tr '\n' ' ')into $SITE"
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .devbench/whl/*.whl \
        > "$OUT/logs/install.log" 2>&1; then
        tail -n 5 "$OUT/logs/install.log"
        say "pip install failed: unpacking the wheels into $SITE instead (plain zips; these have no scripts)"
        for whl in .devbench/whl/*.whl; do "$PY" -m zipfile -e "$whl" "$SITE" >> "$OUT/logs/install.log" 2>&1; done
    fi
fi

# ---------------------------------------------------------------------------------------------- 1. environment
(
    set +e
    echo "== date: $(date -u +%FT%TZ)  host: $(hostname)  nproc: $(nproc)"
    free -g | head -2; df -h /tmp | tail -1
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi
        nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm --format=csv
    else
        echo "nvidia-smi: not found"
    fi
    "$PY" - <<'EOF'
import importlib, importlib.metadata as md, platform, sys
print("python", platform.python_version(), sys.executable)
try:
    import torch, torchvision
except ImportError as e:
    print("torch/torchvision: FAILED to import:", e)
    torch = None
else:
    print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
          "| torchvision", torchvision.__version__)
    print("cuda available:", torch.cuda.is_available())
if torch is not None and torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0),
          "bf16", torch.cuda.is_bf16_supported(),
          f"memory {torch.cuda.get_device_properties(0).total_memory / 2**30:.1f} GiB")
for mod, dist in [("hydra", "hydra-core"), ("omegaconf", "omegaconf"), ("antlr4", "antlr4-python3-runtime"),
                  ("pycocotools.mask", "pycocotools"), ("faster_coco_eval", "faster-coco-eval"),
                  ("simplejpeg", "simplejpeg"), ("numpy", "numpy"), ("PIL", "pillow"), ("rich", "rich"),
                  ("yaml", "pyyaml"), ("scipy", "scipy"), ("matplotlib", "matplotlib"), ("cvtrain", "cvtrain")]:
    try:
        m = importlib.import_module(mod)
        try:
            v = md.version(dist)
        except md.PackageNotFoundError:
            v = "?"
        print(f"  import {mod:18s} ok  {dist} {v}  ({getattr(m, '__file__', '')})")
    except Exception as e:
        print(f"  import {mod:18s} FAILED: {type(e).__name__}: {e}")
# nvJPEG, for data.decode=device: one real photo decoded on the device
if torch is not None and torch.cuda.is_available():
    import glob
    from torchvision.io import decode_jpeg, read_file
    path = sorted(glob.glob(".devbench/photos/coco/*.jpg"))[0]
    try:
        img = decode_jpeg([read_file(path)], device="cuda")[0]
        print("nvjpeg: decode_jpeg(device='cuda') of", path, "->", tuple(img.shape), img.dtype, img.device)
    except Exception as e:
        print("nvjpeg: decode_jpeg(device='cuda') FAILED:", type(e).__name__, e)
EOF
    "$PY" -m cvtrain.cli --version
    echo "C compiler (torch.compile's Triton launcher needs one): $(command -v gcc || command -v cc || echo none)"
) > "$OUT/logs/env.log" 2>&1
grep -E "^python|^torch|^cuda available|^device:|FAILED|^nvjpeg|^cvtrain|^== |^C compiler" "$OUT/logs/env.log"
grep -A1 "^name, driver_version" "$OUT/logs/env.log"
GPU_MON=""
if [ "$DEVICE" = cuda ] && command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 1 \
        > "$OUT/gpu.csv" 2>/dev/null &
    GPU_MON=$!
fi
say "elapsed after install + environment"

# ---------------------------------------------------------------------------------------------- data, in the background
# The shapes scenes, written once into $SHAPES by cvtrain's own writers with the benches' parameters (data.seed=0),
# so the benches find them cached. Two processes (detection, segmentation), single-threaded each.
PREGEN='
import sys, time
kind, cache, size, train, val = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
t = time.perf_counter()
if kind == "detection":
    from cvtrain.data.shapes_detection import ensure_shapes_detection as ensure
else:
    from cvtrain.data.shapes_segmentation import ensure_shapes_segmentation as ensure
path = ensure(cache, image_size=size, train_images=train, val_images=val, seed=0)
print(f"{kind}: {train}+{val} scenes of {size} px in {time.perf_counter() - t:.1f}s: {path}")
'
PREGEN_PIDS=()
if [ "$CHECK_CONFIGS" != 1 ]; then
    "$PY" -c "$PREGEN" detection "$SHAPES" "$DET_SIZE" "$DET_TRAIN" "$DET_VAL" > "$OUT/logs/pregen_detection.log" 2>&1 &
    PREGEN_PIDS+=($!)
    "$PY" -c "$PREGEN" segmentation "$SHAPES" "$SEG_SIZE" "$SEG_TRAIN" "$SEG_VAL" > "$OUT/logs/pregen_segmentation.log" 2>&1 &
    PREGEN_PIDS+=($!)
fi

# The ImageFolder tree of real, full-size photos: 6 COCO (640x294 .. 640x480) and 2 VOC (500x375) JPEGs, hard-linked
# JPEG_PER_CLASS/8 times into each of JPEG_CLASSES class folders (the files stay in the page cache: this times
# decoding and augmentation, not the disk).
make_jpeg_tree() {
    rm -rf "$JPEG"
    mkdir -p "$JPEG/photos" "$JPEG/train/c000" "$JPEG/val/c000"
    cp .devbench/photos/coco/*.jpg .devbench/photos/voc/*.jpg "$JPEG/photos/"
    cp "$JPEG"/photos/*.jpg "$JPEG/val/c000/"
    local photos=("$JPEG"/photos/*.jpg) i c
    for (( i = 0; i < JPEG_PER_CLASS; i++ )); do
        local src=${photos[$(( i % ${#photos[@]} ))]}
        ln "$src" "$JPEG/train/c000/$(printf '%05d' "$i")_$(basename "$src")"
    done
    for (( c = 1; c < JPEG_CLASSES; c++ )); do
        cp -al "$JPEG/train/c000" "$JPEG/train/$(printf 'c%03d' "$c")"
    done
}
make_jpeg_tree
say "ImageFolder tree: $(find "$JPEG/train" -type f | wc -l) training files in $JPEG_CLASSES classes, $(du -sh "$JPEG" | cut -f1) on disk"

# What is run first is what no GPU run has measured yet: the loop by bench_loop.py's segments and the CUDA checks,
# FCN-ResNet50, the faster detection pipelines, then torch.compile (it may take the rest of the budget).
# SKIP="name ..." leaves steps out, e.g. the ResNet-50 figures of 2026-12-04:
# SKIP="rn50_synthetic rn50_jpeg_workers rn50_jpeg_device".
RN50=(model=resnet50 data.image_size=$RN_SIZE data.batch_size=$RN_BATCH trainer.channels_last=true)
SHAPES_DET=(data=shapes "data.cache_dir=$SHAPES" data.seed=0 data.scene_size=$DET_SIZE
    data.train_images=$DET_TRAIN data.val_images=$DET_VAL)

# ---------------------------------------------------------------------------------------------- 2. the loop's overhead and the CUDA checks
# (here, while the scenes are being written on two other cores: it uses the training process and 2 workers)
if [ "$CHECK_CONFIGS" != 1 ]; then
    run bench_loop "$T_LOOP" "$PY" scripts/bench_loop.py "${LOOP_ARGS[@]}"
    # What only a GPU shows, as checks: the CUDA tests (nvJPEG against the CPU decode, the metric on the device),
    # fp16 training through the GradScaler with `cvtrain eval` of its checkpoint, and a fit + evaluation of real
    # photos decoded by nvJPEG (data.decode=device). Run directories in $WORK (checkpoints stay there).
    FX=$WORK/fixtures
    mkdir -p "$FX/coco-sample" && ln -sfn "$REPO/.devbench/photos/coco" "$FX/coco-sample/images"
    ln -sfn "$REPO/.devbench/photos/imagenet-mini" "$FX/imagenet-mini"
    # (the files of every test that needs a GPU: nvJPEG, the metric on the device, and the training steps that
    # must not wait for the GPU; their CPU tests take seconds)
    run cuda_tests "$T_CHECK" env CVTRAIN_FIXTURES="$FX" "$PY" -m pytest -q -p no:cacheprovider -rs \
        tests/data/decoding/test_device_decode.py tests/metrics/test_segmentation_metrics.py \
        tests/engine/test_loop.py tests/tasks/test_inputs.py tests/tasks/test_segmentation_task.py \
        tests/models/yolo/test_yolo_inputs.py
    CHECKS=$WORK/checks
    run fit_fp16 "$T_CHECK" "$PY" -m cvtrain.cli fit model=resnet18 data=synthetic data.image_size=64 \
        data.batch_size=64 data.length=$FP16_LEN trainer.epochs=2 trainer.device=$DEVICE trainer.precision=$HALF \
        logger.console.progress=false "hydra.run.dir=$CHECKS/fit_fp16"
    run eval_fp16 "$T_CHECK" "$PY" -m cvtrain.cli eval "ckpt=$CHECKS/fit_fp16/checkpoints/last.ckpt" \
        logger.console.progress=false "hydra.run.dir=$CHECKS/eval_fp16"
    run fit_nvjpeg "$T_CHECK" "$PY" -m cvtrain.cli fit model=resnet18 data=imagefolder \
        "data.root=$FX/imagenet-mini" data.decode=device data.batch_size=6 data.num_workers=2 aug=imagenet \
        trainer.epochs=2 trainer.device=$DEVICE trainer.precision=bf16 logger.console.progress=false \
        "hydra.run.dir=$CHECKS/fit_nvjpeg"
    for r in fit_fp16 eval_fp16 fit_nvjpeg; do
        mkdir -p "$OUT/checks/$r" && cp "$CHECKS/$r"/{results.json,cvtrain.log} "$OUT/checks/$r/" 2>/dev/null
    done
    wait "${PREGEN_PIDS[@]}"
    tail -q -n 2 "$OUT/logs/pregen_detection.log" "$OUT/logs/pregen_segmentation.log" | sed 's/^/    /'
    say "scenes written"
fi

# ---------------------------------------------------------------------------------------------- 3. FCN-ResNet50, 520 px
bench fcn_r50 "$T_SEG" model=fcn model.backbone=resnet50 data=shapes "data.cache_dir=$SHAPES" data.seed=0 \
    data.scene_size=$SEG_SIZE data.train_images=$SEG_TRAIN data.val_images=$SEG_VAL aug=segmentation \
    data.batch_size=$SEG_BATCH data.num_workers=$SEG_WORKERS bench.warmup=$SEG_WARM bench.steps=$SEG_STEPS

# ---------------------------------------------------------------------------------------------- 4. YOLO-s, 640 px
# aug=yolo with mosaic throughout: close_mosaic=0 and many epochs (bench keeps counting epochs past
# trainer.epochs, and mosaic is off in the last close_mosaic of them); the README's recipe: AdamW + EMA.
bench yolo_s "$T_YOLO" model=yolo model.size=s "${SHAPES_DET[@]}" aug=yolo aug.close_mosaic=0 trainer.epochs=300 \
    optim=adamw trainer.ema=true data.batch_size=$YOLO_BATCH data.num_workers=$YOLO_WORKERS \
    bench.warmup=$YOLO_WARM bench.steps=$YOLO_STEPS

# ---------------------------------------------------------------------------------------------- 5. Faster R-CNN R50-FPN
bench faster_rcnn "$T_DET" model=faster_rcnn model.backbone=resnet50_fpn "${SHAPES_DET[@]}" aug=detection \
    data.batch_size=$DET_BATCH data.num_workers=$DET_WORKERS bench.warmup=$DET_WARM bench.steps=$DET_STEPS \
    "${DET_EXTRA[@]}"

# ---------------------------------------------------------------------------------------------- 6. ResNet-50, synthetic, + torch.compile
if [ "$COMPILE" = 1 ] && [ $(( BUDGET - $(elapsed) )) -ge 120 ]; then
    bench rn50_synthetic_compile "$T_COMPILE" "${RN50[@]}" data=synthetic data.num_classes=1000 \
        "data.length=$(( RN_BATCH * 64 ))" trainer.compile=true bench.warmup=$RN_WARM bench.steps=$RN_STEPS
else
    say "SKIP rn50_synthetic_compile: COMPILE=$COMPILE, $(( BUDGET - $(elapsed) ))s of the budget left (it needs 120)"
    record rn50_synthetic_compile skipped "$(elapsed)" 0 "budget or COMPILE=0"
fi

# ---------------------------------------------------------------------------------------------- 7. ResNet-50, synthetic
bench rn50_synthetic "$T_RN" "${RN50[@]}" data=synthetic data.num_classes=1000 \
    "data.length=$(( RN_BATCH * 64 ))" bench.warmup=$RN_WARM bench.steps=$RN_STEPS

# ---------------------------------------------------------------------------------------------- 8. ResNet-50, real JPEGs
JPEG_ARGS=(model=resnet50 data=imagefolder "data.root=$JPEG" aug=imagenet data.image_size=$RN_SIZE
    data.batch_size=$JPEG_BATCH data.num_workers=$JPEG_WORKERS trainer.channels_last=true
    bench.warmup=$JPEG_WARM bench.steps=$JPEG_STEPS)
# data.decode (workers | device) is new: check that this checkout has it before relying on it
if "$PY" -m cvtrain.cli bench "${JPEG_ARGS[@]}" data.decode=device --cfg job > "$OUT/logs/decode_option.log" 2>&1; then
    bench rn50_jpeg_workers "$T_JPEG" "${JPEG_ARGS[@]}" data.decode=workers
    bench rn50_jpeg_device "$T_JPEG" "${JPEG_ARGS[@]}" data.decode=device
else
    say "this checkout has no data.decode option ($(grep -m1 -iE 'error|could not|valid' "$OUT/logs/decode_option.log" | cut -c1-200)): decoding in the workers only"
    bench rn50_jpeg_workers "$T_JPEG" "${JPEG_ARGS[@]}"
    record rn50_jpeg_device skipped "$(elapsed)" 0 "no data.decode option in this checkout"
fi

# ---------------------------------------------------------------------------------------------- summary
[ -n "$GPU_MON" ] && kill "$GPU_MON" 2>/dev/null
"$PY" - "$OUT" "$T0" <<'EOF' | tee "$OUT/summary.txt"
import csv, json, re, statistics, sys
from datetime import datetime
from pathlib import Path

out, t0 = Path(sys.argv[1]), int(sys.argv[2])
rows, summary = list(csv.DictReader(open(out / "runs.tsv"), delimiter="\t")), {}
gpu = []  # (epoch seconds, utilisation %, memory MiB) from nvidia-smi, one a second
if (out / "gpu.csv").is_file():
    for line in (out / "gpu.csv").read_text().splitlines()[1:]:
        f = [x.strip() for x in line.split(",")]
        try:
            ts = datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            gpu.append((ts, int(f[1].split()[0]), int(f[2].split()[0])))
        except (IndexError, ValueError):
            pass
print(f"{'run':23s} {'rc':>7s} {'wall':>4s} {'data img/s':>10s} {'step img/s':>10s} {'compute':>8s} {'wait':>4s}"
      f" {'gpu%':>4s} {'peakMiB':>7s}  what")
for r in rows:
    name, bench = r["name"], out / r["name"] / "bench.json"
    entry = {"rc": r["rc"], "wall_s": int(r["wall_s"]), "note": r["note"]}
    begin = t0 + int(r["start_s"])
    during = [(u, m) for ts, u, m in gpu if begin <= ts <= begin + int(r["wall_s"])]
    if during:  # the median utilisation over the run, set-up included; its peak memory
        entry["gpu_util_median"] = statistics.median(u for u, _ in during)
        entry["gpu_mem_peak_mib"] = max(m for _, m in during)
    g = (f"{entry['gpu_util_median']:4.0f} {entry['gpu_mem_peak_mib']:7d}" if during else f"{'':4s} {'':7s}")
    line = f"{name:23s} {r['rc']:>7s} {r['wall_s']:>4s} "
    if bench.is_file():
        b = json.loads(bench.read_text())
        entry.update(b)
        what = f"{b['model']} {b['data']} b{b['batch_size']} w{b['num_workers']} {b['device']} {b['autocast']}"
        line += (f"{b['data_images_per_s']:10.1f} {b['step_images_per_s']:10.1f} {b['compute_images_per_s']:8.1f} "
                 f"{100 * b['data_wait_share']:3.0f}% {g}  {what}")
    elif name == "bench_loop" and (out / "logs/bench_loop.log").is_file():
        text = (out / "logs/bench_loop.log").read_text()
        got = dict(re.findall(r"^(bare PyTorch step|cvtrain fit step|overhead):\s+(.*)$", text, re.M))
        entry.update(got)
        line += f"{'':10s} {'':10s} {'':8s} {'':4s} {g}  " + "; ".join(f"{k}: {' '.join(v.split())}" for k, v in got.items())
    else:
        line += r["note"]
    print(line)
    summary[name] = entry
tests = out / "logs" / "cuda_tests.log"
if tests.is_file() and tests.read_text().strip():
    print("cuda_tests:", tests.read_text().strip().splitlines()[-1])
for check in ("fit_fp16", "eval_fp16", "fit_nvjpeg"):
    results = out / "checks" / check / "results.json"
    if results.is_file():
        r = json.loads(results.read_text())
        print(f"{check}: status {r.get('status')}, top1_err {r.get('top1_err')}, loss {r.get('loss')}")
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print("data img/s: the input pipeline alone (to the device); step: the whole training step; compute: the step less its"
      " wait for data; wait: the step's share spent waiting for data; gpu%: median utilisation over the run, start-up"
      " included. Reference: NVIDIA's published ResNet-50 AMP training, 2,470 img/s on one A100.")
EOF
say "all done (budget ${BUDGET}s)"
