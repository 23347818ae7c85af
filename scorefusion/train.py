"""Fitting score networks by denoising score matching."""

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ._checks import check_positive_int
from .losses import dsm_loss, sample_times


@dataclass
class TrainResult:
    """Outcome of :func:`train_score_model`.

    Attributes
    ----------
    model : nn.Module
        A copy of the model carrying the EMA weights, in eval mode.
    losses : list of float
        Mean DSM loss per epoch (of this process's shard under DDP).
    seconds : float
        Wall-clock time of this call (a resumed run counts only its own part).
    """

    model: torch.nn.Module
    losses: list = field(default_factory=list)
    seconds: float = 0.0


def resolve_device(device):
    """``"auto"`` means CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_data(data):
    if not torch.is_tensor(data) or not data.is_floating_point():
        raise TypeError("data must be a floating torch tensor of shape (n, ...)")
    if data.ndim < 2 or data.shape[0] == 0:
        raise ValueError(f"data must have shape (n, ...) with n >= 1, got {tuple(data.shape)}")
    if not torch.isfinite(data).all():
        raise ValueError("data contains NaN or infinite values")


def _save_atomic(state, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _distributed():
    """(rank, world_size), initialising the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return torch.distributed.get_rank(), world


def train_score_model(model, data, sde, epochs=100, batch_size=128, lr=1e-3, ema=0.999, device="auto",
                      checkpoint=None, progress=True, generator=None, t_range=None, bf16="auto",
                      channels_last="auto", compile=False, stop_after_steps=None):
    r"""Train a score network by denoising score matching, with EMA and resumable checkpoints.

    Minimises (Adam) the DSM objective of :func:`~scorefusion.losses.dsm_loss`,

    .. math:: \mathbb E_{t, x_0, z}\,\| \mathrm{std}_t\, s_\theta(\mathrm{scale}_t x_0 + \mathrm{std}_t z, t) + z\|^2,

    over shuffled mini-batches, and keeps an exponential moving average of the
    weights, :math:`\bar\theta \leftarrow \beta \bar\theta + (1 - \beta)\theta`
    (``torch.optim.swa_utils``).

    Reproducibility: every random draw (shuffling, times, noise) comes from
    ``generator`` (default: seed 0), so the same seed gives the same weights.
    With ``checkpoint``, the model, EMA, optimiser, epoch and generator states
    are written atomically (temporary file, then ``os.replace``) after every
    epoch, and a call finding the file resumes from it: a run that is killed
    and restarted ends with the same weights as one that was not.

    On CUDA (``device="auto"`` picks it when present): bf16 autocast and
    channels-last memory for images unless disabled, and ``torch.compile`` when
    asked. Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
    DistributedDataParallel (NCCL on CUDA, Gloo on CPU); every process draws
    the same permutation and takes its own shard; only rank 0 writes
    checkpoints.

    Parameters
    ----------
    model : nn.Module
        Score network ``model(x, t)``.
    data : Tensor of shape (n, ...)
        Training samples.
    sde : VESDE or VPSDE
    epochs : int, default 100
    batch_size : int, default 128
    lr : float, default 1e-3
    ema : float, default 0.999
        EMA decay ``beta``.
    device : str or torch.device, default "auto"
    checkpoint : path, optional
        File to resume from and save to.
    progress : bool, default True
        tqdm bar over epochs.
    generator : torch.Generator, optional
    t_range : (float, float), optional
        Training times; default ``(1e-5, sde.T)``.
    bf16, channels_last : bool or "auto"
        "auto" enables them on CUDA only.
    compile : bool, default False
        ``torch.compile`` the training forward.
    stop_after_steps : int, optional
        Stop (as if killed) after this many optimiser steps of this call; for
        testing resumption.

    Returns
    -------
    TrainResult
    """
    _check_data(data)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if not 0 <= ema < 1:
        raise ValueError(f"ema must lie in [0, 1), got {ema!r}")
    start_time = time.perf_counter()
    device = resolve_device(device)
    cuda = device.type == "cuda"
    use_bf16 = cuda if bf16 == "auto" else bool(bf16)
    use_channels_last = (cuda and data.ndim == 4) if channels_last == "auto" else bool(channels_last)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    rank, world = _distributed()

    memory_format = torch.channels_last if use_channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).train()
    data = data.to(device)
    if use_channels_last:
        data = data.contiguous(memory_format=torch.channels_last)
    ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    noise_gen = torch.Generator(device=device)
    noise_gen.manual_seed(int(torch.randint(2**62, (1,), generator=generator)) + rank)
    first_epoch, losses = 0, []
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        ema_model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"].cpu())
        noise_gen.set_state(state["noise_generator"].cpu())
        first_epoch, losses = state["epoch"], state["losses"]

    trained = model
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if cuda else None)
    if compile:
        trained = torch.compile(trained)

    n, steps = data.shape[0], 0
    bar = tqdm(range(first_epoch, epochs), disable=not progress or rank != 0, desc="training",
               initial=first_epoch, total=epochs)
    for epoch in bar:
        order = torch.randperm(n, generator=generator)[rank::world].to(device)
        total, count = 0.0, 0
        for begin in range(0, order.numel(), batch_size):
            batch = data[order[begin:begin + batch_size]]
            t = sample_times(batch.shape[0], sde, t_range, noise_gen, dtype=batch.dtype, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = dsm_loss(trained, batch, sde, t=t, generator=noise_gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema_model.update_parameters(model)
            total += loss.item() * batch.shape[0]
            count += batch.shape[0]
            steps += 1
            if stop_after_steps is not None and steps >= stop_after_steps:
                raise KeyboardInterrupt(f"stopped after {steps} steps (stop_after_steps)")
        losses.append(total / max(count, 1))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if checkpoint is not None and rank == 0:
            _save_atomic({"model": model.state_dict(), "ema": ema_model.state_dict(),
                          "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                          "noise_generator": noise_gen.get_state(), "epoch": epoch + 1, "losses": losses},
                         checkpoint)
    result = copy.deepcopy(ema_model.module).eval()
    return TrainResult(result, losses, time.perf_counter() - start_time)
