"""Exact path-dependent TreeSHAP for XGBoost models, by table look-up.

The values are those of XGBoost's ``booster.predict(dmatrix, pred_contribs=True)`` (the
path-dependent TreeSHAP of Lundberg et al.), computed a different way.

The mathematics
---------------
Path-dependent TreeSHAP explains ``f(x) = sum_trees sum_leaves v_l [x reaches l]`` with the
value function ``g(S) = sum_l v_l prod_{n on path(l)} c_n(S)``, where ``c_n(S)`` is
``[x goes to the path's side at n]`` when n's feature is in S and ``cover(child)/cover(n)``
otherwise. Group the path nodes of a leaf by feature: the leaf has k unique features, each with

* a zero fraction ``z_j`` = product over that feature's path nodes of cover(child)/cover(parent),
* a one fraction ``o_j`` in {0, 1}: 1 iff x takes the path's side at *every* node of feature j.

The leaf's term of g is ``v_l prod_{j in S} o_j prod_{j not in S} z_j`` (features off the path are
null players), so its Shapley value for the j-th unique feature is the closed form

    phi_j = v_l (o_j - z_j) sum_{S subset of U minus j} |S|! (k-1-|S|)! / k!
                                  prod_{m in S} o_m prod_{m not in S, m != j} z_m        (*)

which depends on x only through the k-bit pattern (o_1..o_k). The sum is the coefficient-weighted
sum of the polynomial prod_{m != j} (z_m + o_m t), computed exactly in float64 when the model is
compiled. Summing (*) over the trees and leaves gives exactly the values of TreeSHAP, which
evaluates the same sums with a recursive path-extension instead; the bias column is
``sum_l v_l prod_j z_j`` per tree (the cover-weighted mean leaf value) plus the base margin.

Groups: fewer look-ups per row
------------------------------
A per-leaf table (2^k patterns x k values) costs one look-up per leaf and row. We tabulate whole
*subtrees* instead. For a node q, every leaf below q sees the same ancestors, so all of their
one fractions are functions of

* one bit per unique feature among q's ancestors: "x took the side towards q at every ancestor
  with this feature", and
* the raw direction bit (left/right) of every internal node inside q's subtree.

With b such bits, the summed contributions of all the leaves under q form a table of 2^b rows,
one column per distinct feature on those leaves' paths. Group roots are chosen top-down as the
highest nodes whose b fits ``max_group_bits`` (for a full depth-6 tree and b <= 7: the 16 nodes of
depth 4, each covering 4 leaves, so 16 look-ups of <= 7 values per row and tree instead of 64
look-ups of <= 6). The tables are exact sums of (*), so the method is exact, not an approximation.

Evaluation
----------
The tables are computed in float64 and stored as float32 (half the memory and cache; the rounding,
~1e-7 relative, is below XGBoost's own float32 arithmetic). Rows are processed in blocks of a few
thousand, each block transposed to feature-major float32 -- the value XGBoost compares, as its
DMatrix stores float32. For each tree and block:

1. every internal node's direction is computed once per row (numeric: right iff not
   ``x < threshold``; missing (NaN) follows the node's default; categorical: right iff the
   category is in the node's set, invalid or unknown categories go left, as in XGBoost);
2. per group, its index is assembled from direction bits (an ancestor-feature bit is the AND of
   its nodes' "went towards q" bits);
3. per distinct feature of the tree, the table columns that feed it (one per group whose leaves
   use it) are looked up and summed, and the sum is added to a float64 accumulator.

Every loop runs over the rows of the block (contiguous, no branches on the data except for
categorical nodes), in numba, parallel over blocks. Per row and depth-6 tree this is 63
comparisons, ~110 index bits and ~110 table reads into ~32 accumulators, against XGBoost's
O(leaves x depth^2) path recursion.

Inputs are plain arrays: categorical features must hold the category codes XGBoost saw (the
pandas ``cat.codes``, NaN for missing); only NaN is missing (XGBoost's default ``missing``). All the
booster's trees are used (no ``iteration_range``). Tables for 300 full depth-6 trees take ~15 MB;
they grow as 4^depth (depth 8: ~1.2 MB per tree). Unsupported models (multi-class / multi-target, dart,
gblinear, unknown objectives, or trees too deep for the tables) raise ``NotImplementedError`` --
the signal to fall back to ``pred_contribs``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields

import numpy as np
from numba import njit, prange
import numba

__all__ = ["TreeShapModel", "compile_model", "shap_values"]

# objective -> how XGBoost maps base_score (stored as a prediction) to the margin
_LOGIT = {"binary:logistic", "reg:logistic"}
_LOG = {"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"}
_IDENTITY = {
    "binary:logitraw", "binary:hinge", "reg:squarederror", "reg:absoluteerror",
    "reg:pseudohubererror", "reg:squaredlogerror", "reg:quantileerror",
    "rank:pairwise", "rank:ndcg", "rank:map",
}

DEFAULT_GROUP_BITS = 7          # best measured for depth 6; auto-raised to a tree's depth
MAX_LEAF_FEATURES = 12          # a leaf with more unique features on its path is not tabulated
DEFAULT_TABLE_BUDGET = 2 << 30  # bytes of tables, beyond which compile_model refuses
_INVALID_CAT = float(1 << 24)   # XGBoost: categories must be exact float integers in [0, 2^24)
BLOCK_ROWS = 4096               # rows per block: tables re-read once per block and tree


@dataclass
class TreeShapModel:
    """A compiled ensemble: flat arrays only (no Python objects), ready for `shap_values`."""

    num_features: int
    bias: float
    # per tree
    tree_node_ptr: np.ndarray   # int64 [T+1] internal nodes of tree t: [ptr[t], ptr[t+1])
    tree_group_ptr: np.ndarray  # int64 [T+1]
    # per internal node
    node_feature: np.ndarray    # int32
    node_threshold: np.ndarray  # float32 (numeric splits)
    node_default_right: np.ndarray  # uint8
    node_cat: np.ndarray        # int32: -1 numeric, else index into cat_ptr
    cat_ptr: np.ndarray         # int64 [C+1] into cat_words (bitset of categories going right)
    cat_words: np.ndarray       # uint32
    # per group
    group_bits: np.ndarray      # int64: index width b
    group_bit_ptr: np.ndarray   # int64 [G+1] into bit_term_ptr
    group_out_ptr: np.ndarray   # int64 [G+1] into out_feature
    group_table_offset: np.ndarray  # int64
    bit_term_ptr: np.ndarray    # int64 [bits+1] into term_node / term_flip
    term_node: np.ndarray       # int32: tree-local internal node index
    term_flip: np.ndarray       # uint8: bit term = direction ^ flip; the bit is the AND of its terms
    out_feature: np.ndarray     # int32
    table: np.ndarray           # float32 (computed in float64, rounded once); group g, column s,
                                # index i at offset + (s << b) + i
    # per tree, its distinct output features; per feature, the table columns that feed it
    tree_feature_ptr: np.ndarray  # int64 [T+1] into feature_id / feature_pair_ptr
    feature_id: np.ndarray      # int32
    feature_pair_ptr: np.ndarray  # int64 [NF+1] into pair_group / pair_offset
    pair_group: np.ndarray      # int32: tree-local group index
    pair_offset: np.ndarray     # int64: table offset of the column (length 2^bits of the group)
    max_nodes: int
    max_groups: int

    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray))


# ------------------------------------------------------------------------------------ parsing


def _base_margin(learner: dict) -> float:
    objective = learner["objective"]["name"]
    raw = str(learner["learner_model_param"]["base_score"]).strip("[]")
    if "," in raw:
        raise NotImplementedError("vector base_score (multi-target) is not supported")
    base = float(raw)
    if objective in _LOGIT:
        return math.log(base / (1.0 - base))
    if objective in _LOG:
        return math.log(base) if base > 0 else -math.inf
    if objective in _IDENTITY:
        return base
    raise NotImplementedError(f"objective {objective!r} is not supported (unknown base-score link)")


def _as_ints(values, n):
    return np.asarray(values, dtype=np.int64) if len(values) else np.zeros(n, np.int64)


class _Tree:
    """One tree's arrays from XGBoost's JSON dump, with the traversal facts we need."""

    def __init__(self, tree: dict):
        self.left = np.asarray(tree["left_children"], np.int64)
        self.right = np.asarray(tree["right_children"], np.int64)
        self.feature = np.asarray(tree["split_indices"], np.int64)
        self.cond = np.asarray(tree["split_conditions"], np.float32)
        self.default_left = np.asarray(tree["default_left"], np.int64)
        self.cover = np.asarray(tree["sum_hessian"], np.float64)
        n = len(self.left)
        self.split_type = _as_ints(tree.get("split_type", []), n)
        size_leaf = int(tree.get("tree_param", {}).get("size_leaf_vector", "1") or 1)
        if size_leaf > 1:
            raise NotImplementedError("vector-leaf (multi-target) trees are not supported")
        self.cats: dict[int, np.ndarray] = {}
        cat_nodes = tree.get("categories_nodes", [])
        if len(cat_nodes):
            cats = np.asarray(tree["categories"], np.int64)
            seg = tree["categories_segments"]
            size = tree["categories_sizes"]
            for node, s, c in zip(cat_nodes, seg, size):
                self.cats[int(node)] = cats[int(s): int(s) + int(c)]

    def is_leaf(self, n: int) -> bool:
        return self.left[n] == -1


def _plan_tree(tree: _Tree, max_bits: int):
    """Choose the groups of one tree and describe their bits, outputs and leaves."""
    # internal nodes reachable from the root, in preorder; local index = position
    internal: list[int] = []
    stack = [0]
    n_internal_below: dict[int, int] = {}
    order: list[int] = []
    while stack:
        n = stack.pop()
        order.append(n)
        if not tree.is_leaf(n):
            internal.append(n)
            stack.append(int(tree.right[n]))
            stack.append(int(tree.left[n]))
    local = {n: i for i, n in enumerate(internal)}
    for n in reversed(order):  # children before parents
        if tree.is_leaf(n):
            n_internal_below[n] = 0
        else:
            n_internal_below[n] = 1 + n_internal_below[int(tree.left[n])] + n_internal_below[int(tree.right[n])]

    groups = []
    # walk down with the ancestor path: list of (node, side) with side 1 = went right
    todo = [(0, [])]
    while todo:
        q, path = todo.pop()
        anc_features = {}
        for node, side in path:
            anc_features.setdefault(int(tree.feature[node]), []).append((node, side))
        bits = len(anc_features) + n_internal_below[q]
        if bits <= max_bits or tree.is_leaf(q):
            groups.append(_plan_group(tree, q, path, anc_features, local))
        else:
            todo.append((int(tree.right[q]), path + [(q, 1)]))
            todo.append((int(tree.left[q]), path + [(q, 0)]))
    return internal, groups


def _plan_group(tree: _Tree, q: int, path, anc_features: dict, local: dict):
    bit_terms: list[list[tuple[int, int]]] = []  # per bit: [(local node, flip)]
    anc_bit: dict[int, tuple[int, int]] = {}    # feature -> (bit, want)
    for f, nodes in anc_features.items():
        if len(nodes) == 1:
            node, side = nodes[0]
            anc_bit[f] = (len(bit_terms), side)
            bit_terms.append([(local[node], 0)])
        else:
            anc_bit[f] = (len(bit_terms), 1)
            bit_terms.append([(local[node], 1 - side) for node, side in nodes])
    node_bit: dict[int, int] = {}
    sub = [q]
    while sub:
        n = sub.pop()
        if not tree.is_leaf(n):
            node_bit[n] = len(bit_terms)
            bit_terms.append([(local[n], 0)])
            sub.append(int(tree.right[n]))
            sub.append(int(tree.left[n]))
    nbits = len(bit_terms)

    out_features: list[int] = []
    slot_of: dict[int, int] = {}
    leaves = []  # (value, [(z, mask, want, slot)], expected)
    stack = [(q, [])]
    while stack:
        n, below = stack.pop()
        if not tree.is_leaf(n):
            stack.append((int(tree.right[n]), below + [(n, 1)]))
            stack.append((int(tree.left[n]), below + [(n, 0)]))
            continue
        full = path + below
        per_feature: dict[int, list] = {}  # feature -> [zero fraction, mask, want]
        for node, side in full:
            f = int(tree.feature[node])
            child = int(tree.right[node] if side else tree.left[node])
            parent_cover = tree.cover[node]
            zf = tree.cover[child] / parent_cover if parent_cover > 0 else 0.0
            entry = per_feature.setdefault(f, [1.0, 0, 0])
            entry[0] *= zf
        for f, (bit, want) in anc_bit.items():
            per_feature[f][1] |= 1 << bit
            per_feature[f][2] |= want << bit
        for node, side in below:
            f = int(tree.feature[node])
            bit = node_bit[node]
            per_feature[f][1] |= 1 << bit
            per_feature[f][2] |= side << bit
        if len(per_feature) > MAX_LEAF_FEATURES:
            raise NotImplementedError(
                f"a leaf has {len(per_feature)} distinct features on its path (> {MAX_LEAF_FEATURES})")
        feats = []
        expected = float(tree.cond[n])
        for f, (zf, mask, want) in per_feature.items():
            if f not in slot_of:
                slot_of[f] = len(out_features)
                out_features.append(f)
            feats.append((zf, mask, want, slot_of[f]))
            expected *= zf
        leaves.append((float(tree.cond[n]), feats, expected))
    return nbits, bit_terms, out_features, leaves


# ------------------------------------------------------------------------------- tables (numba)


@njit(cache=True)
def _leaf_table(v, z, k):
    """(2^k, k): the leaf's Shapley values (*) for every one-fraction pattern."""
    out = np.zeros((1 << k, k))
    # weights w[s] = s! (k-1-s)! / k!: w[0] = 1/k, w[s+1] = w[s] (s+1) / (k-1-s)
    w = np.empty(max(k, 1))
    if k:
        w[0] = 1.0 / k
    for s in range(k - 1):
        w[s + 1] = w[s] * (s + 1) / (k - 1 - s)
    poly = np.empty(k + 1)
    for pat in range(1 << k):
        for j in range(k):
            oj = (pat >> j) & 1
            # poly = prod_{m != j} (z_m + o_m t), degree <= k-1
            poly[0] = 1.0
            deg = 0
            for m in range(k):
                if m == j:
                    continue
                zm = z[m]
                if (pat >> m) & 1:
                    poly[deg + 1] = poly[deg]
                    for d in range(deg, 0, -1):
                        poly[d] = poly[d] * zm + poly[d - 1]
                    poly[0] = poly[0] * zm
                    deg += 1
                else:
                    for d in range(deg + 1):
                        poly[d] *= zm
            acc = 0.0
            for d in range(deg + 1):
                acc += w[d] * poly[d]
            out[pat, j] = v * (oj - z[j]) * acc
    return out


