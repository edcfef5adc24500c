"""conf/ is the source of truth: params.yaml must be exactly its composition, and every
config-group choice must compose."""

from pathlib import Path

import pytest

from churnml.params import compose, compose_text
from churnml.features.label_times import label_spec, split_spec

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def test_params_yaml_is_what_conf_composes_to():
    assert (ROOT / "params.yaml").read_text() == compose_text(CONF), (
        "params.yaml is out of date with conf/: run `make params` (never edit params.yaml by hand)"
    )


@pytest.mark.parametrize("choice", sorted(p.stem for p in (CONF / "labels").glob("*.yaml")))
def test_every_label_definition_composes(choice):
    cfg = compose(CONF, [f"labels={choice}"])
    spec = label_spec(cfg["labels"])
    assert spec.definition == choice
    assert spec.horizon_days > 0 and split_spec(cfg["labels"]).test_cutoffs >= 1


def test_overrides_reach_the_composed_params():
    cfg = compose(CONF, ["model.max_depth=4", "labels=inactivity"])
    assert cfg["model"]["max_depth"] == 4 and cfg["labels"]["definition"] == "inactivity"


def test_no_secrets_in_config():
    text = "\n".join(p.read_text() for p in CONF.rglob("*.yaml")).lower()
    for word in ("password", "secret", "token", "api_key"):
        assert word not in text
