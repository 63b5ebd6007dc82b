"""The Trainer receives its batches: the sampler's order is what it runs, and a run stopped
mid-epoch resumes exactly (same batches, same weights)."""
import copy

import pytest
import torch

from graphmatch.data.dataset import MatchingData
from graphmatch.data.precomp import load_precomp
from graphmatch.data.sampler import CaptionBatchSampler, PairLoader
from graphmatch.data.vocab import Vocabulary
from graphmatch.engine.trainer import HookBase, Trainer
from graphmatch.graphs import to_dense


class Tiny(torch.nn.Module):
    """Mean region and word embeddings, dot product; dropout draws random numbers (RNG state matters)."""

    def __init__(self, dim, n_words):
        super().__init__()
        self.img = torch.nn.Linear(dim, 8)
        self.emb = torch.nn.Embedding(n_words, 8)
        self.drop = torch.nn.Dropout(0.3)
        self.seen = []

    def forward(self, images, captions):
        self.seen.append(captions.item.tolist())
        x, m = to_dense(images)
        img = (self.img(x) * m[..., None]).sum(1) / m.sum(1, keepdim=True)
        w, wm = to_dense(captions)
        cap = (self.drop(self.emb(w)) * wm[..., None]).sum(1) / wm.sum(1, keepdim=True)
        return img @ cap.t()


def loss_fn(sims, mask):
    return torch.nn.functional.relu(0.2 + sims - sims.masked_fill(~mask, 0).sum(0, keepdim=True)).masked_fill(
        mask, 0).mean()


@pytest.fixture(scope="module")
def data(tiny_synthetic):
    s = load_precomp(tiny_synthetic, "train")
    return MatchingData(s, Vocabulary.build(s.captions))


def make(data, seed=3, hooks=(), epochs=2):
    torch.manual_seed(0)
    model = Tiny(data.feature_dim, len(data.vocab))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sampler = CaptionBatchSampler(data.n_captions, 64, seed=seed, max_steps_per_epoch=6)
    trainer = Trainer(model=model, optimizer=opt, loss_fn=loss_fn, batches=PairLoader(data, sampler),
                      epochs=epochs, hooks=hooks)
    return trainer, model, sampler


def test_the_trainer_runs_the_sampler_order(data):
    trainer, model, sampler = make(data)
    assert trainer.steps_per_epoch == 6
    torch.manual_seed(1)
    trainer.train()
    assert model.seen == sampler.batches(0) + sampler.batches(1)
    assert trainer.global_step == 12 and trainer.epoch == 2 and trainer.step_in_epoch == 0


class StopAfter(HookBase):
    def __init__(self, step):
        self.step, self.saved = step, None

    def after_step(self):
        if self.trainer.global_step == self.step:
            self.saved = (copy.deepcopy(self.trainer.model.state_dict()), self.trainer.state_dict())
            raise KeyboardInterrupt


def test_a_run_stopped_mid_epoch_resumes_exactly(data):
    ref, ref_model, _ = make(data)
    torch.manual_seed(1)
    ref.train()

    stop = StopAfter(8)  # step 2 of epoch 1
    cut, cut_model, _ = make(data, hooks=[stop])
    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        cut.train()
    weights, state = stop.saved
    assert state["epoch"] == 1 and state["step_in_epoch"] == 2 and state["sampler"]["step"] == 2

    resumed, model, sampler = make(data)
    torch.manual_seed(99)  # the saved RNG state replaces this
    model.load_state_dict(weights)
    resumed.load_state_dict(state)
    assert (resumed.epoch, resumed.step_in_epoch) == (1, 2)
    resumed.train()
    assert cut_model.seen + model.seen == ref_model.seen
    for k, v in ref_model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_trainer_state_of_earlier_versions_and_of_another_order(data):
    trainer, _, _ = make(data)
    state = trainer.state_dict()
    legacy = {k: v for k, v in state.items() if k != "sampler"}
    legacy.update(epoch=1, step_in_epoch=4)
    other, _, sampler = make(data)
    other.load_state_dict(legacy)  # a trainer.pt written before the sampler held the position
    assert (sampler.epoch, sampler.step) == (1, 4)
    reseeded, _, _ = make(data, seed=4)
    with pytest.raises(ValueError, match="seed=3.*another batch order"):
        reseeded.load_state_dict(state)


def test_an_epoch_boundary_position_and_the_last_epoch(data):
    class Save(HookBase):
        state = None

        def after_epoch(self):
            if self.trainer.epoch == 0:
                Save.state = self.trainer.state_dict()

    trainer, _, _ = make(data, hooks=[Save()])
    trainer.train()
    assert Save.state["epoch"] == 1 and Save.state["step_in_epoch"] == 0 and Save.state["epoch_losses"] == []
