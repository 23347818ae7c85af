"""Fitting score networks by denoising score matching."""

import copy
import math
import numbers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ._checks import check_batch, check_positive_int, check_sde
from .cache import CheckpointError, config_key, load_state, save_atomic, tensor_digest
from .losses import dsm_loss, sample_times


@dataclass
class TrainResult:
    """Outcome of :func:`train_score_model`.

    Attributes
    ----------
    model : nn.Module
        A copy of the model carrying the EMA weights, in eval mode.
    losses : list of float
        Mean DSM loss per epoch (over all processes under DDP; the last epoch of a
        ``steps=`` run may be partial).
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
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f'device must be "auto", "cpu", "cuda", "cuda:N" or a torch.device, got {device!r} '
                         f"({err})") from None


def dsm_step(net, model, ema_model, optimizer, batch, sde, t_range=None, generator=None, bf16=False, rank=0,
             world=1):
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
    rank, world : int, default 0 and 1
        Under data parallelism, ``batch`` holds rows ``rank::world`` of a global batch of
        ``world * len(batch)`` samples: every process draws the times and noises of the whole
        global batch (the draws of one process taking that batch) and keeps the same rows.

    Returns
    -------
    Tensor
        The batch's loss (before the step).
    """
    size, kwargs = world * batch.shape[0], {"dtype": batch.dtype, "device": batch.device}
    t = sample_times(size, sde, t_range, generator, **kwargs)[rank::world]
    noise = torch.randn((size, *batch.shape[1:]), generator=generator, **kwargs)[rank::world]
    with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = dsm_loss(net, batch, sde, t=t, generator=generator, noise=noise)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    ema_model.update_parameters(model)
    return loss