@njit(cache=True)
def _fill_tables(table, group_bits, group_table_offset, group_leaf_ptr, leaf_value, leaf_feat_ptr,
                 lf_zero, lf_mask, lf_want, lf_slot):
    for g in range(group_bits.size):
        nb = group_bits[g]
        base = group_table_offset[g]
        for leaf in range(group_leaf_ptr[g], group_leaf_ptr[g + 1]):
            p0 = leaf_feat_ptr[leaf]
            k = leaf_feat_ptr[leaf + 1] - p0
            lt = _leaf_table(leaf_value[leaf], lf_zero[p0:p0 + k], k)
            for ix in range(1 << nb):
                pat = 0
                for j in range(k):
                    if (ix & lf_mask[p0 + j]) == lf_want[p0 + j]:
                        pat |= 1 << j
                for j in range(k):
                    table[base + (lf_slot[p0 + j] << nb) + ix] += lt[pat, j]


# -------------------------------------------------------------------------------- compile


def compile_model(booster, max_group_bits: int | None = None,
                  table_budget_bytes: int = DEFAULT_TABLE_BUDGET) -> TreeShapModel:
    """Compile an XGBoost booster (binary / regression, scalar output) into look-up tables.

    ``max_group_bits`` bounds each group's index width (table rows = 2^bits); by default
    ``DEFAULT_GROUP_BITS`` or the tree's depth + 1 when that is larger (deep trees need it).
    Raises ``NotImplementedError`` for what it does not support (the caller falls back to
    ``pred_contribs``): multi-class / multi-target, non-gbtree boosters, unknown objectives, a leaf
    with more than ``MAX_LEAF_FEATURES`` distinct features on its path, or tables beyond
    ``table_budget_bytes`` (counted in float64, as they are built).
    """
    if max_group_bits is not None and not 0 <= max_group_bits <= 16:
        raise ValueError("max_group_bits must be in [0, 16]")
    model = json.loads(bytes(booster.save_raw("json")))
    learner = model["learner"]
    param = learner["learner_model_param"]
    if int(param.get("num_class", 0)) > 1:
        raise NotImplementedError("multi-class models are not supported")
    if int(param.get("num_target", 1)) > 1:
        raise NotImplementedError("multi-target models are not supported")
    gbm = learner["gradient_booster"]
    if gbm["name"] != "gbtree":
        raise NotImplementedError(f"booster {gbm['name']!r} is not supported (only gbtree)")
    gb_model = gbm["model"]
    if any(int(t) != 0 for t in gb_model.get("tree_info", [])):
        raise NotImplementedError("trees for more than one output group are not supported")
    n_features = int(param["num_feature"])
    base_margin = _base_margin(learner)

    node_ptr = [0]
    group_ptr = [0]
    node_feature, node_threshold, node_default_right, node_cat = [], [], [], []
    cat_ptr, cat_words = [0], []
    g_bits, g_bit_ptr, g_out_ptr, g_tab_off, g_leaf_ptr = [], [0], [0], [], [0]
    bit_term_ptr, term_node, term_flip, out_feature = [0], [], [], []
    leaf_value, leaf_feat_ptr, lf_zero, lf_mask, lf_want, lf_slot = [], [0], [], [], [], []
    table_size = 0
    expected = 0.0
    max_nodes = max_groups = 1
    tree_feature_ptr, feature_id, feature_pair_ptr, pair_group, pair_offset = [0], [], [0], [], []
    for raw in gb_model["trees"]:
        tree = _Tree(raw)
        bits = max_group_bits if max_group_bits is not None else max(DEFAULT_GROUP_BITS, _depth(tree) + 1)
        bits = min(bits, 16)
        internal, groups = _plan_tree(tree, bits)
        max_nodes = max(max_nodes, len(internal))
        for n in internal:
            node_feature.append(int(tree.feature[n]))
            node_default_right.append(0 if tree.default_left[n] else 1)
            if tree.split_type[n] == 1:
                cats = tree.cats.get(n, np.zeros(0, np.int64))
                words = np.zeros(int(cats.max()) // 32 + 1 if cats.size else 0, np.uint32)
                for c in cats:
                    words[c // 32] |= np.uint32(1 << (c % 32))
                node_cat.append(len(cat_ptr) - 1)
                cat_words.extend(words.tolist())
                cat_ptr.append(len(cat_words))
                node_threshold.append(0.0)
            else:
                node_cat.append(-1)
                node_threshold.append(float(tree.cond[n]))
        node_ptr.append(len(node_feature))
        max_groups = max(max_groups, len(groups))
        pairs: dict[int, list[tuple[int, int]]] = {}
        for local_group, (nbits, terms, outs, leaves) in enumerate(groups):
            for slot, f in enumerate(outs):
                pairs.setdefault(f, []).append((local_group, table_size + (slot << nbits)))
            g_bits.append(nbits)
            for bit in terms:
                for node, flip in bit:
                    term_node.append(node)
                    term_flip.append(flip)
                bit_term_ptr.append(len(term_node))
            g_bit_ptr.append(len(bit_term_ptr) - 1)
            out_feature.extend(outs)
            g_out_ptr.append(len(out_feature))
            g_tab_off.append(table_size)
            table_size += len(outs) << nbits
            if table_size * 8 > table_budget_bytes:
                raise NotImplementedError(
                    f"the tables would exceed {table_budget_bytes / 2**30:.1f} GiB (trees too deep/wide)")
            for value, feats, leaf_expected in leaves:
                leaf_value.append(value)
                for zf, mask, want, slot in feats:
                    lf_zero.append(zf)
                    lf_mask.append(mask)
                    lf_want.append(want)
                    lf_slot.append(slot)
                leaf_feat_ptr.append(len(lf_zero))
                expected += leaf_expected
            g_leaf_ptr.append(len(leaf_value))
        group_ptr.append(len(g_bits))
        for f in sorted(pairs):
            feature_id.append(f)
            for local_group, offset in pairs[f]:
                pair_group.append(local_group)
                pair_offset.append(offset)
            feature_pair_ptr.append(len(pair_group))
        tree_feature_ptr.append(len(feature_id))

    i64 = lambda a: np.asarray(a, np.int64)  # noqa: E731
    table = np.zeros(table_size, np.float64)
    group_bits = i64(g_bits)
    group_table_offset = i64(g_tab_off)
    _fill_tables(table, group_bits, group_table_offset, i64(g_leaf_ptr), np.asarray(leaf_value, np.float64),
                 i64(leaf_feat_ptr), np.asarray(lf_zero, np.float64), i64(lf_mask), i64(lf_want), i64(lf_slot))
    table = table.astype(np.float32)  # half the memory and cache; accumulation stays float64
    return TreeShapModel(
        num_features=n_features,
        bias=float(expected + base_margin),
        tree_node_ptr=i64(node_ptr),
        tree_group_ptr=i64(group_ptr),
        node_feature=np.asarray(node_feature, np.int32),
        node_threshold=np.asarray(node_threshold, np.float32),
        node_default_right=np.asarray(node_default_right, np.uint8),
        node_cat=np.asarray(node_cat, np.int32),
        cat_ptr=i64(cat_ptr),
        cat_words=np.asarray(cat_words, np.uint32),
        group_bits=group_bits,
        group_bit_ptr=i64(g_bit_ptr),
        group_out_ptr=i64(g_out_ptr),
        group_table_offset=group_table_offset,
        bit_term_ptr=i64(bit_term_ptr),
        term_node=np.asarray(term_node, np.int32),
        term_flip=np.asarray(term_flip, np.uint8),
        out_feature=np.asarray(out_feature, np.int32),
        table=table,
        tree_feature_ptr=i64(tree_feature_ptr),
        feature_id=np.asarray(feature_id, np.int32),
        feature_pair_ptr=i64(feature_pair_ptr),
        pair_group=np.asarray(pair_group, np.int32),
        pair_offset=i64(pair_offset),
        max_nodes=max_nodes,
        max_groups=max_groups,
    )


def _depth(tree: _Tree) -> int:
    best, stack = 0, [(0, 0)]
    while stack:
        n, d = stack.pop()
        if tree.is_leaf(n):
            best = max(best, d)
        else:
            stack.append((int(tree.left[n]), d + 1))
            stack.append((int(tree.right[n]), d + 1))
    return best


# ------------------------------------------------------------------------------- evaluation


@njit(parallel=True, cache=True, fastmath=False)
def _kernel(X, out, bias, block, max_nodes, max_groups, tree_node_ptr, tree_group_ptr, node_feature,
            node_threshold, node_default_right, node_cat, cat_ptr, cat_words, group_bits, group_bit_ptr,
            bit_term_ptr, term_node, term_flip, table, tree_feature_ptr, feature_id, feature_pair_ptr,
            pair_group, pair_offset):
    n, F = X.shape
    n_blocks = (n + block - 1) // block
    T = tree_node_ptr.size - 1
    for blk in prange(n_blocks):
        r0 = blk * block
        m = min(n, r0 + block) - r0
        xb = np.empty((F, block), np.float32)
        for r in range(m):
            for f in range(F):
                xb[f, r] = np.float32(X[r0 + r, f])
        phi = np.zeros((F, block), np.float64)
        dirs = np.empty((max_nodes, block), np.uint8)
        index = np.empty((max_groups, block), np.uint16)
        acc = np.empty(block, np.uint8)
        for t in range(T):
            a = tree_node_ptr[t]
            for i in range(tree_node_ptr[t + 1] - a):
                node = a + i
                xf = xb[node_feature[node]]
                di = dirs[i]
                c = node_cat[node]
                if c < 0:
                    th = node_threshold[node]
                    if node_default_right[node]:
                        for r in range(m):
                            di[r] = not (xf[r] < th)
                    else:
                        for r in range(m):
                            di[r] = xf[r] >= th
                else:
                    w0 = cat_ptr[c]
                    nbits = (cat_ptr[c + 1] - w0) * 32
                    dr = node_default_right[node]
                    for r in range(m):
                        x = xf[r]
                        if x != x:
                            di[r] = dr
                        elif x < 0 or x >= _INVALID_CAT:
                            di[r] = 0
                        else:
                            ci = np.int64(x)
                            if ci >= nbits:
                                di[r] = 0
                            else:
                                di[r] = (cat_words[w0 + (ci >> 5)] >> (ci & 31)) & 1
            g0 = tree_group_ptr[t]
            for g in range(g0, tree_group_ptr[t + 1]):
                idx = index[g - g0]
                for r in range(m):
                    idx[r] = 0
                b0 = group_bit_ptr[g]
                for bi in range(b0, group_bit_ptr[g + 1]):
                    shift = bi - b0
                    p0 = bit_term_ptr[bi]
                    p1 = bit_term_ptr[bi + 1]
                    dn = dirs[term_node[p0]]
                    fl = term_flip[p0]
                    if p1 - p0 == 1:
                        for r in range(m):
                            idx[r] |= np.uint16(dn[r] ^ fl) << shift
                    else:
                        for r in range(m):
                            acc[r] = dn[r] ^ fl
                        for p in range(p0 + 1, p1):
                            dn = dirs[term_node[p]]
                            fl = term_flip[p]
                            for r in range(m):
                                acc[r] &= dn[r] ^ fl
                        for r in range(m):
                            idx[r] |= np.uint16(acc[r]) << shift
            # each distinct feature of the tree: sum its table columns, then one update of phi
            for fi in range(tree_feature_ptr[t], tree_feature_ptr[t + 1]):
                ph = phi[feature_id[fi]]
                p = feature_pair_ptr[fi]
                pe = feature_pair_ptr[fi + 1]
                while pe - p >= 4:
                    c0 = table[pair_offset[p]:]
                    c1 = table[pair_offset[p + 1]:]
                    c2 = table[pair_offset[p + 2]:]
                    c3 = table[pair_offset[p + 3]:]
                    i0 = index[pair_group[p]]
                    i1 = index[pair_group[p + 1]]
                    i2 = index[pair_group[p + 2]]
                    i3 = index[pair_group[p + 3]]
                    for r in range(m):
                        ph[r] += (c0[i0[r]] + c1[i1[r]]) + (c2[i2[r]] + c3[i3[r]])
                    p += 4
                if pe - p >= 2:
                    c0 = table[pair_offset[p]:]
                    c1 = table[pair_offset[p + 1]:]
                    i0 = index[pair_group[p]]
                    i1 = index[pair_group[p + 1]]
                    for r in range(m):
                        ph[r] += c0[i0[r]] + c1[i1[r]]
                    p += 2
                if pe - p == 1:
                    c0 = table[pair_offset[p]:]
                    i0 = index[pair_group[p]]
                    for r in range(m):
                        ph[r] += c0[i0[r]]
        for r in range(m):
            for f in range(F):
                out[r0 + r, f] = phi[f, r]
            out[r0 + r, F] = bias


def shap_values(model: TreeShapModel, x: np.ndarray, n_threads: int | None = None,
                block_rows: int | None = None) -> np.ndarray:
    """Exact path-dependent SHAP values, shaped (rows, features + 1) like ``pred_contribs``.

    ``x``: (rows, features) float array, NaN = missing; categorical features as category codes.
    The last column is the bias (expected margin). Values are float64.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != model.num_features:
        raise ValueError(f"x must be (rows, {model.num_features}), got {x.shape}")
    # one compiled kernel, for C-contiguous float64 (float32 converts exactly; the kernel rounds to
    # float32 itself, as XGBoost's DMatrix does)
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], model.num_features + 1), np.float64)
    previous = numba.get_num_threads()
    threads = previous if n_threads is None else max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    if block_rows is None:  # blocks of <= BLOCK_ROWS rows, their count a multiple of the threads
        n_blocks = threads * max(1, -(-x.shape[0] // (threads * BLOCK_ROWS)))
        block_rows = max(1, -(-x.shape[0] // n_blocks))
    numba.set_num_threads(threads)
    try:
        _kernel(x, out, model.bias, int(block_rows), model.max_nodes, model.max_groups, model.tree_node_ptr,
                model.tree_group_ptr, model.node_feature, model.node_threshold, model.node_default_right,
                model.node_cat, model.cat_ptr, model.cat_words, model.group_bits, model.group_bit_ptr,
                model.bit_term_ptr, model.term_node, model.term_flip, model.table, model.tree_feature_ptr,
                model.feature_id, model.feature_pair_ptr, model.pair_group, model.pair_offset)
    finally:
        numba.set_num_threads(previous)
    return out
