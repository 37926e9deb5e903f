"""The top-level `cvtrain --help`: the subcommands, every config group and option (from `conf/`), and examples."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text

from cvtrain.config import GROUPS
from cvtrain.config.compose import CONF_DIR
from cvtrain.engine.reporting import console


def _describe(yaml_file: Path) -> str:
    """The first comment line of an option's YAML (Hydra's `# @package` header skipped)."""
    for line in yaml_file.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
        if not line.startswith("#"):
            break
    return ""


def print_help(subcommands: dict[str, str]) -> None:
    console.print(
        Text.assemble(
            ("cvtrain", "bold"), ": train and evaluate image classifiers, segmenters and detectors.\n"
        )
    )
    console.print(
        f"usage: cvtrain {{{','.join(subcommands)}}} [group=option ...] [key=value ...] [-m] [--cfg job]\n"
        "       cvtrain --version\n"
    )
    commands = Table(title="commands", show_header=False, box=None)
    for name, text in subcommands.items():
        commands.add_row(Text(name, style="bold"), text)
    console.print(commands)
    groups = Table(title="config groups (group=option)", show_header=True, header_style="bold")
    groups.add_column("group")
    groups.add_column("option")
    groups.add_column("what it is")
    for group in (*GROUPS, "experiment"):
        label = "+experiment" if group == "experiment" else group  # experiments are added, not swapped
        for i, f in enumerate(sorted(Path(CONF_DIR, group).glob("*.yaml"))):
            groups.add_row(label if i == 0 else "", f.stem, _describe(f))
    console.print(groups)
    console.print(
        "\nExamples:\n  cvtrain fit model=resnet50 data=imagenet data.root=/data/imagenet optim.lr=0.2\n"
        "  cvtrain eval ckpt=outputs/fit/DATE/TIME/checkpoints/last.ckpt\n"
        "  cvtrain export ckpt=outputs/fit/DATE/TIME/checkpoints/last.ckpt format=onnx\n"
        "  cvtrain fit -m optim.lr=0.1,0.01 model=resnet18,alexnet\n"
        "  cvtrain fit --cfg job        # print the composed config\n"
        "  cvtrain fit --help           # Hydra's help: every key of the composed config"
    )
