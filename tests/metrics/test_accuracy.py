import pytest
import torch

from cvtrain.contracts.batch import Batch
from cvtrain.metrics.accuracy import AccuracyEvaluator, topk_correct


def _batch(labels: list[int]) -> Batch:
    return Batch(images=torch.empty(len(labels)), targets=torch.tensor(labels), meta=[{}] * len(labels))


def test_topk_on_a_hand_computed_case() -> None:
    scores = torch.tensor(
        [
            [0.10, 0.20, 0.30, 0.15, 0.05, 0.20],  # label 2: rank 1
            [0.30, 0.25, 0.20, 0.10, 0.10, 0.05],  # label 3: rank 4 (tie-free)
            [0.05, 0.10, 0.15, 0.20, 0.22, 0.28],  # label 0: rank 6
        ]
    )
    labels = torch.tensor([2, 3, 0])
    assert topk_correct(scores, labels, (1, 5)).tolist() == [1, 2]


def test_evaluator_metrics_and_merge_equal_a_single_pass() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(40, 7, generator=g).softmax(1)
    labels = torch.randint(7, (40,), generator=g)
    whole = AccuracyEvaluator()
    whole.update(_batch(labels.tolist()), probs)
    a, b = AccuracyEvaluator(), AccuracyEvaluator()
    a.update(_batch(labels[:15].tolist()), probs[:15])
    b.update(_batch(labels[15:].tolist()), probs[15:])
    a.merge(b)
    expected_top1 = (probs.argmax(1) == labels).float().mean().item()
    expected_top5 = (probs.topk(5, 1).indices == labels[:, None]).any(1).float().mean().item()
    expected_loss = torch.nn.functional.nll_loss(probs.log(), labels).item()
    for metrics in (whole.compute(), a.compute()):
        assert metrics["top1_acc"] == pytest.approx(expected_top1)
        assert metrics["top5_acc"] == pytest.approx(expected_top5)
        assert metrics["top1_err"] == pytest.approx(1 - expected_top1)
        assert metrics["top5_err"] == pytest.approx(1 - expected_top5)
        assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_fewer_than_five_classes_top5_is_over_all_classes() -> None:
    ev = AccuracyEvaluator()
    ev.update(_batch([0, 1, 2]), torch.tensor([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.3, 0.4, 0.3]]))
    m = ev.compute()
    assert m["top5_acc"] == 1.0 and m["top5_err"] == 0.0 and m["top1_acc"] == pytest.approx(0.0)


def test_reset_clears_state() -> None:
    ev = AccuracyEvaluator()
    ev.update(_batch([0]), torch.tensor([[0.9, 0.1]]))
    ev.reset()
    ev.update(_batch([1]), torch.tensor([[0.9, 0.1]]))
    assert ev.compute()["top1_acc"] == 0.0


def test_confusion_matrix_counts_top1_per_true_class_and_merges() -> None:
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    a, b = (
        AccuracyEvaluator(class_names=["cat", "dog", "owl"]),
        AccuracyEvaluator(class_names=["cat", "dog", "owl"]),
    )
    a.update(_batch([0, 1]), probs[:2])
    b.update(_batch([1, 2]), probs[2:])
    a.merge(b)
    data = a.plot_data().confusion
    assert data is not None and data.names == ["cat", "dog", "owl"]
    assert data.counts.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]  # the second dog was taken for a cat
    assert AccuracyEvaluator().plot_data().confusion is None  # nothing evaluated yet
