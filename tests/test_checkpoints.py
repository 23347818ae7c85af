"""Training checkpoints under faults: code in a pickle, corrupt files, temporary files of killed writers,
resuming another run."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import scorefusion as sf
from scorefusion.cache import CheckpointError
from scorefusion.nets import ScoreMLP
from scorefusion.train import train_score_model

SDE = sf.VESDE()

pytestmark = pytest.mark.usefixtures("one_thread")


def data(n=64, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def mlp(hidden=16):
    torch.manual_seed(0)
    return ScoreMLP(SDE, 2, hidden=hidden, depth=1)


def train(checkpoint, model=None, x=None, sde=SDE, **kwargs):
    args = {"epochs": 1, "batch_size": 32, "progress": False, "checkpoint": checkpoint}
    args.update(kwargs)
    return train_score_model(model if model is not None else mlp(), data() if x is None else x, sde, **args)


class RunsAShellCommand:
    """Unpickling this object runs ``touch <marker>`` (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_checkpoint_holds_only_plain_data(tmp_path):
    train(tmp_path / "run.pt")
    state = torch.load(tmp_path / "run.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 2 and state["fingerprint"]["lr"] == 1e-3


def test_malicious_checkpoint_is_refused_without_running_it(tmp_path):
    marker, ckpt = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"model": RunsAShellCommand(marker), "epoch": 0}, ckpt)
    with pytest.raises(CheckpointError, match="refused without running") as info:
        train(ckpt)
    assert str(ckpt) in str(info.value) and "delete it or pass another path" in str(info.value)
    assert not marker.exists()


def _truncated(path):
    train(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("make", [
    lambda p: p.write_bytes(b""),
    _truncated,
    lambda p: p.write_bytes(torch.randint(256, (4096,), generator=torch.Generator().manual_seed(0),
                                          dtype=torch.uint8).numpy().tobytes()),
    lambda p: torch.save(torch.zeros(3), p),
    lambda p: torch.save({"epoch": 1, "losses": [0.5]}, p),
], ids=["empty", "truncated", "random-bytes", "bare-tensor", "dict-without-weights"])
def test_corrupt_checkpoint_raises_one_clear_error(tmp_path, make):
    ckpt = tmp_path / "bad.pt"
    make(ckpt)
    with pytest.raises(CheckpointError, match="delete it or pass another path") as info:
        train(ckpt)
    assert str(ckpt) in str(info.value)


def _kill_during_save(path):
    """A child process dies by SIGKILL inside save_atomic, after writing its temporary file and before the
    rename: the temporary file is left behind."""
    script = textwrap.dedent(f"""
        import os, signal, torch
        from scorefusion import cache
        os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
        cache.save_atomic({{"w": torch.zeros(10)}}, {str(path)!r})
    """)
    child = subprocess.run([sys.executable, "-c", script], check=False, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert child.returncode == -signal.SIGKILL
    orphans = list(path.parent.glob(f"{path.name}.*.tmp"))
    assert len(orphans) == 1
    return orphans[0]


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    ckpt = tmp_path / "run.pt"
    train(ckpt)
    orphan = _kill_during_save(ckpt)
    with pytest.raises(KeyboardInterrupt):  # the load removes it; the run stops before its next save
        train(ckpt, epochs=2, stop_after_steps=1)
    assert not orphan.exists() and not list(tmp_path.glob("*.tmp"))
    orphan.write_bytes(b"half a file")  # the same leftover again
    train(ckpt, epochs=2)  # resumes from epoch 1, and its save removes it
    assert not list(tmp_path.glob("*.tmp")) and torch.load(ckpt, weights_only=True)["epoch"] == 2


@pytest.mark.parametrize("field, change", [
    ("lr", {"lr": 2e-3}),
    ("ema", {"ema": 0.99}),
    ("batch_size", {"batch_size": 16}),
    ("n", {"x": data(48)}),
    ("data", {"x": torch.cat([data()[:10], data()[10:11] + 1e-3, data()[11:]])}),
    ("sde", {"sde": sf.VESDE(sigma=20.0)}),
    ("t_range", {"t_range": (1e-3, 1.0)}),
    ("shapes", {"model": mlp(hidden=8)}),
    ("steps", {"epochs": None, "steps": 3}),
])
def test_resuming_another_run_is_refused_naming_the_field(tmp_path, field, change):
    ckpt = tmp_path / "run.pt"
    train(ckpt)
    with pytest.raises(CheckpointError, match=f"another run \\({field}: ") as info:
        train(ckpt, **change)
    assert 'resume="force"' in str(info.value)


def test_resume_force_continues_with_new_settings_but_not_another_model(tmp_path):
    ckpt = tmp_path / "run.pt"
    train(ckpt)
    train(ckpt, epochs=2, lr=2e-3, resume="force")
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 2 and state["fingerprint"]["lr"] == 2e-3
    with pytest.raises(CheckpointError, match="shapes"):
        train(ckpt, epochs=3, model=mlp(hidden=8), resume="force")


def test_checkpoint_past_the_end_is_refused(tmp_path):
    ckpt = tmp_path / "run.pt"
    train(ckpt, epochs=2)
    with pytest.raises(CheckpointError, match="past this run"):
        train(ckpt, epochs=1)


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"resume": "yes"}, ValueError, "resume"),
    ({"checkpoint": 3}, TypeError, "checkpoint"),
])
def test_bad_checkpoint_arguments(tmp_path, kwargs, error, fragment):
    args = {"checkpoint": tmp_path / "run.pt"}
    args.update(kwargs)
    with pytest.raises(error, match=fragment):
        train(**args)
