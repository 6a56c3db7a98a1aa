//! Tree ensembles (ONNX-ML's TreeEnsembleClassifier and TreeEnsembleRegressor) compiled into a
//! flat, cache-friendly layout and evaluated over a whole batch.
//!
//! Every tree becomes a run of 16-byte nodes in breadth-first order. A branch node sends a row
//! to `le` when `x[feature] <= threshold` and to `gt` otherwise; ONNX's other comparisons are
//! rewritten into that one (`x < t` is `x <= pred(t)`, `>`/`>=` swap the children) and where a
//! NaN goes is one bit of the node. A leaf points at itself, so every row takes exactly
//! `depth` steps with no test for leaves: the loop has no unpredictable branch, and rows are
//! walked eight at a time so their memory loads overlap.
//!
//! Shallow ensembles (every tree at most `MAX_HEAP_DEPTH` deep and the padding small) are also
//! laid out as complete binary trees in heap order, 8 bytes a node: node `i`'s children are
//! `2i+1` and `2i+2`, a leaf above the bottom level is copied into every slot beneath it, and a
//! step is one node load, one feature load and `i = 2i + 1 + (x > t)`. A batch without NaNs
//! takes that path (for a number that is not NaN, `x > t` is exactly `!(x <= t)`); a batch with
//! one takes the general layout, which knows where each node sends a NaN. Leaf values are a dense
//! `n_leaves × n_outputs` table. Scores are then finished exactly as onnxruntime finishes them
//! (base values, binary-class layouts, post transforms), so outputs match it.

use std::collections::HashMap;

/// The high bit of `feature`: a NaN goes to `le`.
const NAN_TO_LE: u32 = 1 << 31;
/// Rows walked together through one tree.
const LANES: usize = 8;
/// The deepest tree the complete (heap-ordered) layout takes.
const MAX_HEAP_DEPTH: u32 = 12;

/// A branch of the complete layout: go right when `x[feature] > threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HeapNode {
    feature: u32,
    threshold: f32,
}

/// Every tree as a complete binary tree in heap order.
#[derive(Debug, Clone, PartialEq)]
struct Heap {
    nodes: Vec<HeapNode>,
    /// Per bottom slot: its row in `leaf_values`.
    leaves: Vec<u32>,
    /// Per tree: its first node, its first bottom slot, and its depth.
    trees: Vec<(usize, usize, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    feature: u32,
    threshold: f32,
    le: u32,
    gt: u32,
}

/// A comparison of ONNX's `nodes_modes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Leaf,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "LEAF" => Mode::Leaf,
            other => return Err(format!("node mode {other} is not supported")),
        })
    }
}

/// How scores are finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

impl PostTransform {
    pub fn parse(s: &str) -> Result<PostTransform, String> {
        Ok(match s {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            other => return Err(format!("post_transform {other} is not supported")),
        })
    }
}

/// How a regressor combines its trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

impl Aggregate {
    pub fn parse(s: &str) -> Result<Aggregate, String> {
        Ok(match s {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => return Err(format!("aggregate_function {other} is not supported")),
        })
    }
}

/// The node and leaf attributes of an ONNX tree ensemble, as read from the graph.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub tree_ids: Vec<i64>,
    pub node_ids: Vec<i64>,
    pub feature_ids: Vec<i64>,
    pub modes: Vec<Mode>,
    pub values: Vec<f32>,
    pub true_ids: Vec<i64>,
    pub false_ids: Vec<i64>,
    pub missing_tracks_true: Vec<i64>,
    /// Leaf weights: tree, node, output (class or target) and weight.
    pub weight_tree_ids: Vec<i64>,
    pub weight_node_ids: Vec<i64>,
    pub weight_output_ids: Vec<i64>,
    pub weights: Vec<f32>,
    pub n_outputs: usize,
}

