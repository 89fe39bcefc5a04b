"""Counted FLOPs of the learned learners' steps and rollouts, from their architecture (device independent).

What claim 6 compares with K = n / B (``iai bench cost``) and what the meta-training benchmark turns
into FLOP/s (``iai bench train``); checked against ``torch.utils.flop_counter`` in tests/test_bench.py.
"""

from __future__ import annotations


def step_flops(learner, n_points: int, n_query: int) -> dict[str, int]:
    """Counted FLOPs of one step of a learned learner, per task: ``attention`` (QK^T and AV) and
    ``dense`` (every linear layer of the step network: token embeddings, q/kv/out, feed-forward, head).

    Counted from the architecture (2 FLOPs per multiply-add): with S tokens of which C are context,
    width W, feed-forward F and depth L, a block costs 4 S C W in attention and 4 S W^2 + 4 C W^2 +
    4 S W F in dense layers; the last block updates only the R tokens the heads read (the state
    tokens, or the queries: ``SetTransformer(outputs=...)``), so there S becomes R.
    ``torch.utils.flop_counter`` counts no attention on CPU (the
    CPU flash kernel is not in its registry), so it is used only to check the dense part and, with
    the math attention backend, the whole (tests/test_bench.py).
    """
    m = learner.model_cfg
    w, f, depth = m.width, m.ff, m.depth
    if learner.regime == "implicit":
        q_dim = learner.backbone.embed["query"].in_features
        groups = {"obs": (n_points, learner.family.in_dim + learner.family.out_dim), "query": (n_query, q_dim)}
        s, c, r = n_points + n_query, n_points, n_query
        head = 2 * n_query * w * learner.state_dim
    else:
        k, e = learner.n_units, learner.unit_dim
        dims = {name: lin.in_features for name, lin in learner.backbone.embed.items()}
        sizes = {"state": k, "grad": k, "memory": learner.cfg.memory, "history": learner.history * k, "obs": n_points}
        groups = {name: (sizes[name], dims[name]) for name in dims}
        s = c = sum(n for n, _ in groups.values())
        # the rows the heads read: the state tokens, and with memory the gradient tokens before them (if
        # they are their own group) and the memory tokens
        r = k + (sizes["grad"] * ("grad" in dims) + learner.cfg.memory if learner.cfg.memory else 0)
        head = 2 * k * w * e + 2 * learner.cfg.memory * w * e
    if not learner.backbone.prune:
        r = s
    embed = sum(2 * n * d * w for n, d in groups.values())

    def block(rows: int) -> int:
        return 2 * rows * w * w * 2 + 4 * c * w * w + 4 * rows * w * f

    dense = embed + (depth - 1) * block(s) + block(r) + head
    return {"attention": 4 * c * w * ((depth - 1) * s + r), "dense": dense}


def rollout_flops(learner, n: int, n_query: int) -> dict[str, int]:
    """FLOPs per task of a whole rollout over n points (ceil(n / B) steps, or one step of n)."""
    b = learner.batch_size if learner.mode == "iterative" else n
    full, rest = divmod(n, b)
    out = {k: v * full for k, v in step_flops(learner, b, n_query).items()}
    if rest:
        out = {k: out[k] + v for k, v in step_flops(learner, rest, n_query).items()}
    return out
