"""The scene-graph parser registry: ``parsers.registry.PARSERS`` / ``build_parser``, light to import,
found by the catalogue through the ``graphmatch.plugins`` entry point."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_registry_loads_neither_spacy_nor_the_parser():
    code = ("import sys\n"
            "from parsers.registry import PARSERS\n"
            "import parsers\n"
            "assert parsers.PARSERS is PARSERS and PARSERS.names() == ['spacy_rules'], PARSERS\n"
            "assert PARSERS.options('spacy_rules').__name__ == 'RulesParserOptions'\n"
            "bad = [m for m in ('spacy', 'parsers.parser', 'parsers.rules') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_the_catalogue_finds_the_parsers_through_the_entry_point():
    """The core never imports ``parsers`` by name; its catalogue reaches the registry through the
    ``graphmatch.plugins`` entry point (what ``graphmatch list`` prints)."""
    code = ("import sys\n"
            "from graphmatch.catalog import registry\n"
            "reg = registry('parsers')\n"
            "assert reg.kind == 'scene-graph parser' and 'spacy_rules' in reg, reg\n"
            "assert 'spacy' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_build_parser_checks_its_options():
    from parsers.registry import PARSERS, build_parser

    with pytest.raises(ValueError, match="has no option 'batchsize' .*did you mean 'batch_size'"):
        build_parser("spacy_rules", batchsize=4)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        build_parser("spacy_rules", batch_size=0)
    with pytest.raises(KeyError, match="unknown scene-graph parser 'spacy_rule'.*Did you mean 'spacy_rules'"):
        build_parser("spacy_rule")

    made = []

    @PARSERS.register("test_echo_parser")
    def echo(*, lowercase: bool = True):
        made.append(lowercase)
        return "parser"

    try:
        assert build_parser("test_echo_parser", lowercase=False) == "parser" and made == [False]
        assert build_parser("test_echo_parser", lowercase=None) == "parser" and made == [False, True]
    finally:
        PARSERS._items.pop("test_echo_parser")
        PARSERS._configs.pop("test_echo_parser")


def test_build_parser_builds_the_rule_parser():
    pytest.importorskip("spacy")
    from parsers.parser import SceneGraphParser, make_parser
    from parsers.registry import build_parser

    p = build_parser("spacy_rules", batch_size=8)
    assert isinstance(p, SceneGraphParser) and p.batch_size == 8 and p.name == "spacy_rules"
    assert make_parser(batch_size=8).version == p.version
    with pytest.raises(RuntimeError, match="No spaCy English model could be loaded"):
        make_parser("no_such_model_package")