/// A compiled ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    nodes: Vec<Node>,
    /// Per tree: its root's index and its depth (steps from the root to the deepest leaf).
    roots: Vec<(u32, u32)>,
    /// Per node: its row in `leaf_values` (leaves only).
    leaf_of: Vec<u32>,
    leaf_values: Vec<f32>,
    /// Per leaf: which outputs it has a weight for (bit k: output k; outputs ≥ 64 share bit 63).
    leaf_mask: Vec<u64>,
    /// The complete layout, when every tree is shallow enough.
    heap: Option<Heap>,
    pub n_outputs: usize,
    pub n_features: usize,
    /// The outputs some leaf has a weight for.
    pub weighted_outputs: Vec<usize>,
    pub all_weights_positive: bool,
}

impl Ensemble {
    pub fn compile(spec: &Spec) -> Result<Ensemble, String> {
        let n = spec.node_ids.len();
        let same = [
            spec.tree_ids.len(),
            spec.feature_ids.len(),
            spec.modes.len(),
            spec.values.len(),
            spec.true_ids.len(),
            spec.false_ids.len(),
        ];
        if same.iter().any(|&l| l != n) {
            return Err("the nodes_* attributes have different lengths".into());
        }
        let w = spec.weights.len();
        if [spec.weight_tree_ids.len(), spec.weight_node_ids.len(), spec.weight_output_ids.len()]
            .iter()
            .any(|&l| l != w)
        {
            return Err("the leaf weight attributes have different lengths".into());
        }
        if !spec.missing_tracks_true.is_empty() && spec.missing_tracks_true.len() != n {
            return Err("nodes_missing_value_tracks_true has the wrong length".into());
        }
        if spec.n_outputs == 0 {
            return Err("the ensemble has no classes or targets".into());
        }
        let index: HashMap<(i64, i64), usize> =
            (0..n).map(|i| ((spec.tree_ids[i], spec.node_ids[i]), i)).collect();
        if index.len() != n {
            return Err("two nodes share a (tree, node) id".into());
        }
        let mut trees: Vec<i64> = spec.tree_ids.clone();
        trees.sort_unstable();
        trees.dedup();
        // The root of a tree is the node no other node of the tree points at.
        let mut is_child = vec![false; n];
        for i in 0..n {
            if spec.modes[i] == Mode::Leaf {
                continue;
            }
            for child in [spec.true_ids[i], spec.false_ids[i]] {
                let &c = index.get(&(spec.tree_ids[i], child)).ok_or_else(|| {
                    format!(
                        "node {} of tree {} points at a missing node {child}",
                        spec.node_ids[i], spec.tree_ids[i]
                    )
                })?;
                is_child[c] = true;
            }
        }
        let mut roots_of: HashMap<i64, usize> = HashMap::new();
        for (i, child) in is_child.iter().enumerate() {
            if !child && roots_of.insert(spec.tree_ids[i], i).is_some() {
                return Err(format!("tree {} has more than one root", spec.tree_ids[i]));
            }
        }
        let mut nodes = Vec::with_capacity(n);
        let mut leaf_of = Vec::with_capacity(n);
        let mut roots = Vec::with_capacity(trees.len());
        let mut flat_of: Vec<u32> = vec![u32::MAX; n];
        let mut n_leaves = 0u32;
        let mut max_feature = 0usize;
        for tree in &trees {
            let root = *roots_of.get(tree).ok_or_else(|| format!("tree {tree} has no root"))?;
            // Breadth first: the nodes near the root, visited by every row, sit together.
            let start = nodes.len();
            let mut queue = std::collections::VecDeque::from([(root, 0u32)]);
            let mut order = Vec::new();
            let mut depth = 0;
            while let Some((i, d)) = queue.pop_front() {
                if flat_of[i] != u32::MAX {
                    return Err(format!("tree {tree} is not a tree (a node is reached twice)"));
                }
                flat_of[i] = (start + order.len()) as u32;
                order.push(i);
                depth = depth.max(d);
                if spec.modes[i] != Mode::Leaf {
                    for child in [spec.true_ids[i], spec.false_ids[i]] {
                        queue.push_back((index[&(*tree, child)], d + 1));
                    }
                }
            }
            for &i in &order {
                let me = flat_of[i];
                if spec.modes[i] == Mode::Leaf {
                    nodes.push(Node { feature: 0, threshold: f32::INFINITY, le: me, gt: me });
                    leaf_of.push(n_leaves);
                    n_leaves += 1;
                    continue;
                }
                let feature = usize::try_from(spec.feature_ids[i])
                    .map_err(|_| format!("negative feature id {}", spec.feature_ids[i]))?;
                if feature >= NAN_TO_LE as usize {
                    return Err(format!("feature id {feature} is too large"));
                }
                max_feature = max_feature.max(feature);
                let t = flat_of[index[&(*tree, spec.true_ids[i])]];
                let f = flat_of[index[&(*tree, spec.false_ids[i])]];
                let tracks_true = spec.missing_tracks_true.get(i).copied().unwrap_or(0) != 0;
                let v = spec.values[i];
                // Each comparison as `x <= threshold`: (threshold, le, gt, NaN goes to le).
                let (threshold, le, gt, nan_le) = match spec.modes[i] {
                    Mode::Leq => (v, t, f, tracks_true),
                    Mode::Gt => (v, f, t, !tracks_true),
                    Mode::Lt => (pred(v), t, f, tracks_true),
                    Mode::Gte => (pred(v), f, t, !tracks_true),
                    Mode::Leaf => unreachable!(),
                };
                let flag = if nan_le { NAN_TO_LE } else { 0 };
                nodes.push(Node { feature: feature as u32 | flag, threshold, le, gt });
                leaf_of.push(u32::MAX);
            }
            roots.push((flat_of[root], depth));
        }
        // Children were numbered before their nodes were pushed; fix the le/gt of branches
        // (already flat indices) — nothing to do — and fill the leaf table.
        let n_out = spec.n_outputs;
        let mut leaf_values = vec![0f32; n_leaves as usize * n_out];
        let mut leaf_mask = vec![0u64; n_leaves as usize];
        let mut weighted = vec![false; n_out];
        for j in 0..w {
            let &i = index.get(&(spec.weight_tree_ids[j], spec.weight_node_ids[j])).ok_or_else(
                || format!("a weight names a missing node {}", spec.weight_node_ids[j]),
            )?;
            let leaf = leaf_of[flat_of[i] as usize];
            if leaf == u32::MAX {
                return Err(format!(
                    "a weight names node {} which is not a leaf",
                    spec.node_ids[i]
                ));
            }
            let k =
                usize::try_from(spec.weight_output_ids[j]).ok().filter(|k| *k < n_out).ok_or_else(
                    || format!("a weight names output {} of {n_out}", spec.weight_output_ids[j]),
                )?;
            leaf_values[leaf as usize * n_out + k] += spec.weights[j];
            leaf_mask[leaf as usize] |= 1u64 << k.min(63);
            weighted[k] = true;
        }
        let heap = Heap::build(&nodes, &roots, &leaf_of);
        Ok(Ensemble {
            nodes,
            roots,
            leaf_of,
            leaf_values,
            leaf_mask,
            heap,
            n_outputs: n_out,
            n_features: max_feature + 1,
            weighted_outputs: (0..n_out).filter(|k| weighted[*k]).collect(),
            all_weights_positive: spec.weights.iter().all(|w| *w >= 0.0),
        })
    }

