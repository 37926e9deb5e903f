"""The data schemas' defaults that follow the machine: loader processes never outnumber the cores."""

from __future__ import annotations

import os

import pytest

from tests.conftest import compose_config


@pytest.mark.parametrize(("cores", "imagenet", "others"), [(2, 2, 2), (6, 6, 4), (32, 8, 4)])
def test_the_default_workers_are_at_most_the_cores_the_run_may_use(
    monkeypatch: pytest.MonkeyPatch, cores: int, imagenet: int, others: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert compose_config("data=imagenet", "data.root=/data").data.num_workers == imagenet
    assert compose_config("data=voc", "data.root=/data").data.num_workers == others


def test_workers_given_on_the_command_line_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert compose_config("data=imagenet", "data.root=/data", "data.num_workers=6").data.num_workers == 6
