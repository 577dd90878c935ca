"""The steppers: how :func:`~smallbatch.ensemble.train_ensemble` drives one lock-step SGD
step (its ``step_mode``; book: "Lock-step ensembles"). Every mode computes the same run."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import ImageData
from ..train import ConfigError, TrainConfig
from .lockstep import LockstepEnsemble


class _Steps:
    """What every stepper shares: the members' running sums and the masking of members.

    The sums live on the device and are read by the host once per check window
    (``window_loss``) and once per epoch (``epoch_loss``, ``epoch_correct``). A subclass
    sets ``lr`` and ``decay`` (the epoch's per-step, per-member learning rates and decay
    factors) in :meth:`start_epoch`.
    """

    lr: Tensor
    decay: Tensor | None

    def __init__(self, ensemble: LockstepEnsemble, data: ImageData, config: TrainConfig,
                 generators: list[torch.Generator], shared_input: bool, dtype):
        self.ensemble, self.data, self.config = ensemble, data, config
        self.generators, self.shared_input = generators, shared_input
        device, members = ensemble.parameters[0].device, ensemble.members
        self.epoch_loss = torch.zeros(members, device=device, dtype=dtype)
        self.window_loss = torch.zeros(members, device=device, dtype=dtype)
        self.epoch_correct = torch.zeros(members, device=device, dtype=torch.long)

    def _zero_sums(self) -> None:
        for total in (self.epoch_loss, self.window_loss, self.epoch_correct):
            total.zero_()

    def _add_to_sums(self, losses: Tensor, logits: Tensor, y: Tensor) -> None:
        """A step's per-member losses (K,) and its logits' correct predictions of ``y``."""
        self.epoch_loss += losses
        self.window_loss += losses
        self.epoch_correct += (logits.argmax(dim=2) == self.ensemble._targets(y)).sum(dim=0)

    def mask(self, from_step: int, members: list[int]) -> None:
        """Take ``members`` out of the epoch's steps from ``from_step`` on: learning rate 0
        and decay factor 1 leave their weights as they are."""
        self.lr[from_step:, members] = 0.0
        if self.decay is not None:
            self.decay[from_step:, members] = 1.0


class _BatchSteps(_Steps):
    """Steps fed by the data set's batch iterators (any :class:`ImageData`)."""

    def start_epoch(self, lr_table: Tensor, decay_table: Tensor | None) -> None:
        self.lr, self.decay, self.position = lr_table, decay_table, 0
        self._zero_sums()
        config = self.config
        if self.shared_input:
            self.batches = self.data.train_batches(
                config.batch_size, generator=self.generators[0], augment=config.augment)
        else:
            self.batches = self.data.member_batches(
                config.batch_size, generators=self.generators, augment=config.augment)

    def step(self) -> None:
        x, y = next(self.batches)
        i = self.position
        losses, logits = self.ensemble.sgd_step(
            x, y, self.lr[i], None if self.decay is None else self.decay[i])
        self._add_to_sums(losses, logits, y)
        self.position += 1


