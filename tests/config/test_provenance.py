"""Where a recipe value came from: the command line beats an experiment, which beats the model's recipe."""

from __future__ import annotations

from omegaconf import OmegaConf

from cvtrain.config.provenance import ConfigFile, Provenance, config_file


def test_sources_in_order_of_precedence() -> None:
    experiment = ConfigFile(keys=("trainer.epochs", "data.batch_size"), groups=("sched",))
    model = ConfigFile(keys=("name",), groups=("optim", "sched", "aug", "trainer"))
    p = Provenance.of(["+optim.lr=0.5", "aug=light", "model=fcn"], experiment=experiment, model=model)
    assert p.source("optim.lr") == "command line"  # the key itself
    assert p.source("aug.name") == "command line"  # its group's option, chosen on the command line
    assert p.source("optim.momentum") == "model recipe"
    assert p.source("sched.name") == "experiment"  # the experiment overrides the model's schedule
    assert p.source("trainer.epochs") == "experiment"
    assert p.source("trainer.ema") == "model recipe"
    assert p.source("data.num_workers") == "default"
    # a value that follows another (aug.image_size follows data.image_size) takes the first key's group
    assert Provenance.of(["data=voc"], None, None).source("aug.image_size", "data.image_size") == "default"
    assert Provenance.of(["data.image_size=64"], None, None).source("aug.image_size", "data.image_size") == (
        "command line"
    )


def test_a_yaml_file_lists_its_keys_and_overridden_groups() -> None:
    class Override:
        override, group = True, "/optim"

    class Schema:
        override, group = False, "/schema/model/classifier"

    loaded = config_file(OmegaConf.create({"optim": {"lr": 0.1}, "name": "m"}), [Override(), Schema()])
    assert loaded == ConfigFile(keys=("optim.lr", "name"), groups=("optim",))