    /// The number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Walks every row of `x` (`n_rows × n_cols`, row-major, `n_cols >= n_features`) through
    /// every tree, calling `leaf(row, leaf)` for the leaf each row reaches, tree by tree.
    fn walk(&self, x: &[f32], n_cols: usize, leaf: impl FnMut(usize, usize)) {
        match &self.heap {
            Some(heap) if !x.iter().any(|v| v.is_nan()) => heap.walk(x, n_cols, leaf),
            _ => self.walk_general(x, n_cols, leaf),
        }
    }

    /// [`Ensemble::walk`] on the general layout, which takes NaNs.
    fn walk_general(&self, x: &[f32], n_cols: usize, mut leaf: impl FnMut(usize, usize)) {
        let n_rows = x.len() / n_cols.max(1);
        let nodes = &self.nodes[..];
        for &(root, depth) in &self.roots {
            let mut row = 0;
            while row + LANES <= n_rows {
                let mut at = [root; LANES];
                let block = &x[row * n_cols..(row + LANES) * n_cols];
                let rows: [&[f32]; LANES] =
                    std::array::from_fn(|lane| &block[lane * n_cols..(lane + 1) * n_cols]);
                for _ in 0..depth {
                    for (idx, r) in at.iter_mut().zip(&rows) {
                        *idx = step(nodes, *idx, r);
                    }
                }
                for (lane, idx) in at.iter().enumerate() {
                    leaf(row + lane, self.leaf_of[*idx as usize] as usize);
                }
                row += LANES;
            }
            for r in row..n_rows {
                let mut idx = root;
                for _ in 0..depth {
                    idx = step(nodes, idx, &x[r * n_cols..]);
                }
                leaf(r, self.leaf_of[idx as usize] as usize);
            }
        }
    }

