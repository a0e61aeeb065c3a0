"""Flat vs tree-structured outputs: the losses, and turning outputs into leaf predictions.

``flat``: one channel per leaf class (classes.txt order), softmax cross-entropy.

``tree`` (after HSSN, Li et al., CVPR 2022): one channel per node of every level,
background included (levels concatenated: 2 + 3 + 7 = 12 channels for the
person tree). The loss is a softmax cross-entropy per level plus the focal
tree-min loss on sigmoid scores s:

    p_v = min(s_u for u in {v} + ancestors(v))      (a node is only as likely as its ancestors)
    q_v = max(s_u for u in {v} + descendants(v))    (nor less likely than its descendants)
    L_v = -y_v (1 - p_v)^g log p_v - (1 - y_v) q_v^g log(1 - q_v)

averaged over pixels and over each level's nodes, summed over levels. Since log
is monotonic, log p_v = min log s_u and log(1 - q_v) = min log(1 - s_u), which we
compute with logsigmoid for stability.

Tree inference takes, per pixel, the root-to-leaf path with the highest summed
sigmoid score, so the three levels always agree with the tree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .tree import IGNORE, ClassTree


def class_argmax(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``scores.argmax(dim)`` (the first maximum on ties, like argmax), computed as ``max(dim).indices``:
    on CPU (torch 2.14) argmax over a dimension that is not the last runs about 8x slower than max,
    and it was 40 % of evaluate's time (`tests/test_hierarchy.py` checks the two agree)."""
    return scores.max(dim).indices


def num_outputs(tree: ClassTree, head: str) -> int:
    return tree.num_leaves if head == "flat" else sum(level.num_classes for level in tree.levels)


def split_levels(outputs: torch.Tensor, tree: ClassTree) -> list[torch.Tensor]:
    return list(torch.split(outputs, [level.num_classes for level in tree.levels], dim=1))


def parent_index(tree: ClassTree, k: int) -> torch.Tensor:
    """For each class of level k>0, the index of the level k-1 class containing it."""
    fine, coarse = tree.levels[k], tree.levels[k - 1]
    index = torch.zeros(fine.num_classes, dtype=torch.long)
    for leaf_id in range(tree.num_leaves):
        index[fine.leaf_to_level[leaf_id]] = int(coarse.leaf_to_level[leaf_id])
    return index


def tree_min_loss(outputs: torch.Tensor, level_targets: list[torch.Tensor], tree: ClassTree,
                  gamma: float = 2.0) -> torch.Tensor:
    """The focal tree-min loss above. outputs: (N, sum of level sizes, H, W) raw scores;
    pixels labelled IGNORE are left out of the mean."""
    groups = split_levels(outputs, tree)
    parents = [None] + [parent_index(tree, k).to(outputs.device) for k in range(1, len(groups))]
    # log p: top-down running minimum of log s along the ancestor chain
    log_p = [F.logsigmoid(groups[0])]
    for k in range(1, len(groups)):
        log_p.append(torch.minimum(F.logsigmoid(groups[k]), log_p[k - 1].index_select(1, parents[k])))
    # log(1 - q): bottom-up running minimum of log(1 - s) over each node's descendants
    log_not_q = [None] * len(groups)
    log_not_q[-1] = F.logsigmoid(-groups[-1])
    for k in range(len(groups) - 2, -1, -1):
        child = log_not_q[k + 1]
        own = F.logsigmoid(-groups[k])
        # min over children: scatter their values into the parent channels with amin
        shape = list(own.shape)
        idx = parents[k + 1].view(1, -1, 1, 1).expand(shape[0], -1, shape[2], shape[3])
        from_children = torch.full_like(own, 0.0).scatter_reduce(1, idx, child, reduce="amin", include_self=True)
        log_not_q[k] = torch.minimum(own, from_children)
    total = outputs.new_zeros(())
    for k, target in enumerate(level_targets):
        valid = (target != IGNORE).unsqueeze(1)
        n_cls = groups[k].shape[1]
        y = F.one_hot(target.clamp(max=n_cls - 1), n_cls).permute(0, 3, 1, 2).to(outputs.dtype)
        p, q = log_p[k].exp(), 1 - log_not_q[k].exp()
        loss = -y * (1 - p).pow(gamma) * log_p[k] - (1 - y) * q.pow(gamma) * log_not_q[k]
        # mean over valid pixels and over this level's nodes
        total = total + (loss * valid).sum() / (valid.sum().clamp(min=1) * n_cls)
    return total


def level_targets(leaf_mask: torch.Tensor, tree: ClassTree) -> list[torch.Tensor]:
    """Each level's label map; IGNORE stays IGNORE."""
    out = []
    for level in tree.levels:
        table = torch.full((256,), IGNORE, dtype=torch.long, device=leaf_mask.device)
        table[:tree.num_leaves] = torch.as_tensor(level.leaf_to_level, device=leaf_mask.device)
        out.append(table[leaf_mask.long()])
    return out


def leaf_scores(outputs: torch.Tensor, tree: ClassTree, head: str) -> torch.Tensor:
    """(N, num_leaves, H, W) scores in classes.txt order whose argmax is the leaf prediction.

    Flat: the logits. Tree: each leaf's root-to-leaf path score, the sum over
    levels of the sigmoid score of the leaf's node at that level."""
    outputs = outputs.float()
    if head == "flat":
        return outputs
    total = 0
    for level, group in zip(tree.levels, split_levels(outputs.sigmoid(), tree)):
        total = total + group.index_select(1, torch.as_tensor(level.leaf_to_level, device=outputs.device))
    return total


def nested_pixels(level_preds: list[torch.Tensor], tree: ClassTree) -> tuple[int, int]:
    """(pixels whose per-level predictions nest as the tree says, pixels)."""
    ok = torch.ones_like(level_preds[0], dtype=torch.bool)
    for k in range(1, len(level_preds)):
        ok &= parent_index(tree, k).to(level_preds[k].device)[level_preds[k]] == level_preds[k - 1]
    return int(ok.sum()), ok.numel()


def independent_consistency(outputs: torch.Tensor, tree: ClassTree) -> tuple[int, int]:
    """(consistent pixels, pixels) when each level of a tree-head output is argmaxed on its own:
    how often level-wise predictions would disagree without path inference."""
    return nested_pixels([class_argmax(g) for g in split_levels(outputs, tree)], tree)
