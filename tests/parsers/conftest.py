import pytest


@pytest.fixture(scope="session")
def parser():
    """The spaCy rule parser with the installed English model, loaded once per test session."""
    pytest.importorskip("spacy")
    from parsers import SceneGraphParser

    try:
        return SceneGraphParser()
    except OSError as e:
        pytest.skip(f"no spaCy English model: {e}")