    /// Sums for exactly `K` outputs, with fixed-size adds the compiler unrolls.
    fn walk_fixed<const K: usize>(&self, x: &[f32], n_cols: usize, scores: &mut [f32]) {
        let (values, _) = self.leaf_values.as_chunks::<K>();
        let (out, _) = scores.as_chunks_mut::<K>();
        self.walk(x, n_cols, |row, leaf| {
            let (o, v) = (&mut out[row], &values[leaf]);
            for j in 0..K {
                o[j] += v[j];
            }
        });
    }

    /// Raw sums per row and output, and which outputs each row got a weight for.
    fn sums(&self, x: &[f32], n_cols: usize) -> (Vec<f32>, Vec<u64>) {
        let n_rows = x.len() / n_cols.max(1);
        let k = self.n_outputs;
        let mut scores = vec![0f32; n_rows * k];
        // Usually every leaf weighs the same outputs: then every row's mask is that one.
        let uniform = self.leaf_mask.iter().all(|m| *m == self.leaf_mask[0]);
        if uniform && !self.roots.is_empty() {
            let values = &self.leaf_values[..];
            if k == 1 {
                self.walk(x, n_cols, |row, leaf| scores[row] += values[leaf]);
            } else if k == 4 {
                self.walk_fixed::<4>(x, n_cols, &mut scores);
            } else if k == 3 {
                self.walk_fixed::<3>(x, n_cols, &mut scores);
            } else if k == 2 {
                self.walk_fixed::<2>(x, n_cols, &mut scores);
            } else {
                self.walk(x, n_cols, |row, leaf| {
                    let src = &values[leaf * k..leaf * k + k];
                    for (s, v) in scores[row * k..row * k + k].iter_mut().zip(src) {
                        *s += v;
                    }
                });
            }
            return (scores, vec![self.leaf_mask[0]; n_rows]);
        }
        let mut masks = vec![0u64; n_rows];
        self.walk(x, n_cols, |row, leaf| {
            let src = &self.leaf_values[leaf * k..leaf * k + k];
            for (s, v) in scores[row * k..row * k + k].iter_mut().zip(src) {
                *s += v;
            }
            masks[row] |= self.leaf_mask[leaf];
        });
        (scores, masks)
    }

    /// A regressor's predictions, `n_rows × n_outputs`.
    pub fn regress(
        &self,
        x: &[f32],
        n_cols: usize,
        aggregate: Aggregate,
        base_values: &[f32],
        post: PostTransform,
    ) -> Vec<f32> {
        let n_rows = x.len() / n_cols.max(1);
        let k = self.n_outputs;
        let mut out = match aggregate {
            Aggregate::Sum | Aggregate::Average => self.sums(x, n_cols).0,
            Aggregate::Min | Aggregate::Max => {
                let init =
                    if aggregate == Aggregate::Min { f32::INFINITY } else { f32::NEG_INFINITY };
                let mut out = vec![init; n_rows * k];
                let mut seen = vec![0u64; n_rows];
                self.walk(x, n_cols, |row, leaf| {
                    let mask = self.leaf_mask[leaf];
                    for j in 0..k {
                        if mask & (1 << j.min(63)) == 0 {
                            continue;
                        }
                        let v = self.leaf_values[leaf * k + j];
                        let o = &mut out[row * k + j];
                        *o = if aggregate == Aggregate::Min { o.min(v) } else { o.max(v) };
                    }
                    seen[row] |= mask;
                });
                for (row, mask) in seen.iter().enumerate() {
                    for j in 0..k {
                        if mask & (1 << j.min(63)) == 0 {
                            out[row * k + j] = 0.0;
                        }
                    }
                }
                out
            }
        };
        let n_trees = self.n_trees() as f32;
        let use_base = base_values.len() == k;
        // onnxruntime adds a single base value to a single target only.
        let origin = if base_values.len() == 1 && k == 1 { base_values[0] } else { 0.0 };
        for row in out.chunks_mut(k) {
            for (j, v) in row.iter_mut().enumerate() {
                if aggregate == Aggregate::Average {
                    *v /= n_trees;
                }
                if k == 1 {
                    *v += origin;
                } else if use_base {
                    *v += base_values[j];
                }
            }
            if k >= 2 {
                transform(row, post);
            }
        }
        out
    }

