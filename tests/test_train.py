"""Training: the loss decreases, determinism, resume after a kill, DDP on CPU, bad input."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import scorefusion as sf
from scorefusion.nets import ScoreMLP, ScoreUNet
from scorefusion.train import _shard, train_score_model

SDE = sf.VESDE()


pytestmark = pytest.mark.usefixtures("one_thread")


def data(n=512):
    mix = sf.GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 1.0]], [torch.eye(2).tolist()] * 2)
    return mix.sample(n, generator=torch.Generator().manual_seed(0)).float()


def fresh_mlp():
    torch.manual_seed(0)
    return ScoreMLP(SDE, 2, hidden=32, depth=2)


def test_loss_decreases_and_result_is_ema_copy():
    model = fresh_mlp()
    result = train_score_model(model, data(), SDE, epochs=15, batch_size=64, progress=False,
                               generator=torch.Generator().manual_seed(1))
    assert result.losses[-1] < 0.8 * result.losses[0]
    assert not result.model.training and result.model is not model
    assert len(result.losses) == 15 and result.seconds > 0


def test_ema_weights():
    """ema=0 keeps the last weights (the trained module itself); ema>0 returns an average that differs."""
    model = fresh_mlp()
    last = train_score_model(model, data(128), SDE, epochs=2, batch_size=32, ema=0.0, progress=False).model
    assert all(torch.equal(a, b) for a, b in zip(last.parameters(), model.parameters()))
    model = fresh_mlp()
    avg = train_score_model(model, data(128), SDE, epochs=2, batch_size=32, ema=0.9, progress=False).model
    assert not torch.equal(avg.net[0].weight, model.net[0].weight)


def test_same_seed_same_weights():
    runs = [train_score_model(fresh_mlp(), data(), SDE, epochs=2, batch_size=64, progress=False,
                              generator=torch.Generator().manual_seed(2)).model for _ in range(2)]
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        assert torch.equal(a, b)
    other = train_score_model(fresh_mlp(), data(), SDE, epochs=2, batch_size=64, progress=False,
                              generator=torch.Generator().manual_seed(3)).model
    assert not torch.equal(other.net[0].weight, runs[0].net[0].weight)


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    kwargs = {"epochs": 4, "batch_size": 64, "progress": False}
    reference = train_score_model(fresh_mlp(), data(), SDE, generator=torch.Generator().manual_seed(3), **kwargs)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):  # killed mid-epoch 3 (8 steps per epoch)
        train_score_model(fresh_mlp(), data(), SDE, generator=torch.Generator().manual_seed(3), checkpoint=ckpt,
                          stop_after_steps=20, **kwargs)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed = train_score_model(fresh_mlp(), data(), SDE, generator=torch.Generator().manual_seed(3),
                                checkpoint=ckpt, **kwargs)
    for a, b in zip(reference.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_after_a_real_kill(tmp_path):
    """A child process SIGKILLs itself in the middle of epoch 3 (at its 20th forward pass, 8 steps per epoch);
    resuming from its checkpoint ends with exactly the weights of an uninterrupted run."""
    script = tmp_path / "child.py"
    ckpt = tmp_path / "kill.pt"
    script.write_text(textwrap.dedent("""
        import os, signal, sys, torch, scorefusion as sf
        from scorefusion.nets import ScoreMLP
        from scorefusion.train import train_score_model
        mix = sf.GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 1.0]], [torch.eye(2).tolist()] * 2)
        x = mix.sample(512, generator=torch.Generator().manual_seed(0)).float()
        torch.manual_seed(0)
        model = ScoreMLP(sf.VESDE(), 2, hidden=32, depth=2)
        if len(sys.argv) > 4:  # die without warning at the k-th forward pass
            calls = [0]
            def hook(module, args):
                calls[0] += 1
                if calls[0] == int(sys.argv[4]):
                    os.kill(os.getpid(), signal.SIGKILL)
            model.register_forward_pre_hook(hook)
        out = train_score_model(model, x, sf.VESDE(), epochs=int(sys.argv[1]), batch_size=64, progress=False,
                                generator=torch.Generator().manual_seed(4), checkpoint=sys.argv[2])
        torch.save(out.model.state_dict(), sys.argv[3])
    """))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed = subprocess.run([sys.executable, str(script), "5", str(ckpt), str(tmp_path / "x.pt"), "20"], check=False,
                            env=env)
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2 and not (tmp_path / "x.pt").exists()
    assert not list(tmp_path.glob("*.tmp"))

    # resume here (one thread, like the child) and compare with an uninterrupted run
    def run(checkpoint):
        torch.manual_seed(0)
        model = ScoreMLP(sf.VESDE(), 2, hidden=32, depth=2)
        return train_score_model(model, data(), sf.VESDE(), epochs=5, batch_size=64, progress=False,
                                 generator=torch.Generator().manual_seed(4), checkpoint=checkpoint).model.state_dict()

    resumed, ref = run(ckpt), run(None)
    assert ref.keys() == resumed.keys() and all(torch.equal(ref[k], resumed[k]) for k in ref)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 5


def test_ddp_on_cpu_matches_one_process_with_the_global_batch(tmp_path):
    """torchrun, two CPU processes (Gloo), 32 samples each per step, against one process taking 64.

    Both runs see the same samples at every step (one permutation, strided shards), and every process draws
    the times and noises of the whole global batch and keeps its rows, so each step's gradient is the same
    mean over the same 64 terms; only the order of the floating-point sums differs (two half-batch means
    averaged by the all-reduce, against one mean). That rounding, about 1e-7 relative in float32, moves the
    weights far less than one Adam step (lr = 1e-3 per coordinate): we allow 1e-5 after the 8 steps, and
    check that a different draw (another seed) moves them by far more than that.
    """
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent("""
        import sys, torch, torch.distributed as dist, scorefusion as sf
        import scorefusion.train as train
        from scorefusion.nets import ScoreMLP

        save = train.save_atomic
        def logged_save(state, path):  # record which process writes the checkpoint
            with open(f"{sys.argv[2]}-writes-{dist.get_rank()}.txt", "a") as log:
                log.write(f"{state['epoch']}\\n")
            save(state, path)
        train.save_atomic = logged_save

        x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        out = train.train_score_model(ScoreMLP(sf.VESDE(), 2, hidden=16, depth=1), x, sf.VESDE(), epochs=2,
                                      batch_size=32, progress=False, device="cpu",
                                      generator=torch.Generator().manual_seed(5), checkpoint=sys.argv[1])
        flat = torch.cat([p.detach().flatten() for p in out.model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, flat)
        assert torch.equal(gathered[0], gathered[1]), "replicas diverged"
        if dist.get_rank() == 0:
            torch.save({"weights": out.model.state_dict(), "losses": out.losses}, sys.argv[2])
        dist.destroy_process_group()
    """))
    result = tmp_path / "ddp-result.pt"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "ddp.pt"), str(result)], check=False, capture_output=True,
                          text=True, timeout=240, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]

    # only rank 0 wrote the checkpoint, once per epoch
    assert (tmp_path / "ddp-result.pt-writes-0.txt").read_text().split() == ["1", "2"]
    assert not (tmp_path / "ddp-result.pt-writes-1.txt").exists()
    state = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert state["epoch"] == 2 and state["fingerprint"]["world"] == 2

    ddp = torch.load(result, weights_only=True)
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))

    def single(seed):
        torch.manual_seed(0)
        return train_score_model(ScoreMLP(SDE, 2, hidden=16, depth=1), x, SDE, epochs=2, batch_size=64,
                                 progress=False, device="cpu", generator=torch.Generator().manual_seed(seed))

    one, other = single(5), single(6)
    gap = max((ddp["weights"][k] - v).abs().max().item() for k, v in one.model.state_dict().items())
    assert gap < 1e-5, gap
    assert max((v - one.model.state_dict()[k]).abs().max().item() for k, v in other.model.state_dict().items()) > 1e-3
    assert ddp["losses"] == pytest.approx(one.losses, rel=1e-5)


@pytest.mark.parametrize("n, world", [(10, 3), (2, 4), (8, 2), (1, 1)])
def test_shards_are_equal_and_cover_the_data(n, world):
    shards = [_shard(n, torch.Generator().manual_seed(0), r, world) for r in range(world)]
    assert len({s.numel() for s in shards}) == 1 and shards[0].numel() == -(-n // world)
    assert set(torch.cat(shards).tolist()) == set(range(n))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    ckpt = tmp_path / "a.pt"
    train_score_model(fresh_mlp(), data(64), SDE, epochs=1, batch_size=16, progress=False, checkpoint=ckpt)
    with pytest.raises(ValueError, match="another run"):
        train_score_model(fresh_mlp(), data(128), SDE, epochs=2, batch_size=16, progress=False, checkpoint=ckpt)


def test_unet_trains_on_images():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8)
    # channels_last forced on CPU exercises the CUDA memory-format path
    result = train_score_model(ScoreUNet(SDE, base=8), images, SDE, epochs=3, batch_size=32, progress=False,
                               generator=torch.Generator().manual_seed(6), channels_last=True)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert result.model(images[:2], torch.full((2,), 0.5)).shape == (2, 1, 8, 8)


def test_steps_gives_exactly_that_many_optimiser_steps():
    """300 samples in batches of 64 are 5 steps per epoch: steps=12 is two epochs and two steps of a third;
    steps=10 is bit for bit the run of epochs=2."""
    model = fresh_mlp()
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    result = train_score_model(model, data(300), SDE, steps=12, batch_size=64, progress=False)
    assert len(calls) == 12 and len(result.losses) == 3
    by_steps = train_score_model(fresh_mlp(), data(300), SDE, steps=10, batch_size=64, progress=False).model
    by_epochs = train_score_model(fresh_mlp(), data(300), SDE, epochs=2, batch_size=64, progress=False).model
    assert all(torch.equal(a, b) for a, b in zip(by_steps.state_dict().values(), by_epochs.state_dict().values()))


def test_steps_run_resumes_to_the_same_weights(tmp_path):
    kwargs = {"steps": 12, "batch_size": 64, "progress": False}
    reference = train_score_model(fresh_mlp(), data(300), SDE, **kwargs).model
    ckpt = tmp_path / "steps.pt"
    with pytest.raises(KeyboardInterrupt):  # killed in the second epoch
        train_score_model(fresh_mlp(), data(300), SDE, checkpoint=ckpt, stop_after_steps=7, **kwargs)
    resumed = train_score_model(fresh_mlp(), data(300), SDE, checkpoint=ckpt, **kwargs).model
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()))
    again = train_score_model(fresh_mlp(), data(300), SDE, checkpoint=ckpt, **kwargs)  # finished: no step taken
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), again.model.state_dict().values()))


class NaNAfter(torch.nn.Module):
    """A score network whose output turns NaN from its k-th call on."""

    def __init__(self, k):
        super().__init__()
        self.inner, self.k, self.calls = fresh_mlp(), k, 0

    def forward(self, x, t):
        self.calls += 1
        out = self.inner(x, t)
        return out * float("nan") if self.calls >= self.k else out


def test_non_finite_loss_names_the_step():
    with pytest.raises(FloatingPointError, match="step 7"):
        train_score_model(NaNAfter(7), data(128), SDE, epochs=3, batch_size=32, progress=False)


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"epochs": None}, ValueError, "exactly one of epochs"),
    ({"steps": 3}, ValueError, "exactly one of epochs"),
    ({"epochs": None, "steps": 0}, ValueError, "steps"),
    ({"lr": float("inf")}, ValueError, "lr"),
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"ema": float("nan")}, ValueError, "ema"),
    ({"data": [[0.0, 1.0]]}, TypeError, "data"),
    ({"sde": "VESDE"}, TypeError, "sde"),

    ({"data": torch.zeros(0, 2)}, ValueError, "data"),
    ({"data": torch.tensor([[float("nan"), 0.0]])}, ValueError, "NaN"),
    ({"data": torch.zeros(4, 2, dtype=torch.long)}, TypeError, "data"),
    ({"epochs": 0}, ValueError, "epochs"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"lr": -1.0}, ValueError, "lr"),
    ({"ema": 1.0}, ValueError, "ema"),
])
def test_bad_input(kwargs, error, fragment):
    args = {"data": torch.zeros(8, 2), "sde": SDE, "epochs": 1, "batch_size": 4, "progress": False}
    args.update(kwargs)
    with pytest.raises(error, match=fragment):
        train_score_model(fresh_mlp(), **args)
