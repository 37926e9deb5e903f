"""The peer for classification: the plain torchvision script a user would write instead of cvtrain.

torchvision's ImageFolder, the reference transforms (RandomResizedCrop + flip; Resize(size / 0.875) + CenterCrop),
a torchvision classifier from scratch, SGD with momentum, per-step cosine decay after a linear warm-up, label
smoothing, a plain loop. No cvtrain import. The defaults are conf/experiment/imagenette.yaml's settings, so

    python scripts/peers/imagenette_torchvision.py data/imagenette

trains what `cvtrain fit +experiment=imagenette data.root=data/imagenette` trains. Prints top-1 per epoch,
training images/s and the wall time to the end.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets import ImageFolder

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="Imagenette: root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-5)
    parser.add_argument("--warmup-epochs", type=float, default=0.5)
    parser.add_argument("--warmup-factor", type=float, default=0.001)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default="last.pth", help="the weights after each epoch (as cvtrain keeps last.ckpt)"
    )
    return parser.parse_args()


def loaders(args: argparse.Namespace) -> tuple[DataLoader, DataLoader]:
    normalize = T.Normalize(MEAN, STD)
    train_tf = T.Compose(
        [T.RandomResizedCrop(args.image_size), T.RandomHorizontalFlip(), T.ToTensor(), normalize]
    )
    val_tf = T.Compose(
        [T.Resize(round(args.image_size / 0.875)), T.CenterCrop(args.image_size), T.ToTensor(), normalize]
    )
    train = ImageFolder(f"{args.root}/train", train_tf)
    val = ImageFolder(f"{args.root}/val", val_tf)
    common = {
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "persistent_workers": args.workers > 0,
    }
    return DataLoader(train, shuffle=True, drop_last=True, **common), DataLoader(val, **common)


def cosine_with_warmup(steps_per_epoch: int, args: argparse.Namespace):
    total, warmup = args.epochs * steps_per_epoch, round(args.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        decay = 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))
        if step < warmup:
            alpha = step / warmup
            decay *= args.warmup_factor * (1 - alpha) + alpha
        return decay

    return factor


@torch.inference_mode()
def top1(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = seen = 0
    for images, targets in loader:
        correct += (model(images).argmax(1) == targets).sum().item()
        seen += len(targets)
    model.train()
    return correct / seen


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train_loader, val_loader = loaders(args)
    model = getattr(torchvision.models, args.arch)(num_classes=len(train_loader.dataset.classes))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(len(train_loader), args))
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    model.train()
    for epoch in range(args.epochs):
        epoch_start, seen = time.perf_counter(), 0
        for images, targets in train_loader:
            loss = criterion(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(targets)
        trained = time.perf_counter() - epoch_start
        accuracy = top1(model, val_loader)
        print(
            f"epoch {epoch + 1}: top1={accuracy:.4f} train {seen / trained:.1f} img/s ({trained:.0f} s), "
            f"epoch with eval {time.perf_counter() - epoch_start:.0f} s",
            flush=True,
        )
        torch.save(model.state_dict(), args.out)
    print(f"wall time {time.perf_counter() - start:.0f} s, final top1={accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
