"""The README and the manual in docs/: every relative link resolves, and every `cvtrain ...` command they show
composes (existing groups, options and keys), as the early override check would judge it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cvtrain.cli import SUBCOMMANDS
from cvtrain.config import register_schemas
from cvtrain.overrides import check_overrides

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE = re.compile(r"`(cvtrain [^`]+)`")
# Placeholders the docs write for a user's own value, with a value of the right type to compose.
PLACEHOLDERS = {"N": "2", "K": "2", "E": "2", "M": "2", "P": "0.1", "EPS": "0.1", "ALPHA": "0.2"}


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    body = FENCE.sub("", page.read_text())
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", body, re.M)}


def _links() -> list[tuple[Path, str]]:
    return [(page, target) for page in PAGES for target in LINK.findall(FENCE.sub("", page.read_text()))]


@pytest.mark.parametrize(("page", "target"), _links(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_relative_links_resolve(page: Path, target: str):
    if re.match(r"[a-z]+:", target):
        return  # an absolute URL: not checked here (no network)
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    assert resolved.exists(), f"{page.name}: link {target!r} points at a missing file"
    if anchor and resolved.suffix == ".md":
        assert anchor in _anchors(resolved), (
            f"{page.name}: link {target!r}: no such heading in {resolved.name}"
        )


def _commands() -> list[tuple[str, str, bool]]:
    """(page, command line, shown failing) for every `cvtrain ...` in a code block (joined over `\\` continuations)
    or inline. A command is shown failing where the block's next line is its error (`cvtrain fit: ...`) or its
    comment says `exit 2`, and so is every other mention of the same command."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for block in FENCE.findall(text):
            lines = [line.strip().removeprefix("$ ") for line in block.replace("\\\n", " ").splitlines()]
            for line, after in zip(lines, [*lines[1:], ""], strict=True):
                line = re.sub(r"^(time )?(PYTHONPATH=\S+ )?(\S*/)?(?=cvtrain )", "", line)
                if line.startswith("cvtrain "):
                    command, _, comment = (part.strip() for part in line.partition(" #"))
                    failing = bool(re.match(r"cvtrain [a-z ]+: ", after)) or "exit 2" in comment
                    found.append((page.name, command, failing))
        found += [(page.name, c, False) for c in INLINE.findall(FENCE.sub("", text))]
    shown_failing = {command for _, command, failing in found if failing}  # the same command shown elsewhere
    return [(page, command, command in shown_failing) for page, command, _ in found]


def _arguments(command: str) -> tuple[str, list[str]] | None:
    """The subcommand and its overrides, placeholders given a value; None for what is not a runnable command."""
    words = shlex.split(command.replace("...", " "))[1:]
    if not words or words[0].startswith("-") or "--config-dir" in words:
        return None  # `cvtrain --help`, `cvtrain --version`, a user's own config folder
    if words[:2] == ["data", "check"]:
        words = ["data_check", *words[2:]]
    if words[0].replace("_", " ") not in SUBCOMMANDS:
        return None
    args = []
    for word in words[1:]:
        # `[key=value]`: an optional argument of a usage line (`logger=[tensorboard,csv]` is a list value)
        if word.startswith("[") and word.endswith("]"):
            word = word[1:-1]
        key, eq, value = word.partition("=")
        if value.startswith("<") or not value:
            continue  # `model=<name>`, `data.root=...`: the user's own choice
        args.append(f"{key}={PLACEHOLDERS.get(value, value)}" if eq else word)
    return words[0], args


@pytest.mark.parametrize(("page", "command", "shown_failing"), _commands())
def test_documented_commands_compose(page: str, command: str, shown_failing: bool):
    parsed = _arguments(command)
    if parsed is None:
        return
    subcommand, args = parsed
    register_schemas()
    problem = check_overrides(args, subcommand)
    if shown_failing:
        assert problem is not None, f"{page}: {command} is shown failing but composes"
    else:
        assert problem is None, f"{page}: {command}: {problem}"
