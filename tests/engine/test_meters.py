"""The loop's meters: the data-wait share of an epoch and the loss means, on a fake clock (no timing asserts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from cvtrain.engine import meters
from cvtrain.engine.meters import DataWait, LossMeter, rate_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_data_wait_is_the_time_blocked_in_next_over_the_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(meters.time, "perf_counter", clock)

    def loader() -> Iterator[int]:
        clock.now += 5.0  # worker start-up: the first step waits for it
        for i in range(4):
            clock.now += 1.0  # loading a batch
            yield i

    waits = DataWait(loader())
    assert waits.share() == 0.0  # nothing iterated yet
    for _ in waits:
        clock.now += 3.0  # the step itself
    assert waits.waited == 9.0 and waits.elapsed() == 21.0
    assert waits.share() == pytest.approx(9 / 21)


def test_loss_meter_means_and_finiteness() -> None:
    meter = LossMeter()
    meter.add({"loss": torch.tensor(1.0), "cls": torch.tensor(0.5)}, images=4)
    meter.add({"loss": torch.tensor(3.0), "cls": torch.tensor(1.5)}, images=4)
    assert meter.all_finite()
    means, rate = meter.flush()
    assert means == {"loss": 2.0, "cls": 1.0} and rate > 0
    meter.add({"loss": torch.tensor(float("nan"))}, images=4)
    assert not meter.all_finite()


@pytest.mark.parametrize(
    ("rate", "text"),
    [(0.4234, "0.42 img/s"), (0.0081, "0.0081 img/s"), (3.46, "3.5 img/s"), (152.4, "152 img/s")],
)
def test_a_detectors_fraction_of_an_image_per_second_is_not_logged_as_zero(rate: float, text: str) -> None:
    assert rate_text(rate) == text
