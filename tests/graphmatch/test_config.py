from pathlib import Path

import pytest

from graphmatch.config import ConfigError, ExperimentConfig, load_config, parse_override

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "experiments" / "configs").glob("*.yaml")) + sorted((REPO / "graphmatch" / "configs").glob("*.yaml"))


def write(tmp_path, text, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_are_typed():
    cfg = load_config()
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.model.matcher.name == "scan" and cfg.train.lr == pytest.approx(2e-4)


def test_yaml_file_and_overrides(tmp_path):
    p = write(tmp_path, "train:\n  lr: 1e-3\n  epochs: 3\nmodel:\n  embed_dim: 64\n")
    cfg = load_config(p, ["train.lr=2.5e-4", "model.matcher.agg=mean", "train.lr_decay_epochs=[1, 2]",
                          "data.vocab=null"])
    assert cfg.train.lr == pytest.approx(2.5e-4)
    assert isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 3 and cfg.model.embed_dim == 64
    assert cfg.model.matcher.agg == "mean" and cfg.train.lr_decay_epochs == [1, 2]
    assert cfg.data.vocab is None


def test_int_accepted_for_float(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  lr: 1\n"))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize("text,needle", [
    ("train:\n  lrr: 0.1\n", "unknown key 'train.lrr'"),
    ("train:\n  epochs: ten\n", "'train.epochs' must be int"),
    ("model:\n  embed_dim: 1.5\n", "'model.embed_dim' must be int"),
    ("train:\n  loss:\n    max_violation: 1\n", "'train.loss.max_violation' must be bool"),
    ("train:\n  max_violation: 1\n", "'train.loss.max_violation' must be bool"),  # a version-1 key
    ("model: 3\n", "'model' must be a mapping"),
    ("bogus: 1\n", "unknown key 'bogus'"),
])
def test_file_errors_name_key_and_file(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_unknown_key_suggests_close_name(tmp_path):
    with pytest.raises(ConfigError, match="did you mean lr"):
        load_config(write(tmp_path, "train:\n  lrr: 0.1\n"))


def test_override_errors_name_the_override():
    with pytest.raises(ConfigError, match=r"--set train.epochs=abc: 'train.epochs' must be int"):
        load_config(None, ["train.epochs=abc"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config(None, ["name.sub=1"])


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "train: [1,\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_parse_override_values():
    assert parse_override("a.b=1.5e-4") == (["a", "b"], 1.5e-4)
    assert parse_override("a.b=1e-4") == (["a", "b"], "1e-4")  # YAML 1.1; a float field accepts it
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=hello") == (["a"], "hello")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.name == path.stem


def test_text_fields_keep_numeric_looking_values(tmp_path):
    cfg = load_config(write(tmp_path, 'name: "1.0"\ntrain:\n  lr: 1e-4\n'), ["output_dir=1.5", "data.root=2e3"])
    assert cfg.name == "1.0" and cfg.output_dir == "1.5" and cfg.data.root == "2e3"
    assert cfg.train.lr == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="'train.lr' must be float"):
        load_config(None, ["train.lr=fast"])


@pytest.mark.parametrize("override,needle", [
    ("train.loss.margin=-1", "'train.loss.margin' must be >= 0"),
    ("train.margin=-1", "'train.loss.margin' must be >= 0"),
    ("train.epochs=-3", "'train.epochs' must be >= 0"),
    ("train.checkpoint_every=-5", "'train.checkpoint_every' must be >= 0"),
    ("model.embed_dim=0", "'model.embed_dim' must be >= 1"),
    ("train.lr=-1e-3", "'train.lr' must be > 0"),
    ("train.lr=0", "'train.lr' must be > 0"),
    ("train.lr=.nan", "'train.lr' must be a finite number"),
    ("train.num_workers=-1", "'train.num_workers' must be >= 0"),
    ("train.batch_size=1", "'train.batch_size' must be >= 2"),
    ("eval.batch_size=0", "'eval.batch_size' must be >= 1"),
    ("data.max_val_images=0", "'data.max_val_images' must be >= 1"),
    ("model.text.dropout=1.0", "'model.text.dropout' must be >= 0 and < 1"),
    ("train.lr_decay_epochs=[5, -1]", "'train.lr_decay_epochs[1]' must be >= 0"),
    ("train.loss.reduction=avg", "'train.loss.reduction' must be one of sum, mean"),
    ("model.matcher.direction=up", "'model.matcher.direction' must be one of t2i, i2t, both"),
    ("model.matcher.t2i_lambda_lse=0", "'model.matcher.t2i_lambda_lse' must be > 0"),
    ("model.text.dropout=1.0", "'model.text.dropout' must be >= 0 and < 1"),
])
def test_out_of_range_values_name_key_and_override(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert str(e.value).startswith(f"--set {override}: {needle}"), str(e.value)


def test_out_of_range_value_in_file_names_the_file(tmp_path):
    p = write(tmp_path, "train:\n  loss:\n    margin: -1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, ["train.epochs=2"])  # the file is checked before the overrides
    assert str(e.value).startswith(f"{p}: 'train.loss.margin' must be >= 0"), str(e.value)
    assert "got -1" in str(e.value)


def test_boundary_values_are_allowed():
    cfg = load_config(None, ["train.loss.margin=0", "train.epochs=0", "train.checkpoint_every=0", "train.grad_clip=0",
                             "train.num_workers=0", "data.max_val_images=1", "train.max_minutes=null",
                             "data.max_val_images=null", "model.text.dropout=0.0"])
    assert cfg.train.loss.margin == 0.0 and cfg.train.epochs == 0 and cfg.data.max_val_images is None


def test_cli_train_rejects_out_of_range_value_before_any_work(tmp_path, capsys):
    from graphmatch.cli import main

    cfg = write(tmp_path, "{}\n")
    rc = main(["train", str(cfg), "--set", f"output_dir={tmp_path / 'run'}", "--set", "eval.batch_size=0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--set eval.batch_size=0: 'eval.batch_size' must be >= 1" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("margin", [-1.0, float("nan"), float("inf")])
def test_loss_refuses_a_margin_outside_the_config_range(margin):
    from graphmatch.losses import ContrastiveLoss

    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        ContrastiveLoss(margin=margin)


# ------------------------------------------------------------------ component sections

def test_component_keys_come_from_the_component(tmp_path):
    p = write(tmp_path, "model:\n  matcher:\n    name: scan\n    agg: mean\n  image: precomp_fc\n"
                        "train:\n  loss: {name: infonce, temperature: 0.1}\n")
    cfg = load_config(p)
    assert cfg.model.matcher.agg == "mean" and cfg.model.image.name == "precomp_fc"
    assert cfg.train.loss.name == "infonce" and cfg.train.loss.temperature == pytest.approx(0.1)
    assert cfg.to_dict()["train"]["loss"] == {"name": "infonce", "temperature": 0.1}
    assert cfg.model.matcher.kwargs()["agg"] == "mean"


@pytest.mark.parametrize("text,needle", [
    ("model:\n  matcher:\n    name: scan\n    iteration_step: 3\n",
     "unknown key 'model.matcher.iteration_step' for matcher 'scan'"),
    ("model:\n  matcher:\n    name: scan\n    ag: mean\n", "for matcher 'scan' (did you mean agg?)"),
    ("model:\n  matcher:\n    name: scam\n", "'model.matcher.name': unknown matcher 'scam'. Did you mean 'scan'?"),
    ("model:\n  matcher: 3\n", "'model.matcher' must be a name or a mapping"),
    ("train:\n  loss:\n    name: infonce\n    margin: 0.2\n", "unknown key 'train.loss.margin' for loss 'infonce'"),
    ("model:\n  text:\n    word_dim: many\n", "'model.text.word_dim' must be int"),
    ("data:\n  graph:\n    text_graph: sentences\n", "unknown text graph 'sentences'"),
])
def test_component_errors_name_key_and_file(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert needle in str(e.value) and str(p) in str(e.value), str(e.value)


def test_switching_a_component_by_override_takes_its_defaults():
    cfg = load_config(None, ["train.loss.name=infonce"])
    assert cfg.train.loss.temperature == pytest.approx(0.05)
    with pytest.raises(ConfigError, match=r"--set train.loss.temperature=0: 'train.loss.temperature' must be > 0"):
        load_config(None, ["train.loss.name=infonce", "train.loss.temperature=0"])


def test_config_round_trips_as_plain_data(tmp_path):
    import json

    from graphmatch.config import config_from_dict, save_config

    cfg = load_config(None, ["model.matcher.direction=both", "data.graph.visual_edges.name=knn",
                             "data.graph.visual_edges.k=3"])
    plain = json.loads(json.dumps(cfg.to_dict()))
    assert plain["data"]["graph"]["visual_edges"] == {"name": "knn", "k": 3}
    assert config_from_dict(plain) == cfg
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_version_1_layout_is_migrated(tmp_path):
    p = write(tmp_path, "data:\n  synthetic: true\ntrain:\n  margin: 0.1\n  loss_reduction: mean\n"
                        "  warmup_epochs: 2\n")
    cfg = load_config(p)
    assert cfg.data.name == "synthetic"
    assert (cfg.train.loss.margin, cfg.train.loss.reduction, cfg.train.loss.warmup_epochs) == (0.1, "mean", 2)


def test_imports_register_components_before_the_check(tmp_path):
    plugin = tmp_path / "my_loss.py"
    plugin.write_text(
        "from dataclasses import dataclass\n"
        "import torch\n"
        "from graphmatch.losses import LOSSES\n"
        "from graphmatch.options import option\n\n"
        "@dataclass\n"
        "class HingeOptions:\n"
        "    gap: float = option(0.5, lo=0)\n\n"
        "@LOSSES.register('config_test_hinge', config=HingeOptions)\n"
        "class Hinge(torch.nn.Module):\n"
        "    def __init__(self, *, gap=0.5):\n"
        "        super().__init__()\n"
        "        self.gap = gap\n")
    cfg_file = write(tmp_path, "imports: [my_loss.py]\ntrain:\n  loss: {name: config_test_hinge, gap: 0.3}\n")
    cfg = load_config(cfg_file)  # the relative file is found beside the config
    assert cfg.train.loss.gap == pytest.approx(0.3) and cfg.imports == [str(plugin.resolve())]
    with pytest.raises(ConfigError, match="unknown key 'train.loss.gapp' .*did you mean gap"):
        load_config(cfg_file, ["train.loss.gapp=1"])
    with pytest.raises(ConfigError, match="plug-in file not found: nope.py"):
        load_config(write(tmp_path, "imports: [nope.py]\n", "b.yaml"))
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\nraise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match=r"broken.py:2: RuntimeError: boom"):
        load_config(None, imports=[str(broken)])
