"""Fitting score networks by denoising score matching."""

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ._checks import check_positive_int
from .cache import save_atomic
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


def dsm_step(net, model, ema_model, optimizer, batch, sde, t_range=None, generator=None, bf16=False):
    r"""One optimiser step on the DSM loss of a batch, then one EMA update.

    .. math:: \theta \leftarrow \mathrm{Adam}\big(\theta, \nabla_\theta\,
              \mathbb E\,\|\sigma_t s_\theta(x_t, t) + z\|^2\big), \qquad
              t \sim U(t_{\min}, t_{\max})

    Parameters
    ----------
    net : callable
        The network evaluated, ``model`` itself or its ``torch.compile`` wrapper.
    model : nn.Module
        The parameters the optimiser updates and the EMA averages.
    ema_model : torch.optim.swa_utils.AveragedModel
    optimizer : torch.optim.Optimizer
    batch : Tensor of shape (n, ...)
    sde : VESDE or VPSDE
    t_range : (float, float), optional
        As in :func:`~scorefusion.losses.sample_times`.
    generator : torch.Generator, optional
        Draws the times and the noise, on the batch's device.
    bf16 : bool, default False
        Evaluate the loss under bf16 autocast.

    Returns
    -------
    Tensor
        The batch's loss (before the step).
    """
    t = sample_times(batch.shape[0], sde, t_range, generator, dtype=batch.dtype, device=batch.device)
    with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = dsm_loss(net, batch, sde, t=t, generator=generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    ema_model.update_parameters(model)
    return loss


def _check_data(data):
    if not torch.is_tensor(data) or not data.is_floating_point():
        raise TypeError("data must be a floating torch tensor of shape (n, ...)")
    if data.ndim < 2 or data.shape[0] == 0:
        raise ValueError(f"data must have shape (n, ...) with n >= 1, got {tuple(data.shape)}")
    if not torch.isfinite(data).all():
        raise ValueError("data contains NaN or infinite values")


def _distributed(device):
    """(rank, world_size, device), initialising the process group when launched by torchrun.

    Under torchrun on CUDA each process takes the GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), torch.distributed.get_world_size(), device


def _shard(n, generator, rank, world):
    """This process's indices of one epoch: one shared permutation, padded by wrapping around to a
    multiple of ``world`` (as ``DistributedSampler`` does) so that every process takes the same
    number of steps, then strided."""
    order = torch.randperm(n, generator=generator)
    padded = -(-n // world) * world
    if padded > n:
        order = torch.cat([order, order[: padded - n]]) if padded - n <= n else order.repeat(padded // n + 1)[:padded]
    return order[rank::world]


def train_score_model(model, data, sde, epochs=100, batch_size=128, lr=1e-3, ema=0.999, device="auto",
                      checkpoint=None, progress=True, generator=None, t_range=None, bf16="auto",
                      channels_last="auto", compile=False, stop_after_steps=None):
    r"""Train a score network by denoising score matching, with EMA and resumable checkpoints.

    Minimises with Adam the DSM objective of :func:`~scorefusion.losses.dsm_loss`
    (Song et al. 2021, Eq. 7, with weighting :math:`\lambda(t) = \mathrm{std}_t^2`;
    the training of the auxiliaries in Liu et al. 2025, Sec. 5),

    .. math::

        \mathcal L(\theta) = \mathbb E_{t \sim U(t_\min, t_\max)}\,\mathbb E_{x_0, z}
        \left\| \mathrm{std}_t\, s_\theta(\mathrm{scale}_t x_0 + \mathrm{std}_t z, t) + z\right\|^2,

    over shuffled mini-batches, and keeps an exponential moving average of the
    weights, :math:`\bar\theta \leftarrow \beta \bar\theta + (1 - \beta)\theta`
    after every step (``torch.optim.swa_utils``; buffers are averaged too).

    Reproducibility: every random draw comes from ``generator`` (default: seed
    0). At the start of each epoch it draws the permutation and a seed for the
    epoch's times and noises (on the training device), so the same seed gives
    the same weights on the same device. With ``checkpoint``, the model, EMA,
    optimiser, epoch, losses and the RNG states (``generator``, torch's global
    CPU and CUDA generators) are written after every epoch, atomically (a
    temporary file in the same folder, then ``os.replace``); a call that finds
    the file resumes from it, so a run killed at any moment and restarted ends
    with exactly the weights of an uninterrupted run.

    On CUDA (``device="auto"`` picks it when present): bf16 autocast and
    channels-last memory for images unless disabled, and ``torch.compile`` when
    asked. Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
    DistributedDataParallel (NCCL on CUDA with one GPU per process, Gloo on
    CPU); every process draws the same permutation from ``generator``, padded by
    wrapping around to a multiple of the world size like ``DistributedSampler``,
    and takes every ``world``-th index; the per-process noise seeds differ by
    rank; only rank 0 writes checkpoints; the logged loss is the global mean.

    Parameters
    ----------
    model : nn.Module
        Score network ``model(x, t)`` for ``x`` of shape (b, ...) and ``t`` of shape (b,).
    data : Tensor of shape (n, ...)
        Training samples, floating and finite, n >= 1.
    sde : VESDE or VPSDE
    epochs : int, default 100
    batch_size : int, default 128
    lr : float, default 1e-3
    ema : float, default 0.999
        EMA decay :math:`\beta` in [0, 1) (0 keeps the last weights).
    device : str or torch.device, default "auto"
    checkpoint : str or path, optional
        File to resume from and save to (its folder is created).
    progress : bool, default True
        tqdm bar over epochs (rank 0 only).
    generator : torch.Generator (CPU), optional
    t_range : (float, float), optional
        Training times :math:`(t_\min, t_\max)`; default ``(1e-5, sde.T)``.
    bf16, channels_last : bool or "auto"
        "auto" enables them on CUDA only (channels-last for 4-D data).
    compile : bool, default False
        ``torch.compile`` the training forward.
    stop_after_steps : int, optional
        Raise ``KeyboardInterrupt`` after this many optimiser steps of this
        call, as if the run were interrupted (for testing resumption).

    Returns
    -------
    TrainResult
        ``model``: a copy of the network with the EMA weights, in eval mode;
        ``losses``: mean loss per epoch (all epochs, including resumed ones);
        ``seconds``: wall time of this call.

    Raises
    ------
    TypeError
        ``model`` not a module, ``data`` not a floating tensor, ``generator`` not a CPU generator.
    ValueError
        Empty or non-finite data, ``epochs``/``batch_size`` < 1, ``lr`` <= 0,
        ``ema`` outside [0, 1), a checkpoint of another run.
    FloatingPointError
        The loss became NaN or infinite.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module score network, got {type(model).__name__}")
    _check_data(data)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(ema, (int, float)) and 0 <= ema < 1):
        raise ValueError(f"ema must be a number in [0, 1), got {ema!r}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise TypeError("generator must be a CPU torch.Generator (it drives shuffling and the per-epoch seeds)")
    if stop_after_steps is not None:
        check_positive_int(stop_after_steps, "stop_after_steps")
    start_time = time.perf_counter()
    rank, world, device = _distributed(resolve_device(device))
    cuda = device.type == "cuda"
    use_bf16 = cuda if bf16 == "auto" else bool(bf16)
    use_channels_last = (cuda and data.ndim == 4) if channels_last == "auto" else bool(channels_last)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)

    memory_format = torch.channels_last if use_channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).train()
    data = data.to(device)
    if use_channels_last:
        data = data.contiguous(memory_format=torch.channels_last)
    ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    noise_gen = torch.Generator(device=device)
    n = data.shape[0]
    run_info = {"n": n, "batch_size": batch_size, "world": world}
    first_epoch, losses = 0, []
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("run") != run_info:
            raise ValueError(f"checkpoint {checkpoint} belongs to another run ({state.get('run')}), "
                             f"not to this one ({run_info}); delete it or pass another path")
        if state["epoch"] > epochs:
            raise ValueError(f"checkpoint {checkpoint} is at epoch {state['epoch']} > epochs={epochs}")
        model.load_state_dict(state["model"])
        ema_model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        first_epoch, losses = state["epoch"], list(state["losses"])

    trained = model
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if cuda else None)
    if compile:
        trained = torch.compile(trained)

    steps = 0
    bar = tqdm(range(first_epoch, epochs), disable=not progress or rank != 0, desc="training",
               initial=first_epoch, total=epochs)
    for epoch in bar:
        # every random number of the epoch derives from `generator` at the epoch's start, so a
        # checkpoint written between epochs fixes the rest of the run on every process
        order = _shard(n, generator, rank, world).to(device)
        epoch_seed = int(torch.randint(2**62, (1,), generator=generator))
        noise_gen.manual_seed((epoch_seed + 7919 * rank) % 2**63)
        total = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        for begin in range(0, order.numel(), batch_size):
            batch = data[order[begin:begin + batch_size]]
            if use_channels_last:  # indexing returns a contiguous tensor
                batch = batch.contiguous(memory_format=torch.channels_last)
            loss = dsm_step(trained, model, ema_model, optimizer, batch, sde, t_range, noise_gen, use_bf16)
            total += loss.detach().double() * batch.shape[0]
            count += batch.shape[0]
            steps += 1
            if stop_after_steps is not None and steps >= stop_after_steps:
                raise KeyboardInterrupt(f"stopped after {steps} steps (stop_after_steps)")
        if world > 1:  # the logged loss is the mean over all processes' samples
            summary = torch.stack([total, torch.tensor(float(count), dtype=torch.float64, device=device)])
            torch.distributed.all_reduce(summary)
            total, count = summary[0], summary[1]
        loss_value = float(total) / float(count)
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"the DSM loss became {loss_value} in epoch {epoch + 1}; lower lr")
        losses.append(loss_value)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if checkpoint is not None and rank == 0:
            save_atomic({"model": model.state_dict(), "ema": ema_model.state_dict(),
                          "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                          "torch_rng": torch.get_rng_state(),
                          "cuda_rng": torch.cuda.get_rng_state(device) if cuda else None,
                          "epoch": epoch + 1, "losses": losses, "run": run_info}, checkpoint)
    result = copy.deepcopy(ema_model.module).eval()
    return TrainResult(result, losses, time.perf_counter() - start_time)
