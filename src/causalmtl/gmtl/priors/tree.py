"""Tree-structured joint priors for GMTL with many tasks (Chow & Liu 1968).

GMTL (Makino et al. 2022, Eq. 6) needs the joint prior ``p(y_1, …, y_T)``. Counting the full
table (§3.2) costs ``Π_t C_t`` cells, which is hopeless beyond ~20 tasks ("the primary
challenge in scaling GMTL to a larger number of tasks", §3.2). A *tree-structured* prior keeps
the pairwise dependencies along the edges E of a spanning tree (or forest) over the tasks:

    p(y) = Π_{(s,t)∈E} p(y_s, y_t)  /  Π_s p(y_s)^(deg_s − 1)                          (T1)

    log p(y) = Σ_{(s,t)∈E} log p(y_s, y_t) − Σ_s (deg_s − 1) log p(y_s).

Its log-probability splits into the marginals' part and the dependence part used by the
split-α GMTL objective (:mod:`causalmtl.gmtl.decoding.structured`):

    log p(y) = Σ_s log p(y_s) + Σ_{(s,t)∈E} PMI_st(y_s, y_t),
    PMI_st(a, b) = log p(a, b) − log p(a) − log p(b).                                 (T2)

Structure learning (Chow–Liu): the tree maximising the likelihood is the maximum spanning
tree of the pairwise empirical mutual information

    I(s; t) = Σ_{a,b} p̂(a, b) log( p̂(a, b) / (p̂(a) p̂(b)) ).                            (T3)

``p̂`` is computed on the fully-labelled rows (``missing="complete"``) or on each pair's
co-labelled rows (``missing="pairwise"``, the default; identical without missing labels).
Pairs that are never labelled together are not candidate edges. With ``threshold`` the edges
with ``I < threshold`` (nats) are dropped, giving a forest.

Smoothing (consistent by construction)
--------------------------------------
Each connected component is rooted at its lowest-index task and the prior is stored through
the directed factorisation ``p(y) = p(y_root) Π_t p(y_t | y_parent(t))``, which is always
normalised. With pseudocount ε:

    p(y_r = a)          = (n_r(a) + ε) / (n_r + C_r ε)
    p(y_t = b | y_s = a) = (n_st(a, b) + ε) / (n_st(a, ·) + C_t ε)                     (T4)

The node and edge marginals stored in :attr:`TreePrior.node_probs` and
:attr:`TreePrior.pair_probs` are propagated from these, so they are mutually consistent and
(T1) holds exactly. With ε → 0 this is the maximum-likelihood tree distribution, which does not
depend on the choice of roots. ``pseudocount=0`` is refused when some edge cell (or a root's
class) was never observed, since ``log p(y)`` would be ``-inf`` there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np

from ..._validation import (
    as_float,
    as_int,
    check_labels,
    check_n_classes,
    check_probability_vector,
    make_rng,
    require_number,
)
from .prior import JointPrior, as_prior

logger = logging.getLogger(__name__)

#: The ``format`` entry of files written by :meth:`TreePrior.save`.
FORMAT = "causalmtl.TreePrior/1"
#: Largest number of joint cells for which the flattened table is built (4,194,304 = 32 MB).
MAX_TABLE_SIZE = 2**22

Edge = tuple[int, int]


# ---------------------------------------------------------------------------------------------
# structure helpers
# ---------------------------------------------------------------------------------------------
def check_forest(edges: Any, n_tasks: int, name: str = "edges") -> tuple[Edge, ...]:
    """Validate an edge list as a forest over the tasks ``0 … n_tasks-1``.

    Returns the edges normalised to ``(min, max)`` and sorted. Raises ``ValueError`` naming
    the offending edge: a malformed pair, a task outside ``[0, n_tasks)``, a self-loop, a
    duplicate, or the edge that closes a cycle.

    Examples
    --------
    >>> check_forest([(2, 1), (0, 1)], n_tasks=3)
    ((0, 1), (1, 2))
    >>> check_forest([(0, 1), (1, 2), (2, 0)], n_tasks=3)
    Traceback (most recent call last):
    ...
    ValueError: edges[2] = (2, 0) closes a cycle (tasks 2 and 0 are already connected); a tree or forest over the tasks is expected
    """
    if isinstance(edges, np.ndarray):
        edges = edges.tolist()
    try:
        items = list(edges)
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of (s, t) task pairs, got {edges!r}") from exc
    parent = list(range(n_tasks))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    seen: set[Edge] = set()
    out: list[Edge] = []
    for i, e in enumerate(items):
        try:
            pair = tuple(e)
        except TypeError:
            pair = ()
        if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
            raise ValueError(f"{name}[{i}] = {e!r} is not a pair of task indices (s, t)")
        s, t = int(pair[0]), int(pair[1])
        for v in (s, t):
            if not 0 <= v < n_tasks:
                raise ValueError(
                    f"{name}[{i}] = ({s}, {t}) names task {v}, outside [0, {n_tasks}) "
                    f"for {n_tasks} tasks"
                )
        if s == t:
            raise ValueError(f"{name}[{i}] = ({s}, {t}) is a self-loop; an edge joins two tasks")
        key = (min(s, t), max(s, t))
        if key in seen:
            raise ValueError(f"{name}[{i}] = ({s}, {t}) is a duplicate of an earlier edge")
        rs, rt = find(s), find(t)
        if rs == rt:
            raise ValueError(
                f"{name}[{i}] = ({s}, {t}) closes a cycle (tasks {s} and {t} are already "
                "connected); a tree or forest over the tasks is expected"
            )
        parent[rs] = rt
        seen.add(key)
        out.append(key)
    return tuple(sorted(out))


@dataclass(frozen=True)
class RootedTree:
    """Rooted orientation of a forest: BFS order from the lowest-index task of each component.

    :attr:`TreePrior.rooted` holds it; the tree kernel (:func:`causalmtl.gmtl.decoding.tree_infer.decode_tree`)
    collects messages leaves → roots in reverse ``order`` and sends them back in ``order``."""

    order: tuple[int, ...]  # every task, parents before children
    parent: tuple[int, ...]  # parent task, -1 for roots
    parent_edge: tuple[int, ...]  # index into edges of (parent, t), -1 for roots
    children: tuple[tuple[int, ...], ...]


def _root_forest(edges: Sequence[Edge], n_tasks: int) -> RootedTree:
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n_tasks)]
    for i, (s, t) in enumerate(edges):
        adj[s].append((t, i))
        adj[t].append((s, i))
    parent = [-2] * n_tasks
    parent_edge = [-1] * n_tasks
    order: list[int] = []
    for r in range(n_tasks):
        if parent[r] != -2:
            continue
        parent[r] = -1
        queue = [r]
        while queue:
            s = queue.pop(0)
            order.append(s)
            for t, i in sorted(adj[s]):
                if parent[t] == -2:
                    parent[t], parent_edge[t] = s, i
                    queue.append(t)
    children = tuple(tuple(t for t in order if parent[t] == s) for s in range(n_tasks))
    return RootedTree(tuple(order), tuple(parent), tuple(parent_edge), children)


def _one_hot_counts(lab: np.ndarray, n_classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """All pairwise co-occurrence counts at once: ``O^T O`` for the one-hot matrix ``O``.

    Missing labels give an all-zero block, so the block (s, t) counts exactly the rows where
    both s and t are labelled. Returns (counts (ΣC, ΣC), offsets (T+1,)).
    """
    offsets = np.concatenate([[0], np.cumsum(n_classes)])
    total = int(offsets[-1])
    counts = np.zeros((total, total))
    chunk = 65536
    for start in range(0, lab.shape[0], chunk):
        part = lab[start : start + chunk]
        onehot = np.zeros((part.shape[0], total))
        rows, cols = np.nonzero(part >= 0)
        onehot[rows, offsets[cols] + part[rows, cols]] = 1.0
        counts += onehot.T @ onehot
    return counts, offsets


def _mutual_information(joint_counts: np.ndarray) -> float:
    """Plug-in mutual information (T3) in nats of a table of counts (0 for an empty table)."""
    n = joint_counts.sum()
    if n <= 0:
        return 0.0
    p = joint_counts / n
    ps = p.sum(axis=1, keepdims=True)
    pt = p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / (ps @ pt)[nz])))


def chow_liu_edges(
    mutual_info: np.ndarray, threshold: float | None = None
) -> tuple[Edge, ...]:
    """Maximum spanning tree (forest) of a symmetric mutual-information matrix.

    Uses ``networkx.maximum_spanning_tree`` (Kruskal). Entries that are NaN mark pairs with no
    data; they are not candidate edges. With ``threshold`` the edges with ``I < threshold``
    are dropped (a maximum spanning forest).
    """
    import networkx as nx

    mi = np.asarray(mutual_info, dtype=np.float64)
    n_tasks = mi.shape[0]
    graph = nx.Graph()
    graph.add_nodes_from(range(n_tasks))
    for s in range(n_tasks):
        for t in range(s + 1, n_tasks):
            if np.isfinite(mi[s, t]):
                graph.add_edge(s, t, weight=float(mi[s, t]))
    tree = nx.maximum_spanning_tree(graph, algorithm="kruskal")
    edges = [
        (min(s, t), max(s, t))
        for s, t, w in tree.edges(data="weight")
        if threshold is None or w >= threshold
    ]
    return tuple(sorted(edges))


def random_tree_edges(n_tasks: int, seed: int | np.random.Generator | None = 0) -> tuple[Edge, ...]:
    """A random labelled spanning tree (random recursive tree on shuffled task labels)."""
    rng = make_rng(seed)
    perm = rng.permutation(n_tasks)
    edges = []
    for i in range(1, n_tasks):
        j = int(rng.integers(0, i))
        a, b = int(perm[i]), int(perm[j])
        edges.append((min(a, b), max(a, b)))
    return tuple(sorted(edges))


# ---------------------------------------------------------------------------------------------
# the prior
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TreePrior:
    """A tree- (or forest-) structured joint prior over the labels of T categorical tasks.

    Build it with :meth:`fit` (Chow–Liu, forest by threshold, or a user-given tree),
    :meth:`from_marginals`, :meth:`from_joint` or :meth:`random`, not directly. It is a
    drop-in prior for :func:`causalmtl.gmtl.gmtl_decode` (exact max-product / sum-product on the
    tree, see :mod:`causalmtl.gmtl.decoding.decode`) and exposes the same views as
    :class:`~causalmtl.gmtl.JointPrior` (``n_classes``, ``marginal(t)``, ``n_fitted``, and the
    flattened ``probs`` / ``log_prob`` when ``Π C_t <= MAX_TABLE_SIZE``).

    Attributes
    ----------
    n_classes : tuple of int
    edges : tuple of (s, t) with s < t, sorted
    pair_probs : tuple of arrays, ``pair_probs[i]`` is ``p(y_s, y_t)`` of shape ``(C_s, C_t)``
    node_probs : tuple of arrays, ``node_probs[t]`` is ``p(y_t)``
    pseudocount : float
    n_fitted : int
        Rows with at least one label that were used (0 when not fitted from labels).
    mutual_info : ndarray ``(T, T)`` or None
        The pairwise mutual information (nats) the structure was learned from (NaN: no data).

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.gmtl import TreePrior
    >>> labels = np.array([[0, 0, 1], [1, 1, 1], [1, 1, 0], [0, 0, 0]])
    >>> prior = TreePrior.fit(labels, n_classes=(2, 2, 2), pseudocount=0.5)
    >>> prior.edges
    ((0, 1), (0, 2))
    >>> bool(np.isclose(np.exp(prior.log_pmf([[1, 1, 1]]))[0], prior.probs[1, 1, 1]))
    True
    """

    n_classes: tuple[int, ...]
    edges: tuple[Edge, ...]
    pair_probs: tuple[np.ndarray, ...]
    node_probs: tuple[np.ndarray, ...]
    pseudocount: float = 0.0
    n_fitted: int = 0
    mutual_info: np.ndarray | None = None
    _rooted: RootedTree | None = field(default=None, repr=False)  # computed in __post_init__
    #: The decoding kernel this prior is decoded with by default (:class:`~causalmtl.gmtl.priors.prior.Prior`).
    structure: ClassVar[str] = "tree"

    def __post_init__(self) -> None:
        if self._rooted is None:
            object.__setattr__(self, "_rooted", _root_forest(self.edges, len(self.n_classes)))

    @property
    def rooted(self) -> RootedTree:
        """The forest oriented from the lowest-index task of each component (BFS order), along
        which the tree kernel (:mod:`causalmtl.gmtl.decoding.tree_infer`) passes messages."""
        return self._rooted if self._rooted is not None else _root_forest(self.edges, len(self.n_classes))

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        labels: Any,
        n_classes: Sequence[int],
        pseudocount: float = 1.0,
        *,
        edges: Sequence[Edge] | None = None,
        threshold: float | None = None,
        missing: str = "pairwise",
    ) -> TreePrior:
        """Learn a Chow–Liu tree (T3), a forest (``threshold``) or fit a given tree (``edges``).

        Parameters
        ----------
        labels : int array ``(N, T)``, ``-1`` where a label is missing
        n_classes : classes per task (each ≥ 2)
        pseudocount : ε ≥ 0 of the smoothing (T4); 0 is refused when an edge cell or a root
            class was never observed
        edges : user-given tree or forest (pairs of task indices); validated by
            :func:`check_forest`. Default: learned by Chow–Liu.
        threshold : drop learned edges with mutual information below this many nats
        missing : ``"pairwise"`` (each pair's co-labelled rows, each task's labelled rows) or
            ``"complete"`` (only fully-labelled rows, as the full-table prior)

        Raises
        ------
        ValueError
            Bad labels, a task with fewer than two classes, a negative/non-finite
            pseudocount, pseudocount 0 with an unseen edge cell, a negative threshold,
            ``edges`` together with ``threshold``, or ``edges`` that are not a forest.
        """
        n_classes = check_n_classes(n_classes)
        lab = check_labels(labels, n_classes)
        eps = as_float(pseudocount, "pseudocount", low=0)
        if missing not in ("pairwise", "complete"):
            raise ValueError(f"missing must be 'pairwise' or 'complete', got {missing!r}")
        if threshold is not None:
            if edges is not None:
                raise ValueError("give either edges (a fixed tree) or threshold (learned forest), not both")
            require_number(threshold, "threshold", "a finite number of nats >= 0")
            if not np.isfinite(float(threshold)) or float(threshold) < 0:
                raise ValueError(f"threshold must be a finite number of nats >= 0, got {threshold!r}")
        T = len(n_classes)
        if missing == "complete":
            lab = lab[(lab >= 0).all(axis=1)]
        used = int((lab >= 0).any(axis=1).sum())
        counts, off = _one_hot_counts(lab, n_classes)

        def block(s: int, t: int) -> np.ndarray:
            return counts[off[s] : off[s + 1], off[t] : off[t + 1]]

        mi = np.full((T, T), np.nan)
        for s in range(T):
            for t in range(s + 1, T):
                b = block(s, t)
                if b.sum() > 0:
                    mi[s, t] = mi[t, s] = _mutual_information(b)
        if edges is None:
            tree_edges = chow_liu_edges(mi, threshold)
            logger.info("Chow–Liu: %d edges over %d tasks (threshold=%s)", len(tree_edges), T, threshold)
            if threshold is None and len(tree_edges) < T - 1:
                logger.warning(
                    "Chow–Liu gave a forest (%d edges for %d tasks): some task pairs are never "
                    "labelled together, so they cannot be joined", len(tree_edges), T,
                )
        else:
            tree_edges = check_forest(edges, T)
        rooted = _root_forest(tree_edges, T)
        node = [np.zeros(0)] * T
        cond: dict[int, np.ndarray] = {}
        for t in rooted.order:
            s = rooted.parent[t]
            if s < 0:
                n_t = np.diag(block(t, t)).copy()
                if eps == 0 and (n_t == 0).any():
                    raise ValueError(
                        f"pseudocount=0 but class {int(np.argmin(n_t))} of task {t} (a root) never "
                        f"occurs in the {int(n_t.sum())} labelled rows; p(y_{t}) would be 0 there. "
                        "Use pseudocount > 0 (additive smoothing)"
                    )
                node[t] = (n_t + eps) / (n_t.sum() + eps * n_classes[t])
                continue
            pair = block(s, t)  # rows: parent class, cols: child class
            if eps == 0 and (pair == 0).any():
                ya, yb = (int(v) for v in np.argwhere(pair == 0)[0])
                raise ValueError(
                    f"pseudocount=0 but edge ({min(s, t)}, {max(s, t)}) never shows "
                    f"(y_{s}={ya}, y_{t}={yb}) in its {int(pair.sum())} co-labelled rows; "
                    "p(y) would be 0 there. Use pseudocount > 0 (additive smoothing)"
                )
            cond[t] = (pair + eps) / (pair.sum(axis=1, keepdims=True) + eps * n_classes[t])
            node[t] = node[s] @ cond[t]
        pairs = []
        for s, t in tree_edges:
            if rooted.parent[t] == s:
                pairs.append(node[s][:, None] * cond[t])
            else:
                pairs.append((node[t][:, None] * cond[s]).T)
        return cls(
            n_classes=n_classes,
            edges=tree_edges,
            pair_probs=tuple(pairs),
            node_probs=tuple(node),
            pseudocount=eps,
            n_fitted=used,
            mutual_info=mi,
            _rooted=rooted,
        )

    @classmethod
    def from_marginals(
        cls,
        n_classes: Sequence[int],
        edges: Sequence[Edge],
        pair_probs: Sequence[Any],
        node_probs: Sequence[Any] | None = None,
        atol: float = 1e-6,
    ) -> TreePrior:
        """Build a prior from consistent edge marginals ``p(y_s, y_t)`` (one per edge).

        ``pair_probs[i]`` belongs to ``edges[i]`` as given (shape ``(C_s, C_t)`` for the pair
        ``(s, t)``). ``node_probs`` is needed for tasks without an edge; when given for all
        tasks it must agree with the edge marginals. Raises ``ValueError`` naming the edge or
        task whose marginals disagree (beyond ``atol``).
        """
        n_classes = check_n_classes(n_classes)
        T = len(n_classes)
        raw = [tuple(int(v) for v in e) for e in (edges.tolist() if isinstance(edges, np.ndarray) else edges)]
        norm = check_forest(raw, T)
        if len(pair_probs) != len(raw):
            raise ValueError(f"pair_probs has {len(pair_probs)} tables but edges has {len(raw)} edges")
        tables: dict[Edge, np.ndarray] = {}
        for i, ((s, t), p) in enumerate(zip(raw, pair_probs)):
            arr = check_probability_vector(p, f"pair_probs[{i}]", atol=atol)
            if arr.shape != (n_classes[s], n_classes[t]):
                raise ValueError(
                    f"pair_probs[{i}] for edge ({s}, {t}) must have shape "
                    f"({n_classes[s]}, {n_classes[t]}), got {arr.shape}"
                )
            arr = arr / arr.sum()
            tables[(min(s, t), max(s, t))] = arr if s < t else arr.T
        node: list[np.ndarray | None] = [None] * T
        source: list[str] = [""] * T
        if node_probs is not None:
            if len(node_probs) != T:
                raise ValueError(f"node_probs has {len(node_probs)} entries but there are {T} tasks")
            for t, p in enumerate(node_probs):
                node[t] = check_probability_vector(p, f"node_probs[{t}]", size=n_classes[t], atol=atol).reshape(-1)
                source[t] = f"node_probs[{t}]"
        for (s, t), p in tables.items():
            for v, m in ((s, p.sum(axis=1)), (t, p.sum(axis=0))):
                known = node[v]
                if known is None:
                    node[v], source[v] = m, f"edge ({s}, {t})"
                elif np.max(np.abs(known - m)) > atol:
                    raise ValueError(
                        f"the marginal of task {v} from edge ({s}, {t}) is {np.round(m, 6).tolist()} "
                        f"but {source[v]} gives {np.round(known, 6).tolist()}; the edge marginals "
                        "of a tree prior must agree on shared tasks"
                    )
        for t in range(T):
            if node[t] is None:
                raise ValueError(f"task {t} has no edge, so node_probs[{t}] must be given")
        return cls(
            n_classes=n_classes,
            edges=norm,
            pair_probs=tuple(tables[e] for e in norm),
            node_probs=tuple(np.asarray(p) for p in node),
        )

    @classmethod
    def from_joint(
        cls, joint: Any, edges: Sequence[Edge] | None = None, threshold: float | None = None
    ) -> TreePrior:
        """The tree projection of a full joint table: its pair and node marginals on a tree.

        Without ``edges`` the tree is Chow–Liu on the table's exact mutual information (the
        KL-closest tree distribution). Exact when the joint is itself tree-structured on it.
        """
        jp = as_prior(joint, name="joint")
        p = jp.probs
        T = len(jp.n_classes)

        def pair(s: int, t: int) -> np.ndarray:
            ret: np.ndarray = p.sum(axis=tuple(a for a in range(T) if a not in (s, t)))
            return ret

        if edges is None:
            mi = np.full((T, T), np.nan)
            for s in range(T):
                for t in range(s + 1, T):
                    mi[s, t] = mi[t, s] = _mutual_information(pair(s, t))
            tree_edges = chow_liu_edges(mi, threshold)
        else:
            tree_edges = check_forest(edges, T)
        nodes = [jp.marginal(t) for t in range(T)]
        return cls.from_marginals(
            jp.n_classes, tree_edges, [pair(s, t) for s, t in tree_edges], nodes, atol=1e-8
        )

    @classmethod
    def random(
        cls,
        n_classes: Sequence[int],
        edges: Sequence[Edge] | None = None,
        seed: int | np.random.Generator | None = 0,
        concentration: float = 1.0,
    ) -> TreePrior:
        """A random tree distribution: Dirichlet(concentration) root and conditional rows.

        ``edges`` defaults to :func:`random_tree_edges`. Used for simulations and tests.
        """
        n_classes = check_n_classes(n_classes)
        rng = make_rng(seed)
        T = len(n_classes)
        tree_edges = random_tree_edges(T, rng) if edges is None else check_forest(edges, T)
        rooted = _root_forest(tree_edges, T)
        node: list[np.ndarray] = [np.zeros(0)] * T
        joint_of: dict[int, np.ndarray] = {}
        for t in rooted.order:
            s = rooted.parent[t]
            if s < 0:
                node[t] = rng.dirichlet(np.full(n_classes[t], concentration))
                continue
            cond = rng.dirichlet(np.full(n_classes[t], concentration), size=n_classes[s])
            joint_of[t] = node[s][:, None] * cond
            node[t] = joint_of[t].sum(axis=0)
        pairs = [joint_of[t] if rooted.parent[t] == s else joint_of[s].T for s, t in tree_edges]
        return cls(n_classes, tree_edges, tuple(pairs), tuple(node), _rooted=rooted)

    # --- views -------------------------------------------------------------------------------
    @property
    def n_tasks(self) -> int:
        return len(self.n_classes)

    @property
    def size(self) -> int:
        """Number of joint classes K = Π_t C_t (may exceed what a table can hold)."""
        return int(np.prod(np.asarray(self.n_classes, dtype=object)))

    @property
    def degree(self) -> np.ndarray:
        deg = np.zeros(self.n_tasks, dtype=np.int64)
        for s, t in self.edges:
            deg[s] += 1
            deg[t] += 1
        return deg

    @property
    def has_zeros(self) -> bool:
        """True when some edge or node marginal has an exact zero."""
        return any((p == 0).any() for p in self.pair_probs) or any((p == 0).any() for p in self.node_probs)

    def marginal(self, task: int) -> np.ndarray:
        """The marginal ``p(y_task)``, shape ``(C_task,)``."""
        if not 0 <= int(task) < self.n_tasks:
            raise ValueError(f"task must be in [0, {self.n_tasks}), got {task!r}")
        return self.node_probs[int(task)]

    def marginals(self) -> list[np.ndarray]:
        return list(self.node_probs)

    def log_marginals(self) -> list[np.ndarray]:
        """Every task's ``log p(y_t)`` (``-inf`` at zeros), a list of T arrays."""
        with np.errstate(divide="ignore"):
            return [np.log(p) for p in self.node_probs]

    def pair_marginal(self, s: int, t: int) -> np.ndarray:
        """``p(y_s, y_t)`` of shape ``(C_s, C_t)`` (rows: task ``s``): the edge table when
        (s, t) is an edge, else summed from the flattened table (small priors only)."""
        s, t = int(s), int(t)
        if not (0 <= s < self.n_tasks and 0 <= t < self.n_tasks and s != t):
            raise ValueError(f"s, t must be two distinct tasks in [0, {self.n_tasks}), got ({s}, {t})")
        key = (min(s, t), max(s, t))
        if key in self.edges:
            p = self.pair_probs[self.edges.index(key)]
            return p if s < t else p.T
        return self.to_joint().pair_marginal(s, t)

    def zero_summary(self) -> str:
        """Which cells are 0, in words (for error messages); ``""`` when there are none."""
        pairs = sum(int((p == 0).sum()) for p in self.pair_probs)
        nodes = sum(int((p == 0).sum()) for p in self.node_probs)
        if not pairs and not nodes:
            return ""
        return f"{pairs} edge cells and {nodes} node cells with probability 0"

    def pmi(self, edge: int) -> np.ndarray:
        """Pointwise mutual information (T2) of ``edges[edge]``, shape ``(C_s, C_t)``."""
        s, t = self.edges[edge]
        with np.errstate(divide="ignore", invalid="ignore"):
            ret: np.ndarray = (
                np.log(self.pair_probs[edge])
                - np.log(self.node_probs[s])[:, None]
                - np.log(self.node_probs[t])[None, :]
            )
        return ret

    def log_pmf(self, labels: Any) -> np.ndarray:
        """``log p(y)`` of each row of a complete ``(N, T)`` label array, by (T1)."""
        lab = check_labels(labels, self.n_classes, allow_missing=False)
        with np.errstate(divide="ignore"):
            out = np.zeros(lab.shape[0])
            for (s, t), p in zip(self.edges, self.pair_probs):
                out += np.log(p[lab[:, s], lab[:, t]])
            for t, d in enumerate(self.degree):
                if d != 1:
                    out -= (d - 1) * np.log(self.node_probs[t][lab[:, t]])
        return out

    def _check_table_size(self, max_size: int) -> None:
        if self.size > max_size:
            raise ValueError(
                f"the flattened table of this tree prior would have Π C_t = {self.size} cells "
                f"(n_classes={self.n_classes}), more than max_size={max_size}; use tree decoding "
                "(gmtl_decode(..., kernel='tree')) or the per-edge marginals instead"
            )

    def table_log_prob(self, max_size: int = MAX_TABLE_SIZE) -> np.ndarray:
        """``log p(y)`` over the whole product space, shape ``n_classes`` (by (T1))."""
        self._check_table_size(max_size)
        T = self.n_tasks
        out = np.zeros(self.n_classes)
        with np.errstate(divide="ignore"):
            for (s, t), p in zip(self.edges, self.pair_probs):
                shape = [1] * T
                shape[s], shape[t] = self.n_classes[s], self.n_classes[t]
                out = out + np.log(p).reshape(shape)
            for t, d in enumerate(self.degree):
                if d != 1:
                    shape = [1] * T
                    shape[t] = self.n_classes[t]
                    out = out - (d - 1) * np.log(self.node_probs[t]).reshape(shape)
        return out

    @property
    def log_prob(self) -> np.ndarray:
        """The flattened ``log p(y)`` of shape ``n_classes`` (only when Π C_t ≤ MAX_TABLE_SIZE)."""
        return self.table_log_prob()

    @property
    def probs(self) -> np.ndarray:
        """The flattened ``p(y)`` of shape ``n_classes`` (only when Π C_t ≤ MAX_TABLE_SIZE)."""
        ret: np.ndarray = np.exp(self.table_log_prob())
        return ret

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        p = self.probs
        return p if dtype is None else p.astype(dtype)

    def to_joint(self, max_size: int = MAX_TABLE_SIZE) -> JointPrior:
        """The equivalent :class:`~causalmtl.gmtl.JointPrior` (only when small enough)."""
        p = np.exp(self.table_log_prob(max_size))
        return JointPrior.from_probs(p / p.sum())

    def sample(self, n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
        """Draw ``n`` label rows ``(n, T)`` by ancestral sampling along the rooted tree."""
        n = as_int(n, "n", low=0)
        rng = make_rng(seed)
        out = np.zeros((int(n), self.n_tasks), dtype=np.int64)
        r = self.rooted
        for t in r.order:
            s = r.parent[t]
            u = rng.random(int(n))
            if s < 0:
                cdf = np.cumsum(self.node_probs[t])[None, :]
                rows = np.zeros(int(n), dtype=np.int64)
            else:
                cond = self._conditional(t)
                cdf = np.cumsum(cond, axis=1)
                rows = out[:, s]
            c = cdf[rows]
            out[:, t] = np.minimum((u[:, None] >= c / c[:, -1:]).sum(axis=1), self.n_classes[t] - 1)
        return out

    def _oriented_pair(self, t: int) -> np.ndarray:
        """``p(y_parent, y_t)`` for a non-root task t, shape ``(C_parent, C_t)``."""
        e = self.rooted.parent_edge[t]
        p = self.pair_probs[e]
        return p if self.edges[e][1] == t else p.T

    def _conditional(self, t: int) -> np.ndarray:
        p = self._oriented_pair(t)
        ret: np.ndarray = p / p.sum(axis=1, keepdims=True)
        return ret

    def same_structure(self, other: TreePrior, name: str = "target_prior") -> None:
        """Raise ``ValueError`` unless ``other`` has the same tasks, classes and edges."""
        if other.n_classes != self.n_classes:
            raise ValueError(f"{name} has n_classes {other.n_classes} but the prior has {self.n_classes}")
        if other.edges != self.edges:
            extra = sorted(set(other.edges) - set(self.edges))
            lacking = sorted(set(self.edges) - set(other.edges))
            raise ValueError(
                f"{name} is a tree on different edges: it has {extra} that the prior lacks and "
                f"lacks {lacking}; tree decoding with q needs q on the prior's tree "
                "(TreePrior.fit(..., edges=prior.edges))"
            )

    # --- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the prior to a NumPy ``.npz`` archive with the keys

        ``format`` (``"causalmtl.TreePrior/1"``), ``n_classes`` int64 ``(T,)``, ``edges`` int64
        ``(E, 2)``, ``pair_probs`` float64 (every ``p(y_s, y_t)`` flattened in C-order and
        concatenated in edge order), ``node_probs`` float64 (every ``p(y_t)`` concatenated),
        ``pseudocount``, ``n_fitted`` and ``mutual_info`` (``(T, T)``, or empty).
        """
        np.savez(
            path,
            format=np.array(FORMAT),
            n_classes=np.asarray(self.n_classes, dtype=np.int64),
            edges=np.asarray(self.edges, dtype=np.int64).reshape(-1, 2),
            pair_probs=np.concatenate([p.ravel() for p in self.pair_probs]) if self.edges else np.empty(0),
            node_probs=np.concatenate([p.ravel() for p in self.node_probs]),
            pseudocount=np.float64(self.pseudocount),
            n_fitted=np.int64(self.n_fitted),
            mutual_info=np.empty(0) if self.mutual_info is None else self.mutual_info,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TreePrior:
        """Read a prior written by :meth:`save` (checked like :meth:`from_marginals`)."""
        with np.load(path, allow_pickle=False) as z:
            fmt = str(z["format"]) if "format" in z else None
            if fmt != FORMAT:
                raise ValueError(f"{os.fspath(path)!r} is not a TreePrior file (format {fmt!r}, expected {FORMAT!r})")
            n_classes = tuple(int(c) for c in z["n_classes"])
            edges = [tuple(int(v) for v in e) for e in z["edges"]]
            flat_pairs, flat_nodes = z["pair_probs"], z["node_probs"]
            sizes = [n_classes[s] * n_classes[t] for s, t in edges]
            if flat_pairs.size != sum(sizes) or flat_nodes.size != sum(n_classes):
                raise ValueError(f"{os.fspath(path)!r}: pair_probs/node_probs sizes do not match n_classes and edges")
            bounds = np.cumsum([0, *sizes])
            pairs = [flat_pairs[a:b].reshape(n_classes[s], n_classes[t])
                     for (a, b, (s, t)) in zip(bounds[:-1], bounds[1:], edges)]  # fmt: skip
            nb = np.cumsum([0, *n_classes])
            nodes = [flat_nodes[a:b] for a, b in zip(nb[:-1], nb[1:])]
            # pairs of ints as stored; from_marginals checks them (a malformed edge raises there)
            prior = cls.from_marginals(n_classes, cast("list[Edge]", edges), pairs, nodes, atol=1e-9)
            mi = z["mutual_info"]
            return cls(
                n_classes=prior.n_classes,
                edges=prior.edges,
                pair_probs=prior.pair_probs,
                node_probs=prior.node_probs,
                pseudocount=float(z["pseudocount"]),
                n_fitted=int(z["n_fitted"]),
                mutual_info=None if mi.size == 0 else mi,
            )

    def __repr__(self) -> str:
        return (
            f"TreePrior(n_classes={self.n_classes}, edges={len(self.edges)}, "
            f"pseudocount={self.pseudocount}, n_fitted={self.n_fitted})"
        )


__all__ = ["RootedTree", "TreePrior", "check_forest", "chow_liu_edges", "random_tree_edges", "MAX_TABLE_SIZE"]