@dataclass
class _Schedule:
    """How long a run lasts: every process takes ``steps_per_epoch`` steps per full epoch."""

    steps_per_epoch: int
    total_steps: int

    @property
    def total_epochs(self):
        return -(-self.total_steps // self.steps_per_epoch)


def _schedule(n, batch_size, world, epochs, steps):
    shard = -(-n // world)  # every process's share of an epoch, padded as in _shard
    steps_per_epoch = -(-shard // batch_size)
    return _Schedule(steps_per_epoch, steps if steps is not None else epochs * steps_per_epoch)


def _check_arguments(model, data, sde, epochs, steps, batch_size, lr, ema, generator, checkpoint, resume,
                     stop_after_steps):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module score network, got {type(model).__name__}")
    check_batch(data, "data")
    check_sde(sde)
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs= (full passes over the data) or steps= (optimiser steps), "
                         f"got epochs={epochs!r}, steps={steps!r}")
    if epochs is not None:
        check_positive_int(epochs, "epochs")
    else:
        check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite positive number, got {lr!r}")
    if isinstance(ema, bool) or not (isinstance(ema, (int, float)) and 0 <= ema < 1):
        raise ValueError(f"ema must be a number in [0, 1), got {ema!r}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise TypeError("generator must be a CPU torch.Generator (it drives shuffling and the per-epoch seeds)")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path (str or os.PathLike), got {type(checkpoint).__name__}")
    if resume not in ("strict", "force"):
        raise ValueError(f'resume must be "strict" or "force", got {resume!r}')
    if stop_after_steps is not None:
        check_positive_int(stop_after_steps, "stop_after_steps")


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


def _precision(device, data, bf16, channels_last):
    """(bf16 autocast on?, memory format): "auto" turns both on for CUDA only (channels-last for 4-D data)."""
    cuda = device.type == "cuda"
    use_bf16 = cuda if bf16 == "auto" else bool(bf16)
    use_channels_last = (cuda and data.ndim == 4) if channels_last == "auto" else bool(channels_last)
    return use_bf16, torch.channels_last if use_channels_last else torch.contiguous_format


def _wrap(model, world, device, compile):
    """The network the steps evaluate: ``model`` under DDP when distributed, compiled when asked."""
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    return torch.compile(net) if compile else net


def _shard(n, generator, rank, world):
    """This process's indices of one epoch: one shared permutation, padded by wrapping around to a
    multiple of ``world`` (as ``DistributedSampler`` does) so that every process takes the same
    number of steps, then strided."""
    order = torch.randperm(n, generator=generator)
    padded = -(-n // world) * world
    if padded > n:
        order = torch.cat([order, order[: padded - n]]) if padded - n <= n else order.repeat(padded // n + 1)[:padded]
    return order[rank::world]


def _fingerprint(model, data, sde, world, batch_size, lr, ema, steps, t_range):
    """What a run's trajectory depends on, checked when a checkpoint is resumed.

    The target of an ``epochs=`` run is not part of it (a longer run continues a shorter one exactly);
    a ``steps=`` run may end mid-epoch, so its target is.
    """
    params = {k: v for k, v in vars(sde).items()
              if not k.startswith("_") and (isinstance(v, (numbers.Number, str)) or torch.is_tensor(v))}
    return {"n": data.shape[0], "batch_size": batch_size, "world": world, "lr": float(lr), "ema": float(ema),
            "steps": steps, "t_range": None if t_range is None else [float(v) for v in t_range],
            "data": tensor_digest(data), "sde": f"{sde!r} {config_key(params)}",
            "model": f"{type(model).__module__}.{type(model).__qualname__}",
            "shapes": config_key({k: list(v.shape) for k, v in model.state_dict().items()})}


_STATE_KEYS = {"model": dict, "ema": dict, "optimizer": dict, "generator": torch.Tensor, "torch_rng": torch.Tensor,
               "epoch": int, "step": int, "losses": list, "fingerprint": dict}


def _resume(checkpoint, fingerprint, resume, schedule, model, ema_model, optimizer, generator, device):
    """Load the training state saved by :func:`_save_checkpoint`; returns (epoch, step, losses).

    ``resume="strict"`` refuses a checkpoint whose fingerprint differs, naming the fields;
    ``"force"`` continues from it anyway (the weights must still fit the model).
    """
    state = load_state(checkpoint, map_location=device)
    missing = [k for k, kind in _STATE_KEYS.items() if not isinstance(state, dict) or not isinstance(state.get(k), kind)]
    if missing:
        found = f"a dict without {missing}" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise CheckpointError(f"{checkpoint} is not a training checkpoint of train_score_model (it holds {found}); "
                              "delete it or pass another path")
    changed = [k for k in fingerprint if state["fingerprint"].get(k) != fingerprint[k]]
    if changed and (resume == "strict" or "shapes" in changed or "model" in changed):
        details = "; ".join(f"{k}: {state['fingerprint'].get(k)!r} there, {fingerprint[k]!r} here" for k in changed)
        raise CheckpointError(f"checkpoint {checkpoint} belongs to another run ({details}); delete it, pass another "
                              'path, or pass resume="force" to continue from it (same model only)')
    if state["step"] > schedule.total_steps:
        raise CheckpointError(f"checkpoint {checkpoint} is at step {state['step']}, past this run's "
                              f"{schedule.total_steps} steps; delete it or pass another path")
    try:
        model.load_state_dict(state["model"])
        ema_model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"].cpu())
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {checkpoint} does not fit this run ({type(err).__name__}: {err}); "
                              "delete it or pass another path") from err
    torch.set_rng_state(state["torch_rng"].cpu())
    if device.type == "cuda" and torch.is_tensor(state.get("cuda_rng")):
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
    return state["epoch"], state["step"], list(state["losses"])


def _save_checkpoint(checkpoint, fingerprint, model, ema_model, optimizer, generator, device, epoch, step, losses):
    """Write the training state atomically: weights, EMA, optimiser, progress, every RNG state (as tensors)
    and the run's fingerprint; only tensors, numbers, strings, lists and dicts, so that it loads with
    ``weights_only=True``."""
    state = {"model": model.state_dict(), "ema": ema_model.state_dict(), "optimizer": optimizer.state_dict(),
             "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch, "step": step,
             "losses": losses, "fingerprint": fingerprint}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    save_atomic(state, checkpoint)


def _epoch_loss(total, count, step_losses, first_step, world, device):
    """The epoch's mean loss over every process's samples; FloatingPointError naming the first bad step."""
    if world > 1:
        summary = torch.stack([total, torch.tensor(float(count), dtype=torch.float64, device=device)])
        torch.distributed.all_reduce(summary)
        total, count = summary[0], summary[1]
    loss = float(total) / float(count)
    if math.isfinite(loss):
        return loss
    finite = torch.isfinite(torch.stack(step_losses))
    bad = torch.tensor(float(first_step + int(finite.long().argmin())) if not finite.all() else math.inf,
                       dtype=torch.float64, device=device)
    if world > 1:  # the NaN may have come from another process's batch
        torch.distributed.all_reduce(bad, torch.distributed.ReduceOp.MIN)
    raise FloatingPointError(f"the DSM loss became {loss} at optimiser step {int(bad)}: lower lr, or check "
                             "the model and the data")


def train_score_model(model, data, sde, *, epochs=None, steps=None, batch_size=128, lr=1e-3, ema=0.999,
                      device="auto", checkpoint=None, resume="strict", progress=True, generator=None, t_range=None, bf16="auto",
                      channels_last="auto", compile=False, stop_after_steps=None):
    r"""Train a score network by denoising score matching, with EMA and resumable checkpoints.

    Minimises with Adam the DSM objective of :func:`~scorefusion.losses.dsm_loss`
    (Song et al. 2021b, Eq. 7, with weighting :math:`\lambda(t) = \mathrm{std}_t^2`;
    the training of the auxiliaries in Liu et al. 2025, Sec. 5),

    .. math::

        \mathcal L(\theta) = \mathbb E_{t \sim U(t_\min, t_\max)}\,\mathbb E_{x_0, z}
        \left\| \mathrm{std}_t\, s_\theta(\mathrm{scale}_t x_0 + \mathrm{std}_t z, t) + z\right\|^2,

    over shuffled mini-batches, and keeps an exponential moving average of the
    weights, :math:`\bar\theta \leftarrow \beta \bar\theta + (1 - \beta)\theta`
    after every step (``torch.optim.swa_utils``; buffers are averaged too).
    The run lasts ``epochs`` full passes over the data or exactly ``steps``
    optimiser steps (the last epoch then stops part-way); give one of the two.

    Reproducibility: every random draw comes from ``generator`` (default: seed
    0). At the start of each epoch it draws the permutation and a seed for the
    epoch's times and noises (on the training device), so the same seed gives
    the same weights on the same device. With ``checkpoint``, the model, EMA,
    optimiser, progress, losses and the RNG states (``generator``, torch's global
    CPU and CUDA generators, as tensors) are written after every epoch,
    atomically (:func:`~scorefusion.cache.save_atomic`: a temporary file in the
    same folder, then ``os.replace``; temporary files of a killed writer are
    removed by the next save or load); a call that finds the file resumes from
    it, so a run killed at any moment and restarted ends with exactly the
    weights of an uninterrupted run. The file is loaded with
    ``torch.load(weights_only=True)``: it runs no code. It carries a
    fingerprint of what the run depends on (n, batch size, world size, lr,
    ema, t_range, the target of a ``steps=`` run, a hash of the data's bytes,
    the SDE, the model's class and parameter shapes); resuming with any of
    them changed is refused, naming the fields, unless ``resume="force"``.

    On CUDA (``device="auto"`` picks it when present): bf16 autocast and
    channels-last memory for images unless disabled, and ``torch.compile`` when
    asked. Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
    DistributedDataParallel (NCCL on CUDA with one GPU per process, Gloo on
    CPU); every process draws the same permutation from ``generator``, padded by
    wrapping around to a multiple of the world size like ``DistributedSampler``,
    and takes every ``world``-th index; every process draws the times and noises
    of the global batch and keeps its rows (:func:`dsm_step`), so that when
    ``world`` divides n the run follows the single-process run with batch size
    ``world * batch_size`` up to floating-point rounding; only rank 0 writes
    checkpoints; the logged loss is the global mean.

    Parameters
    ----------
    model : nn.Module
        Score network ``model(x, t)`` for ``x`` of shape (b, ...) and ``t`` of shape (b,).
    data : Tensor of shape (n, ...)
        Training samples, floating and finite, n >= 1.
    sde : VESDE or VPSDE
    epochs : int, optional
        Number of passes over the data (each process's shard under DDP).
    steps : int, optional
        Number of optimiser steps; exclusive with ``epochs``.
    batch_size : int, default 128
        Samples per step and process.
    lr : float, default 1e-3
        Adam's learning rate, finite and positive.
    ema : float, default 0.999
        EMA decay :math:`\beta` in [0, 1) (0 keeps the last weights).
    device : str or torch.device, default "auto"
    checkpoint : str or path, optional
        File to resume from and save to (its folder is created; a lock file
        ``<checkpoint>.lock`` sits beside it).
    resume : {"strict", "force"}, default "strict"
        What to do with a checkpoint whose fingerprint differs from this run's:
        refuse it, or continue from it (the weights must still fit the model).
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
        Empty or non-finite data, neither or both of ``epochs`` and ``steps``,
        ``epochs``/``steps``/``batch_size`` < 1, ``lr`` not finite and positive,
        ``ema`` outside [0, 1), ``resume`` not "strict" or "force".
    scorefusion.cache.CheckpointError
        (a ValueError) The checkpoint cannot be read (empty, truncated, not a
        torch file, holding objects other than tensors, numbers, strings, lists
        and dicts), is not a training checkpoint, belongs to another run, or is
        past this run's end; the message names the file and what to do.
    FloatingPointError
        The loss became NaN or infinite (the message names the first such step).
    """
    _check_arguments(model, data, sde, epochs, steps, batch_size, lr, ema, generator, checkpoint, resume,
                     stop_after_steps)
    start_time = time.perf_counter()

    # Set up the processes, the device and the precision.
    rank, world, device = _distributed(resolve_device(device))
    use_bf16, memory_format = _precision(device, data, bf16, channels_last)
    fingerprint = None if checkpoint is None else _fingerprint(model, data, sde, world, batch_size, lr, ema, steps,
                                                               t_range)
    model = model.to(device, memory_format=memory_format).train()
    data = data.to(device).contiguous(memory_format=memory_format)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    noise_gen = torch.Generator(device=device)

    # Set up the optimiser, the EMA and the length of the run.
    ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    n = data.shape[0]
    schedule = _schedule(n, batch_size, world, epochs, steps)

    # Resume from the checkpoint, if there is one.
    epoch, step, losses = 0, 0, []
    if checkpoint is not None and Path(checkpoint).exists():
        epoch, step, losses = _resume(checkpoint, fingerprint, resume, schedule, model, ema_model, optimizer,
                                      generator, device)

    # Train.
    net = _wrap(model, world, device, compile)
    bar = tqdm(total=schedule.total_epochs, initial=epoch, disable=not progress or rank != 0, desc="training")
    calls = 0
    while step < schedule.total_steps:
        # every random number of the epoch derives from `generator` at the epoch's start, so a
        # checkpoint written between epochs fixes the rest of the run on every process
        order = _shard(n, generator, rank, world).to(device)
        noise_gen.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))

        # The epoch's steps (the last epoch of a steps= run may stop part-way).
        total = torch.zeros((), dtype=torch.float64, device=device)
        count, first_step, step_losses = 0, step + 1, []
        for begin in range(0, order.numel(), batch_size)[: schedule.total_steps - step]:
            batch = data[order[begin:begin + batch_size]].contiguous(memory_format=memory_format)
            loss = dsm_step(net, model, ema_model, optimizer, batch, sde, t_range, noise_gen, use_bf16, rank,
                            world).detach()
            total += loss.double() * batch.shape[0]
            count += batch.shape[0]
            step_losses.append(loss)
            step, calls = step + 1, calls + 1
            if stop_after_steps is not None and calls >= stop_after_steps:
                raise KeyboardInterrupt(f"stopped after {calls} steps (stop_after_steps)")

        # The epoch's loss (the mean over all processes), then the checkpoint.
        losses.append(_epoch_loss(total, count, step_losses, first_step, world, device))
        epoch += 1
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if checkpoint is not None and rank == 0:
            _save_checkpoint(checkpoint, fingerprint, model, ema_model, optimizer, generator, device, epoch, step, losses)
    bar.close()
    return TrainResult(copy.deepcopy(ema_model.module).eval(), losses, time.perf_counter() - start_time)