    /// A classifier's label indices and probabilities (`n_rows × max(2, n_classes)`), for
    /// `n_classes` labels, finished as onnxruntime finishes them.
    pub fn classify(
        &self,
        x: &[f32],
        n_cols: usize,
        n_classes: usize,
        base_values: &[f32],
        post: PostTransform,
    ) -> (Vec<usize>, Vec<f32>) {
        let (sums, masks) = self.sums(x, n_cols);
        let k = self.n_outputs;
        let width = n_classes.max(2);
        let n_rows = masks.len();
        let mut labels = Vec::with_capacity(n_rows);
        let mut probs = vec![0f32; n_rows * width];
        let binary_case = n_classes == 2 && self.weighted_outputs.len() == 1;
        let has = |mask: u64, j: usize| mask & (1 << j.min(63)) != 0;
        // Scratch rows, reused: no allocation per row.
        let mut scores: Vec<f32> = Vec::with_capacity(k);
        let mut scored: Vec<bool> = Vec::with_capacity(k);
        for row in 0..n_rows {
            let s = &sums[row * k..row * k + k];
            let mask = masks[row];
            let out = &mut probs[row * width..row * width + width];
            if n_classes > 2 {
                scores.clear();
                scores.extend_from_slice(s);
                scored.clear();
                scored.extend((0..k).map(|j| has(mask, j)));
                for (j, b) in base_values.iter().enumerate().take(k) {
                    scores[j] += b;
                    scored[j] = true;
                }
                let mut best: Option<usize> = None;
                for j in 0..k {
                    if scored[j] && best.is_none_or(|b| scores[j] > scores[b]) {
                        best = Some(j);
                    }
                }
                labels.push(best.unwrap_or(0));
                transform(&mut scores, post);
                out[..k].copy_from_slice(&scores);
                continue;
            }
            // Two classes: onnxruntime's binary rules.
            let (mut s0, mut s1) = (s[0], if k > 1 { s[1] } else { 0.0 });
            let (h0, mut h1) = (has(mask, 0), k > 1 && has(mask, 1));
            let mut additional = -1;
            let mut two = true;
            match base_values.len() {
                2 => {
                    if h1 {
                        s1 = base_values[1] + s0;
                        s0 = -s1;
                        h1 = true;
                    } else {
                        s1 += base_values[1];
                        s0 += base_values[0];
                    }
                }
                1 => {
                    s0 += base_values[0];
                    two = h1;
                }
                0 => {
                    additional = 3;
                    two = h1;
                }
                _ => two = h1,
            }
            let pos = if two && h1 {
                s1
            } else if h0 {
                s0
            } else {
                0.0
            };
            let label = if binary_case {
                if self.all_weights_positive {
                    additional = if pos > 0.5 { 0 } else { 1 };
                    usize::from(pos > 0.5)
                } else {
                    additional = if pos > 0.0 { 2 } else { 3 };
                    usize::from(pos > 0.0)
                }
            } else {
                usize::from(pos > 0.0)
            };
            labels.push(label);
            if two {
                let mut scores = [s0, s1];
                transform(&mut scores, post);
                out[..2].copy_from_slice(&scores);
            } else {
                let v = s0;
                let pair = match (additional, post) {
                    (0 | 1, _) => [1.0 - v, v],
                    (2 | 3, PostTransform::Logistic) => [logistic(-v), logistic(v)],
                    (2, _) => [-v, v],
                    (3, _) => [v, -v],
                    _ => [v, 0.0],
                };
                out[..2].copy_from_slice(&pair);
            }
        }
        (labels, probs)
    }
}

