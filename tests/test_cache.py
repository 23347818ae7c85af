"""The trained-model cache: keys that see every element of an array, unreadable entries retrained, one
process training an entry while another waits for it."""

import multiprocessing
import os
import time

import numpy as np
import pytest
import torch

from scorefusion.cache import CheckpointError, cached_model, config_key, load_state, save_atomic


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREFUSION_CACHE", str(tmp_path))
    return tmp_path


def test_keys_hash_arrays_by_their_bytes():
    w = torch.arange(2000.0)
    changed = w.clone()
    changed[1000] += 1
    assert config_key({"w": w}) != config_key({"w": changed})  # str() of both reads "tensor([0., 1., ..."
    assert config_key({"w": w}) == config_key({"w": w.clone()})
    assert config_key({"w": w}) != config_key({"w": w.double()})  # dtype
    assert config_key({"w": w}) != config_key({"w": w.reshape(40, 50)})  # shape
    a = np.arange(2000.0)
    b = a.copy()
    b[1000] = -1
    assert config_key({"w": a}) != config_key({"w": b})


def test_keys_of_plain_configs_are_unchanged():
    """Configs without arrays keep the keys of earlier versions (JSON with sorted keys, str() fallback), so
    cached networks stay valid: this value was computed with the earlier config_key."""
    config = {"seed": 0, "sde": "VESDE(sigma=25.0, T=1.0)", "steps": 100, "lr": 0.001, "weights": [0.5, 0.5]}
    assert config_key(config) == "4cafdb020a8eb098"


def counting_trainer(calls):
    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(float(len(calls)))
        return model

    return train


def entry(cache, config):
    return cache / f"lin-{config_key(config)}.pt"


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("spoil", [
    _truncate,
    lambda p: p.write_bytes(b""),
    lambda p: torch.save(torch.zeros(2, 2), p),
    lambda p: torch.save({"weight": [1.0]}, p),
], ids=["truncated", "empty", "bare-tensor", "not-tensors"])
def test_unreadable_entry_is_a_miss_that_is_retrained(cache, spoil):
    calls, config = [], {"seed": 0}
    cached_model("lin", config, lambda: torch.nn.Linear(2, 2), counting_trainer(calls))
    spoil(entry(cache, config))
    with pytest.warns(UserWarning, match=f"treated as a miss.*{entry(cache, config).name}"):
        model = cached_model("lin", config, lambda: torch.nn.Linear(2, 2), counting_trainer(calls))
    assert len(calls) == 2 and torch.equal(model.weight, torch.full((2, 2), 2.0))
    again = cached_model("lin", config, lambda: torch.nn.Linear(2, 2), counting_trainer(calls))  # repaired
    assert len(calls) == 2 and torch.equal(again.weight, model.weight)


def test_malicious_entry_is_a_miss_and_runs_nothing(cache):
    from test_checkpoints import RunsAShellCommand

    config, marker = {"seed": 1}, cache / "pwned"
    torch.save({"weight": RunsAShellCommand(marker)}, entry(cache, config))
    with pytest.warns(UserWarning, match="refused without running"):
        cached_model("lin", config, lambda: torch.nn.Linear(2, 2), counting_trainer([]))
    assert not marker.exists()


def test_entry_of_another_architecture_is_refused(cache):
    config = {"seed": 2}
    cached_model("lin", config, lambda: torch.nn.Linear(2, 2), counting_trainer([]))
    with pytest.raises(CheckpointError, match="another architecture"):
        cached_model("lin", config, lambda: torch.nn.Linear(3, 2), counting_trainer([]))


def test_leftover_temporary_files_are_removed(cache):
    config = {"seed": 3}
    leftover = entry(cache, config).with_name(entry(cache, config).name + ".12345-deadbeef.tmp")
    leftover.write_bytes(b"half")
    cached_model("lin", config, lambda: torch.nn.Linear(2, 2), counting_trainer([]))
    assert not leftover.exists()
    leftover.write_bytes(b"half")
    load_state(entry(cache, config))
    assert not leftover.exists()
    save_atomic({"w": torch.zeros(1)}, cache / "other.pt")
    assert not list(cache.glob("*.tmp"))


def _fill_entry(folder, barrier, trained):
    """Child process: wait for the other one, then ask for the same cache entry; training takes 0.5 s."""
    os.environ["SCOREFUSION_CACHE"] = str(folder)
    torch.set_num_threads(1)

    def train(model):
        with trained.get_lock():
            trained.value += 1
        time.sleep(0.5)
        with torch.no_grad():
            model.weight.fill_(float(os.getpid()))
        return model

    barrier.wait()
    model = cached_model("shared", {"seed": 0}, lambda: torch.nn.Linear(2, 2), train)
    torch.save(model.state_dict(), folder / f"result-{os.getpid()}.pt")


def test_two_processes_fill_one_entry_once(cache):
    """Both processes start together and both find the entry missing; the file lock makes the second wait
    for the first and load its weights (without it both would train). Forked where the platform can (no
    re-import of torch in the children: a second instead of tens under load)."""
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    barrier, trained = ctx.Barrier(2), ctx.Value("i", 0)
    procs = [ctx.Process(target=_fill_entry, args=(cache, barrier, trained)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert trained.value == 1
    a, b = (torch.load(f, weights_only=True) for f in sorted(cache.glob("result-*.pt")))
    assert torch.equal(a["weight"], b["weight"])