class _DeviceSteps(_Steps):
    """Steps that never wait for the host: everything a step reads is on the device.

    Per epoch, one copy each puts the members' example indices and augmentation draws
    (:meth:`TensorImageData.epoch_draws`), learning rates and decay factors into
    fixed buffers. A step reads its row through a device counter (``index_select``),
    gathers the batch from the on-device training tensor, takes the SGD step, adds to the
    running sums and advances the counter: the same tensors every step, so on CUDA the
    whole step can be captured once as a graph (``graph=True``) and replayed.
    """

    WARMUP = 3  # eager steps before the capture (cuDNN and the allocator settle)

    def __init__(self, ensemble: LockstepEnsemble, data, config: TrainConfig,
                 generators: list[torch.Generator], shared_input: bool, dtype, steps: int,
                 any_decay: bool, graph: bool):
        super().__init__(ensemble, data, config, generators, shared_input, dtype)
        device, members = ensemble.parameters[0].device, ensemble.members
        draws = 1 if shared_input else members
        width = draws * config.batch_size
        self.index = torch.zeros((steps, width), dtype=torch.long, device=device)
        self.augmentation = None
        if config.augment:
            self.augmentation = (torch.zeros_like(self.index), torch.zeros_like(self.index),
                                 torch.zeros((steps, width), dtype=torch.bool, device=device))
        self.fill = data.pad_fill if config.augment else None
        self.lr = torch.zeros((steps, members), dtype=dtype, device=device)
        self.decay = torch.ones_like(self.lr) if any_decay else None
        self.counter = torch.zeros(1, dtype=torch.long, device=device)
        self.graph = graph
        self._captured = None
        self._eager_steps = 0

    def start_epoch(self, lr_table: Tensor, decay_table: Tensor | None) -> None:
        generators = self.generators[:1] if self.shared_input else self.generators
        index, augmentation = self.data.epoch_draws(self.config.batch_size, generators,
                                                    self.config.augment)
        self.index.copy_(index)
        if augmentation is not None:
            for buffer, values in zip(self.augmentation, augmentation):
                buffer.copy_(values)
        self.lr.copy_(lr_table)
        if self.decay is not None:
            self.decay.copy_(decay_table)
        self.counter.zero_()
        self._zero_sums()

    def _body(self) -> None:
        i = self.counter
        rows = None
        if self.augmentation is not None:
            rows = tuple(a.index_select(0, i).view(-1) for a in self.augmentation)
        x, y = self.data.gather(self.index.index_select(0, i).view(-1), rows, self.fill)
        if not self.shared_input:  # member after member -> (B, K, ...)
            members = self.ensemble.members
            x = x.view(members, -1, *x.shape[1:]).transpose(0, 1)
            y = y.view(members, -1).transpose(0, 1)
        decay = None if self.decay is None else self.decay.index_select(0, i).view(-1)
        losses, logits = self.ensemble.sgd_step(x, y, self.lr.index_select(0, i).view(-1),
                                                decay)
        self._add_to_sums(losses, logits, y)
        self.counter += 1

    def step(self) -> None:
        if not self.graph:
            self._body()
            return
        if self._captured is not None:
            self._captured.replay()
            return
        if self._eager_steps < self.WARMUP:  # real steps, on a side stream
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self._body()
            torch.cuda.current_stream().wait_stream(stream)
            self._eager_steps += 1
            return
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # recorded, not run: the replay below runs it
            self._body()
        self._captured = graph
        graph.replay()


def _make_stepper(mode: str, ensemble: LockstepEnsemble, data: ImageData, config: TrainConfig,
                  generators: list[torch.Generator], *, shared_input: bool, steps: int,
                  dtype, any_decay: bool):
    """The stepper for ``mode`` (see :func:`train_ensemble`'s ``step_mode``)."""
    device = ensemble.parameters[0].device
    in_memory = hasattr(data, "epoch_draws")
    if mode == "auto":
        # The captured step is tested for equality and for syncs on CUDA where a GPU is
        # present, but its speed has not been measured yet (benchmarks/small_batch_cuda.py
        # does): until it is, "auto" keeps the batch iterators everywhere.
        mode = "batches"
    if mode == "batches":
        return _BatchSteps(ensemble, data, config, generators, shared_input, dtype)
    if not in_memory:
        raise ConfigError(f"step mode {mode!r} needs a data set held in memory on the "
                          f"device ({type(data).__name__} streams from disk); use "
                          "step_mode='batches'")
    if mode == "graph" and device.type != "cuda":
        raise ConfigError(f"step mode 'graph' captures the step as a CUDA graph; the device "
                          f"is {device}. Use 'device' (the same step, not captured) or "
                          "'batches'")
    return _DeviceSteps(ensemble, data, config, generators, shared_input, dtype, steps,
                        any_decay, graph=mode == "graph")