impl Heap {
    /// The complete layout of the compiled trees, or `None` when a tree is deeper than
    /// `MAX_HEAP_DEPTH`, padding would more than quadruple the nodes, or a threshold is NaN.
    fn build(nodes: &[Node], roots: &[(u32, u32)], leaf_of: &[u32]) -> Option<Heap> {
        let padded: usize = roots.iter().map(|&(_, d)| 1usize << d.min(MAX_HEAP_DEPTH)).sum();
        if roots.iter().any(|&(_, d)| d > MAX_HEAP_DEPTH)
            || padded > 4 * nodes.len() + 4096
            || nodes.iter().any(|n| n.threshold.is_nan())
        {
            return None;
        }
        let mut heap = Heap { nodes: Vec::new(), leaves: Vec::new(), trees: Vec::new() };
        for &(root, depth) in roots {
            let (node_base, leaf_base) = (heap.nodes.len(), heap.leaves.len());
            let filler = HeapNode { feature: 0, threshold: f32::INFINITY };
            heap.nodes.resize(node_base + (1 << depth) - 1, filler);
            heap.leaves.resize(leaf_base + (1 << depth), 0);
            // (flat node, heap slot, level); a leaf above the bottom fills its whole subtree.
            let mut stack = vec![(root, 0usize, 0u32)];
            while let Some((at, slot, level)) = stack.pop() {
                let node = nodes[at as usize];
                let is_leaf = node.le == at && node.gt == at;
                if is_leaf {
                    let below = depth - level;
                    let first = ((slot + 1) << below) - 1 - ((1 << depth) - 1);
                    let leaf = leaf_of[at as usize];
                    heap.leaves[leaf_base + first..leaf_base + first + (1 << below)].fill(leaf);
                    continue;
                }
                heap.nodes[node_base + slot] =
                    HeapNode { feature: node.feature & !NAN_TO_LE, threshold: node.threshold };
                stack.push((node.le, 2 * slot + 1, level + 1));
                stack.push((node.gt, 2 * slot + 2, level + 1));
            }
            heap.trees.push((node_base, leaf_base, depth));
        }
        Some(heap)
    }

    /// [`Ensemble::walk`] for rows without NaNs.
    fn walk(&self, x: &[f32], n_cols: usize, mut leaf: impl FnMut(usize, usize)) {
        let n_rows = x.len() / n_cols.max(1);
        for &(node_base, leaf_base, depth) in &self.trees {
            let n_branches = (1usize << depth) - 1;
            let nodes = &self.nodes[node_base..node_base + n_branches];
            let leaves = &self.leaves[leaf_base..leaf_base + n_branches + 1];
            let mut row = 0;
            while row + LANES <= n_rows {
                let block = &x[row * n_cols..(row + LANES) * n_cols];
                let mut at = [0usize; LANES];
                for _ in 0..depth {
                    for (lane, i) in at.iter_mut().enumerate() {
                        let node = nodes[*i];
                        let v = block[lane * n_cols + node.feature as usize];
                        *i = 2 * *i + 1 + usize::from(v > node.threshold);
                    }
                }
                for (lane, i) in at.iter().enumerate() {
                    leaf(row + lane, leaves[*i - n_branches] as usize);
                }
                row += LANES;
            }
            for r in row..n_rows {
                let values = &x[r * n_cols..(r + 1) * n_cols];
                let mut i = 0;
                for _ in 0..depth {
                    let node = nodes[i];
                    i = 2 * i + 1 + usize::from(values[node.feature as usize] > node.threshold);
                }
                leaf(r, leaves[i - n_branches] as usize);
            }
        }
    }
}

