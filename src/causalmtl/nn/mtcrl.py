"""MT-CRL's modular architecture: K disentangled modules routed by a learned task-to-module graph.

Implements §3.1 of Hu, Zhao, Yi, Yao, Hong, Sun & Chi, *Improving Multi-Task Generalization
via Regularizing Spurious Correlation* (NeurIPS 2022):

* K neural modules Φ_1..Φ_K (any encoder), each producing ``Z_i = Φ_i(X) ∈ R^{B × d/K}`` so
  that the total width ``d`` stays that of a single shared encoder (Appendix E: d = 128 and
  K = 8 by default; K must divide d);
* a learnable θ ∈ R^{T × K} and the biadjacency matrix ``A = sigmoid(θ) ∈ [0, 1]^{T × K}``
  (unlike MMoE's per-example softmax gates, several modules can be fully used by a task);
* per-task predictors ``Ŷ_t = f_t(Σ_i A_{t,i} Φ_i(X))``.

**Routing: ``"concat"`` (default) or ``"sum"``.** §3.1 writes ``Σ_i A_{t,i} Φ_i(X)`` with every
``Z_i`` of width d; Appendix E keeps the total width fixed at d = 128 with modules of width d/K.
Read literally together, a sum of d/K-wide modules leaves each task a d/K-dimensional input
(16 at K = 8, a single number at K = 128, where Table 11 still reports 0.882 accuracy on
10-class digits). ``routing="concat"`` gives task t the weighted modules side by side,
``[A_{t,1} Z_1, …, A_{t,K} Z_K]`` of width d — the same linear map as the sum of the modules
zero-padded to width d, and the reading under which K trades disentanglement against capacity
as Table 11 describes. ``routing="sum"`` is the literal Eq. above. Measured (docs/mtcrl.md):
concat lifts MT-CRL's pair-disjoint accuracy on the quickstart from 0.794 to 0.882 and on real
Multi-MNIST from 0.753 to 0.793 (2 seeds).

The module outputs ``Z``, the graph ``A`` and the routed representations are returned in
``ModelOutput.extra`` so that the regularisers of :mod:`causalmtl.methods.mtcrl.regularizers`
need one forward pass; :meth:`MTCRLNet.predict_from_mixed` can run the predictors with their
parameters detached, which G-IRM (Eq. 7–9) needs (f_t held fixed).

Optional β-VAE parts (Table 3's "β-VAE instead of L_decor" ablation; Higgins et al., ICLR 2017):
with ``vae_input_shape`` set, each module gets a variational head ``h_i ↦ (μ_i, log σ_i²)`` of
the module width, the modules' representation becomes ``z_i = μ_i + σ_i ⊙ ε`` (ε ~ N(0, I)) in
training mode and ``z_i = μ_i`` in evaluation mode, and a light MLP decoder maps the
concatenated ``z`` back to the flattened input. Without it (the default) none of these
parameters exist and the model is exactly the plain MT-CRL network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..data.base import Task
from .base import ModelInput, ModelOutput, MultiTaskModel
from .dense import check_map_tasks, finish_output, is_map_encoder, make_map_head, spatial_size

__all__ = ["MTCRLNet", "module_width"]

EncoderFactory = Callable[[int], nn.Module]
HeadFactory = Callable[[int, int], nn.Module]


def module_width(width: int, n_modules: int) -> int:
    """Output width ``d / K`` of each module; raises unless ``K >= 1`` divides ``d``.

    Examples
    --------
    >>> module_width(128, 8)
    16
    """
    if isinstance(n_modules, bool) or not isinstance(n_modules, int) or n_modules < 1:
        raise ValueError(f"n_modules must be an int >= 1 (the number K of modules), got {n_modules!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an int >= 1 (the total representation width d), got {width!r}")
    if width % n_modules:
        divisors = [k for k in range(1, width + 1) if width % k == 0]
        raise ValueError(
            f"n_modules={n_modules} does not divide width={width}: each of the K modules outputs "
            f"width/K dimensions (Appendix E keeps the total width fixed); choose K among "
            f"{divisors} or change width"
        )
    return width // n_modules


def _head_out_dim(task: Task) -> int:
    return task.n_classes if task.kind == "classification" else 1


class MTCRLNet(MultiTaskModel):
    """K modules, a learned task-to-module graph and per-task predictors (MT-CRL, §3.1).

    Parameters
    ----------
    encoder : callable ``out_dim -> nn.Module``, a sequence of K modules, or one map encoder
        (``out_channels == width``) whose channels are split into K groups of ``width // K``
        (the modules then share the encoder's parameters; cheaper than K sub-networks)
        A factory called K times with ``out_dim = width // n_modules``; each module maps the
        input batch to ``(B, out_dim)``. Alternatively K ready-made modules (``n_modules``
        then defaults to their number; each must output ``width // K`` columns).
    tasks : sequence of T :class:`~causalmtl.data.base.Task`
    n_modules : int, default 8 (the paper's K)
        Must divide ``width`` (a ``ValueError`` lists the valid K otherwise).
    width : int, default 128 (the paper's d)
        Total representation width; each module outputs ``width // n_modules`` dimensions.
    head : callable ``(task_index, in_dim) -> nn.Module``, optional
        Builds the predictor ``f_t`` from the routed representation (width ``width`` with
        ``routing="concat"``, ``width // K`` with ``routing="sum"``) to
        ``C_t`` logits (classification) or 1 value (regression). Default ``nn.Linear`` (the
        paper's "one-layer MLP as per-task predictor", Appendix C.2).
    graph_init : float, default 0.0
        Initial value of every θ entry (A starts at ``sigmoid(graph_init)`` = 0.5).
    routing : {"concat", "sum"}, default "concat"
        How a task combines its weighted modules (see the module docstring): side by side
        (width d) or summed (width d/K, §3.1 literally).
    vae_input_shape : int or sequence of int, optional
        Shape of one input example (e.g. ``(1, 8, 16)``); builds the β-VAE parts (a variational
        head per module and a decoder to ``prod(vae_input_shape)`` values) that
        :class:`~causalmtl.methods.mtcrl.MTCRL` uses with ``disentangle="beta_vae"``. Default
        ``None``: no β-VAE parameters at all (plain MT-CRL, unchanged state dict).
    vae_hidden : int, default 256
        Hidden width of the one-hidden-layer (ReLU) decoder; used only with ``vae_input_shape``.
    feature_maps : bool, optional
        Whether the modules return feature maps ``(B, d/K, h, w)`` instead of vectors (default:
        detected, :func:`~causalmtl.nn.dense.is_map_encoder` of the first module — a factory
        ``lambda c: SegNet(...)`` wrapped to ``c`` channels, or ``lambda c: nn.Conv2d(3, c, 3)``).
        Module *i* is then a sub-network producing a ``d/K``-channel map (a channel group of a
        ``d``-channel representation), ``A`` routes maps (``"concat"``: the task's weighted
        channel groups side by side, ``(B, d, h, w)``; ``"sum"``: ``(B, d/K, h, w)``), scalar
        tasks get a pooled head and segmentation / dense tasks a conv head
        (:mod:`causalmtl.nn.dense`), outputs are at the input resolution and ``features`` is
        the pooled module maps ``(B, d)``. ``extra["z"]`` is ``(B, K, d/K, h, w)``; the
        decorrelation of Eq. (1)–(2) then correlates module channels over batch × pixels
        (:func:`~causalmtl.methods.mtcrl.regularizers.decorrelation_penalty`, docs/mtcrl.md).
    dense_hidden, decoder : map heads (defaults only), as in :class:`~causalmtl.nn.SharedTrunk`

    Notes
    -----
    Outputs follow :class:`~causalmtl.nn.base.MultiTaskModel`: log-probabilities ``(B, C_t)``
    for classification, ``(B,)`` for regression. ``forward_full(x).extra`` holds ``"z"``
    ``(B, K, d/K)``, ``"graph"`` ``(T, K)`` and ``"mixed"`` ``(B, T, d)`` (``(B, T, d/K)`` with
    ``routing="sum"``); ``features`` is
    ``z`` flattened to ``(B, d)``. θ is stored as one parameter row per task
    (``theta_rows[t]``), so :meth:`task_parameters` of task ``t`` are its head and its graph
    row — both influence task ``t`` only.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from causalmtl.data import Task
    >>> tasks = [Task("digit", "classification", 3), Task("age", "regression")]
    >>> net = MTCRLNet(lambda d: nn.Linear(10, d), tasks, n_modules=4, width=32)
    >>> [tuple(o.shape) for o in net(torch.randn(5, 10))]
    [(5, 3), (5,)]
    >>> tuple(net.graph.shape), float(net.graph.detach()[0, 0])
    ((2, 4), 0.5)
    """

    def __init__(
        self,
        encoder: EncoderFactory | Sequence[nn.Module],
        tasks: Sequence[Task],
        *,
        n_modules: int | None = None,
        width: int = 128,
        head: HeadFactory | None = None,
        graph_init: float = 0.0,
        routing: str = "concat",
        vae_input_shape: int | Sequence[int] | None = None,
        vae_hidden: int = 256,
        feature_maps: bool | None = None,
        dense_hidden: Sequence[int] | None = None,
        decoder: str = "conv",
    ) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        if len(self.tasks) == 0 or not all(isinstance(t, Task) for t in self.tasks):
            raise ValueError(f"tasks must be a non-empty sequence of Task, got {tasks!r}")
        single = encoder if isinstance(encoder, nn.Module) and is_map_encoder(encoder) else None
        self.channel_groups = single is not None
        if single is not None:
            # one shared map encoder of `width` channels, split into K channel groups (the modules)
            if getattr(encoder, "out_channels", None) != width:
                raise ValueError(
                    f"a single map encoder is split into K channel groups, so its out_channels "
                    f"({getattr(encoder, 'out_channels', None)}) must equal width={width}"
                )
            encoder = [single]
        elif isinstance(encoder, nn.Module) or not (callable(encoder) or isinstance(encoder, Sequence)):
            raise ValueError(
                "encoder must be a factory out_dim -> nn.Module or a sequence of K nn.Modules, "
                f"got {type(encoder).__name__}"
            )
        if callable(encoder):
            k = 8 if n_modules is None else n_modules
            self.module_dim = module_width(width, k)
            mods = [encoder(self.module_dim) for _ in range(k)]
            what = "the encoder factory returned"
        elif self.channel_groups:
            mods = list(encoder)
            k = 8 if n_modules is None else n_modules
            self.module_dim = module_width(width, k)
            what = "encoder is"
        else:
            mods = list(encoder)
            k = len(mods) if n_modules is None else n_modules
            if len(mods) != k:
                raise ValueError(f"encoder gives {len(mods)} modules but n_modules={n_modules}; they must agree")
            self.module_dim = module_width(width, k)
            what = "encoder holds"
        bad = [i for i, m in enumerate(mods) if not isinstance(m, nn.Module)]
        if bad:
            raise ValueError(f"{what} a {type(mods[bad[0]]).__name__} for module {bad[0]}, expected nn.Module")
        if routing not in ("concat", "sum"):
            raise ValueError(f"routing must be 'concat' or 'sum' (how a task combines its weighted modules), "
                             f"got {routing!r}")
        self.routing = routing
        self.n_modules = k
        self.width = width
        self.feature_dim = width
        self.routed_dim = width if routing == "concat" else self.module_dim
        self.encoders = nn.ModuleList(mods)
        self.feature_maps = is_map_encoder(mods[0]) if feature_maps is None else bool(feature_maps)
        check_map_tasks(self.tasks, self.feature_maps, "MTCRLNet")
        self._out_size: tuple[int, int] | None = None
        if self.feature_maps and vae_input_shape is not None:
            raise ValueError("vae_input_shape (the β-VAE ablation) is not supported with feature-map modules")
        if head is None and self.feature_maps:
            heads = [make_map_head(self.routed_dim, t, (), dense_hidden, decoder) for t in self.tasks]
        elif head is None:
            heads = [nn.Linear(self.routed_dim, _head_out_dim(t)) for t in self.tasks]
        else:
            heads = [head(t, self.routed_dim) for t in range(len(self.tasks))]
        self.heads = nn.ModuleList(heads)
        self.theta_rows = nn.ParameterList(
            [nn.Parameter(torch.full((k,), float(graph_init))) for _ in self.tasks]
        )
        self.vae_input_shape: tuple[int, ...] | None = None
        self.vae_hidden = vae_hidden
        if vae_input_shape is not None:
            self._build_vae(vae_input_shape, vae_hidden)

    def _build_vae(self, shape: int | Sequence[int], hidden: int) -> None:
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(dims) == 0 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
            raise ValueError(
                f"vae_input_shape must be a positive int or a non-empty sequence of positive ints "
                f"(the shape of one input example, e.g. (1, 28, 28)), got {shape!r}"
            )
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"vae_hidden must be an int >= 1 (decoder hidden width), got {hidden!r}")
        m = self.module_dim
        self.vae_input_shape = dims
        # one variational head per module: h_i -> (μ_i, log σ_i²), each of the module width
        self.vae_heads = nn.ModuleList([nn.Linear(m, 2 * m) for _ in range(self.n_modules)])
        self.decoder = nn.Sequential(
            nn.Linear(self.n_modules * m, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(dims))
        )

    @property
    def is_variational(self) -> bool:
        """Whether the β-VAE parts (variational heads and decoder) exist."""
        return self.vae_input_shape is not None

    # --- the graph ----------------------------------------------------------------------
    @property
    def theta(self) -> Tensor:
        """θ ``(T, K)`` (a differentiable stack of :attr:`theta_rows`)."""
        return torch.stack(list(self.theta_rows))

    @property
    def graph(self) -> Tensor:
        """The biadjacency matrix ``A = sigmoid(θ)``, shape ``(T, K)`` (differentiable)."""
        return torch.sigmoid(self.theta)

    def task_parameters(self, t: int) -> list[nn.Parameter]:
        """Task ``t``'s head and its graph row θ_t (nothing else influences task t only)."""
        return super().task_parameters(t) + [self.theta_rows[t]]

    # --- pieces -------------------------------------------------------------------------
    def module_outputs(self, x: ModelInput) -> Tensor:
        """Raw module outputs ``h_i = Φ_i(x)`` stacked as ``(B, K, d/K)``."""
        if self.channel_groups:
            h = self.encoders[0](x)
            if h.dim() != 4 or h.shape[1] != self.width:
                raise ValueError(f"the shared map encoder must output (B, {self.width}, h, w), got {tuple(h.shape)}")
            self._out_size = spatial_size(x)
            result: Tensor = h.reshape(h.shape[0], self.n_modules, self.module_dim, *h.shape[-2:])
            return result
        zs = [enc(x) for enc in self.encoders]
        if self.feature_maps:
            if not all(zi.dim() == 4 and zi.shape[1] == self.module_dim and zi.shape[2:] == zs[0].shape[2:]
                       for zi in zs):
                shapes = [tuple(zi.shape) for zi in zs]
                raise ValueError(f"every module must output (B, {self.module_dim}, h, w) = (B, width/K, h, w) "
                                 f"maps of one size; got {shapes}")
            self._out_size = spatial_size(x)  # the resolution map outputs are resized to
            return torch.stack(zs, dim=1)
        if not all(zi.dim() == 2 and zi.shape[1] == self.module_dim for zi in zs):
            shapes = [tuple(zi.shape) for zi in zs]
            raise ValueError(f"every module must output (B, {self.module_dim}) = (B, width/K); got {shapes}")
        return torch.stack(zs, dim=1)

    def encode(self, x: ModelInput) -> Tensor:
        """Module representations ``Z_i`` stacked as ``(B, K, d/K)``.

        ``Z_i = Φ_i(x)`` for the plain network; with the β-VAE parts, ``Z_i`` is a draw
        ``μ_i + σ_i ⊙ ε`` in training mode and ``μ_i`` in evaluation mode (see
        :meth:`encode_variational`).
        """
        h = self.module_outputs(x)
        if not self.is_variational:
            return h
        mu, logvar = self.posterior(h)
        return self.reparameterize(mu, logvar) if self.training else mu

    def posterior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of ``q(z_i | x)`` from module outputs ``h`` ``(B, K, m)``.

        Returns two tensors ``(B, K, m)``. Needs ``vae_input_shape``.
        """
        if not self.is_variational:
            raise ValueError("posterior needs the β-VAE parts: build MTCRLNet with vae_input_shape=...")
        out = torch.stack([head(h[:, i]) for i, head in enumerate(self.vae_heads)], dim=1)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``z = μ + exp(½ log σ²) ⊙ ε`` with ``ε ~ N(0, I)`` (Kingma & Welling 2014).

        ε is drawn from ``generator`` if given, else from torch's default generator, which the
        :class:`~causalmtl.train.Trainer` seeds for each run (as it does for dropout).
        """
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def encode_variational(
        self, x: ModelInput, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, μ, log σ²)``, each ``(B, K, m)``; ``z`` is a draw in training mode, ``μ`` in eval."""
        mu, logvar = self.posterior(self.module_outputs(x))
        z = self.reparameterize(mu, logvar, generator) if self.training else mu
        return z, mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Reconstruction ``x̂ = g(concat_i z_i)`` of shape ``(B, *vae_input_shape)``."""
        shape = self.vae_input_shape
        if not self.is_variational or shape is None:
            raise ValueError("decode needs the β-VAE parts: build MTCRLNet with vae_input_shape=...")
        flat = self.decoder(z.reshape(z.shape[0], -1))
        result: Tensor = flat.reshape(z.shape[0], *shape)
        return result

    def mix(self, z: Tensor, graph: Tensor) -> Tensor:
        """Routed representations of all tasks at once, ``(B, T, routed_dim)``.

        ``routing="concat"``: ``[A_{t,1} Z_1, …, A_{t,K} Z_K]`` (width d); ``routing="sum"``:
        ``Σ_i A_{t,i} Z_i`` (width d/K). ``graph`` is ``(T, K)`` or, to give each row its own
        copy of the graph (one copy per environment, as G-IRM needs), ``(B, T, K)``.
        """
        if self.feature_maps:  # z (B, K, m, h, w): the same weights on every pixel of a module's map
            if self.routing == "sum":
                eq = "tk,bkmhw->btmhw" if graph.dim() == 2 else "btk,bkmhw->btmhw"
                return torch.einsum(eq, graph, z)
            routed = graph[..., None, None, None] * z[:, None]  # (B, T, K, m, h, w)
            return routed.reshape(z.shape[0], graph.shape[-2], -1, *z.shape[-2:])
        if self.routing == "sum":
            if graph.dim() == 2:
                return torch.einsum("tk,bkm->btm", graph, z)
            return torch.einsum("btk,bkm->btm", graph, z)
        routed = graph[..., None] * z[:, None]  # (T, K, 1) or (B, T, K, 1) times (B, 1, K, m)
        return routed.reshape(z.shape[0], graph.shape[-2], -1)

    def predict_from_mixed(self, mixed: Tensor, detach_heads: bool = False,
                           size: tuple[int, int] | None = None) -> list[Tensor]:
        """Task outputs ``f_t(mixed[:, t])`` (log-probabilities, or ``(B,)`` for regression).

        With ``detach_heads=True`` every ``f_t`` runs on detached copies of its parameters:
        gradients still reach ``mixed`` (hence Φ and A) but never the parameters of ``f``,
        as G-IRM requires ("we only calculate gradient and optimize for Φ and A, but not
        updating f_t", §3.2). With feature-map modules, map outputs are resized to ``size``
        (default: the input size of the last :meth:`encode` call).
        """
        outs = []
        for t, (task, head) in enumerate(zip(self.tasks, self.heads)):
            if detach_heads:
                state = {n: p.detach() for n, p in head.named_parameters()}
                state.update(dict(head.named_buffers()))
                out = functional_call(head, state, (mixed[:, t],))
            else:
                out = head(mixed[:, t])
            if self.feature_maps:
                outs.append(finish_output(out, task, size if size is not None else self._out_size))
            elif task.kind == "classification":
                outs.append(torch.log_softmax(out, dim=-1))
            else:
                outs.append(out.reshape(out.shape[0]))
        return outs

    # --- forward ------------------------------------------------------------------------
    def forward_full(self, x: ModelInput) -> ModelOutput:
        """Outputs plus ``extra = {"z", "graph", "mixed"}`` and ``features`` = flat ``z``."""
        z = self.encode(x)
        graph = self.graph
        mixed = self.mix(z, graph)
        return ModelOutput(
            outputs=self.predict_from_mixed(mixed),
            features=(z.mean(dim=(-2, -1)) if self.feature_maps else z).reshape(z.shape[0], -1),
            extra={"z": z, "graph": graph, "mixed": mixed},
        )

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg.update(n_modules=self.n_modules, width=self.width, routing=self.routing)
        if self.feature_maps:
            cfg.update(feature_maps=True)
        if self.is_variational:
            cfg.update(vae_input_shape=list(self.vae_input_shape or ()), vae_hidden=self.vae_hidden)
        return cfg
