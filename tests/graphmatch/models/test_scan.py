import pytest
import torch

from graphmatch.config import ModelConfig
from graphmatch.data.vocab import Vocabulary
from graphmatch.encoders import BiGRUTextEncoder, PrecompRegionEncoder, load_word_vectors
from graphmatch.graphs import build_visual_graph, build_word_graph, collate_graphs
from graphmatch.models import SCAN, build_matcher
from graphmatch.nn.functional import scan_t2i


def tiny_scan(direction="t2i", agg="lse", img_dim=12, vocab_size=20, dim=16):
    torch.manual_seed(0)
    return SCAN(
        image_encoder=PrecompRegionEncoder(img_dim=img_dim, embed_dim=dim),
        text_encoder=BiGRUTextEncoder(vocab_size=vocab_size, word_dim=8, embed_dim=dim),
        direction=direction, agg=agg,
    )


def batches(n_img=3, n_cap=4, img_dim=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    imgs = [build_visual_graph(torch.rand(r, img_dim, generator=g), item=i) for i, r in enumerate([4, 2, 5][:n_img])]
    caps = [build_word_graph(torch.randint(2, 20, (n,), generator=g), item=c) for c, n in enumerate([3, 1, 6, 2][:n_cap])]
    return collate_graphs(imgs), collate_graphs(caps)


@pytest.mark.parametrize("direction", ["t2i", "i2t", "both"])
def test_scan_forward_shape_and_gradient(direction):
    model = tiny_scan(direction)
    imgs, caps = batches()
    sims = model(imgs, caps)
    assert sims.shape == (3, 4) and torch.isfinite(sims).all()
    sims.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.image_encoder.fc.weight.grad.abs().sum() > 0
    assert model.text_encoder.embed.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("direction", ["t2i", "i2t", "both"])
def test_scores_do_not_depend_on_batch_company(direction):
    """A pair scored alone equals the same pair scored inside a padded batch."""
    model = tiny_scan(direction).eval()
    imgs, caps = batches()
    with torch.no_grad():
        full = model(imgs, caps)
        for i in range(3):
            for c in range(4):
                single = model(collate_graphs([imgs.get_example(i)]), collate_graphs([caps.get_example(c)]))
                assert torch.allclose(single[0, 0], full[i, c], atol=1e-5)


def test_encoders_mask_and_normalise():
    enc = BiGRUTextEncoder(vocab_size=10, word_dim=4, embed_dim=6)
    out = enc(collate_graphs([build_word_graph([2, 3, 4]), build_word_graph([5])]))
    assert out.x.shape == (2, 3, 6) and out.mask.tolist() == [[True] * 3, [True, False, False]]
    assert torch.allclose(out.x[out.mask].norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.equal(out.x[1, 1:], torch.zeros(2, 6))
    with pytest.raises(ValueError, match="no words"):
        enc(collate_graphs([build_word_graph([2]), build_word_graph([])]))
    img = PrecompRegionEncoder(img_dim=5, embed_dim=3)
    with pytest.raises(ValueError, match="size 4, the encoder expects 5"):
        img(collate_graphs([build_visual_graph(torch.randn(2, 4))]))
    assert repr(img) == "PrecompRegionEncoder(5, 3, no_imgnorm=False)"


def test_model_score_matches_functional():
    model = tiny_scan().eval()
    imgs, caps = batches()
    with torch.no_grad():
        ie, ce = model.encode_images(imgs), model.encode_captions(caps)
        ref = scan_t2i(ie.x, ie.mask, ce.x, ce.mask, lambda_softmax=9.0, lambda_lse=6.0)
        assert torch.allclose(model(imgs, caps), ref)


def test_build_from_config_and_bad_options(tmp_path):
    vocab = Vocabulary.build(["a dog on a red mat", "two cats"])
    cfg = ModelConfig(embed_dim=8)
    cfg.text.word_dim = 4
    model = build_matcher(cfg, img_dim=6, vocab=vocab)
    assert isinstance(model, SCAN) and model.text_encoder.embed.num_embeddings == len(vocab)
    with pytest.raises(ValueError, match="direction"):
        tiny_scan(direction="sideways")
    with pytest.raises(ValueError, match="agg"):
        tiny_scan(agg="median")
    cfg.matcher.name = "scam"
    with pytest.raises(KeyError, match="Did you mean 'scan'"):
        build_matcher(cfg, img_dim=6, vocab=vocab)


def test_word_vectors_from_local_file(tmp_path):
    f = tmp_path / "vec.txt"
    f.write_text("dog 1 2 3 4\nmat 0.5 0.5 0.5 0.5\nzebra 9 9 9 9\n")
    vocab = Vocabulary.build(["a dog on a mat"])
    vecs, found = load_word_vectors(f, vocab.words, dim=4)
    assert found.sum() == 2
    assert vecs[vocab.words.index("dog")].tolist() == [1, 2, 3, 4]
    cfg = ModelConfig(embed_dim=8)
    cfg.text.word_dim = 4
    cfg.text.word_vectors = str(f)
    model = build_matcher(cfg, img_dim=6, vocab=vocab)
    assert model.text_encoder.embed.weight[vocab.words.index("mat")].tolist() == [0.5] * 4
    with pytest.raises(ValueError, match="vectors have 4 dimensions, expected 5"):
        load_word_vectors(f, vocab.words, dim=5)
    bad = tmp_path / "bad.txt"
    bad.write_text("dog 1 2 3\ncat 1 x 3\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: non-numeric"):
        load_word_vectors(bad, ["cat"])
    with pytest.raises(FileNotFoundError):
        load_word_vectors(tmp_path / "none.txt", ["cat"])