#[inline(always)]
fn step(nodes: &[Node], idx: u32, row: &[f32]) -> u32 {
    let node = nodes[idx as usize];
    let x = row[(node.feature & !NAN_TO_LE) as usize];
    // Non-short-circuit `|`/`&` and a two-entry select: no branch on the data.
    let le = (x <= node.threshold) | (x.is_nan() & (node.feature & NAN_TO_LE != 0));
    [node.gt, node.le][le as usize]
}

/// The largest f32 below `v` (`x < v` is `x <= pred(v)` for every non-NaN `x`).
fn pred(v: f32) -> f32 {
    if v.is_nan() || v == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    if v == 0.0 {
        return -f32::from_bits(1);
    }
    let bits = v.to_bits();
    f32::from_bits(if v > 0.0 { bits - 1 } else { bits + 1 })
}

fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

pub(crate) fn transform(scores: &mut [f32], post: PostTransform) {
    match post {
        PostTransform::None => {}
        PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
        PostTransform::Softmax => {
            let max = scores.iter().copied().fold(-f32::MAX, f32::max);
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            scores.iter_mut().for_each(|s| *s /= sum);
        }
        PostTransform::SoftmaxZero => {
            let max = scores.iter().copied().fold(-f32::MAX, f32::max);
            let exp_neg_max = (-max).exp();
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                if s.abs() > 1e-7 {
                    *s = (*s - max).exp();
                    sum += *s;
                } else {
                    *s *= exp_neg_max;
                }
            }
            scores.iter_mut().for_each(|s| *s /= sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One tree: x0 <= 0.5 ? (x1 < 2 ? A : B) : C, with leaf weights on `outputs`.
    fn spec(mode_root: Mode) -> Spec {
        Spec {
            tree_ids: vec![0; 5],
            node_ids: vec![0, 1, 2, 3, 4],
            feature_ids: vec![0, 1, 0, 0, 0],
            modes: vec![mode_root, Mode::Lt, Mode::Leaf, Mode::Leaf, Mode::Leaf],
            values: vec![0.5, 2.0, 0.0, 0.0, 0.0],
            true_ids: vec![1, 3, 0, 0, 0],
            false_ids: vec![2, 4, 0, 0, 0],
            missing_tracks_true: vec![],
            weight_tree_ids: vec![0, 0, 0],
            weight_node_ids: vec![2, 3, 4],
            weight_output_ids: vec![0, 0, 0],
            weights: vec![30.0, 10.0, 20.0],
            n_outputs: 1,
        }
    }

    fn regress(spec: &Spec, rows: &[[f32; 2]]) -> Vec<f32> {
        let e = Ensemble::compile(spec).unwrap();
        let x: Vec<f32> = rows.iter().flatten().copied().collect();
        e.regress(&x, 2, Aggregate::Sum, &[], PostTransform::None)
    }

    #[test]
    fn comparisons_and_nans_follow_onnx() {
        let rows = [[0.5, 1.0], [0.5, 2.0], [0.6, 0.0], [f32::NAN, 0.0], [0.0, f32::NAN]];
        assert_eq!(regress(&spec(Mode::Leq), &rows), [10.0, 20.0, 30.0, 30.0, 20.0]);
        // x0 > 0.5 sends 0.6 and (NaN > 0.5 is false) NaN to the false branch.
        assert_eq!(regress(&spec(Mode::Gt), &rows), [30.0, 30.0, 10.0, 30.0, 30.0]);
        let mut tracks = spec(Mode::Leq);
        tracks.missing_tracks_true = vec![1, 1, 0, 0, 0];
        assert_eq!(regress(&tracks, &rows), [10.0, 20.0, 30.0, 10.0, 10.0]);
        // 16 rows take the eight-lane path and agree with the scalar path.
        let many: Vec<[f32; 2]> = (0..19).map(|i| [i as f32 / 10.0, (i % 4) as f32]).collect();
        let expected: Vec<f32> = many
            .iter()
            .map(|r| if r[0] <= 0.5 { if r[1] < 2.0 { 10.0 } else { 20.0 } } else { 30.0 })
            .collect();
        assert_eq!(regress(&spec(Mode::Leq), &many), expected);
    }

    /// A random ensemble of unbalanced trees (leaves at every depth), `n_outputs` outputs.
    fn random_spec(seed: u64, n_trees: i64, max_depth: u32, n_features: i64) -> Spec {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let mut s = Spec { n_outputs: 3, ..Spec::default() };
        for tree in 0..n_trees {
            // (node id, depth) to expand; ids are handed out in order.
            let mut pending = vec![(0i64, 0u32)];
            let mut next_id = 1i64;
            while let Some((id, depth)) = pending.pop() {
                s.tree_ids.push(tree);
                s.node_ids.push(id);
                s.missing_tracks_true.push(0);
                let leaf = depth == max_depth || (depth > 0 && next() % 4 == 0);
                if leaf {
                    s.modes.push(Mode::Leaf);
                    s.feature_ids.push(0);
                    s.values.push(0.0);
                    s.true_ids.push(0);
                    s.false_ids.push(0);
                    for k in 0..3 {
                        s.weight_tree_ids.push(tree);
                        s.weight_node_ids.push(id);
                        s.weight_output_ids.push(k);
                        s.weights.push((next() % 1000) as f32 / 100.0);
                    }
                    continue;
                }
                let mode = [Mode::Leq, Mode::Lt, Mode::Gte, Mode::Gt][next() as usize % 4];
                s.modes.push(mode);
                s.feature_ids.push(i64::from(next()) % n_features);
                s.values.push((next() % 100) as f32 / 10.0);
                s.true_ids.push(next_id);
                s.false_ids.push(next_id + 1);
                pending.push((next_id, depth + 1));
                pending.push((next_id + 1, depth + 1));
                next_id += 2;
            }
        }
        s
    }

    #[test]
    fn the_complete_layout_reaches_the_leaves_the_general_one_does() {
        for (seed, max_depth) in [(1, 1), (2, 4), (3, 6), (4, 9)] {
            let e = Ensemble::compile(&random_spec(seed, 7, max_depth, 5)).unwrap();
            assert!(e.heap.is_some(), "depth {max_depth} takes the complete layout");
            // Rows on the thresholds too (x = t and the next float up), 8-lane blocks and a tail.
            let x: Vec<f32> =
                (0..5 * 37).map(|i| ((i * 7919 % 101) as f32 / 10.0).max(-1.0)).collect();
            let (mut heap, mut general) = (Vec::new(), Vec::new());
            e.heap.as_ref().unwrap().walk(&x, 5, |row, leaf| heap.push((row, leaf)));
            e.walk_general(&x, 5, |row, leaf| general.push((row, leaf)));
            heap.sort_unstable();
            general.sort_unstable();
            assert_eq!(heap, general, "seed {seed}");
            // A batch with a NaN takes the general layout and still answers every row.
            let mut with_nan = x.clone();
            with_nan[3] = f32::NAN;
            let mut n = 0;
            e.walk(&with_nan, 5, |_, _| n += 1);
            assert_eq!(n, 37 * e.n_trees());
        }
        // Too deep for the complete layout: the general one alone.
        let deep = Ensemble::compile(&random_spec(5, 2, MAX_HEAP_DEPTH + 1, 3)).unwrap();
        assert!(deep.roots.iter().any(|&(_, d)| d > MAX_HEAP_DEPTH) == deep.heap.is_none());
    }

    #[test]
    fn pred_is_the_next_float_down() {
        for v in [2.0f32, -2.0, 1e-30, -1e-30, f32::MAX] {
            assert!(pred(v) < v);
            // One step apart: no float lies between them.
            assert_eq!(v.to_bits().abs_diff(pred(v).to_bits()), 1, "{v}");
        }
        assert!(pred(0.0) < 0.0 && pred(0.0) > -1e-40);
    }

    #[test]
    fn broken_ensembles_are_refused() {
        let mut s = spec(Mode::Leq);
        s.true_ids[0] = 9;
        assert!(Ensemble::compile(&s).unwrap_err().contains("missing node 9"));
        let mut s = spec(Mode::Leq);
        s.weight_node_ids[0] = 0;
        assert!(Ensemble::compile(&s).unwrap_err().contains("not a leaf"));
        let mut s = spec(Mode::Leq);
        s.values.pop();
        assert!(Ensemble::compile(&s).is_err());
    }
}
