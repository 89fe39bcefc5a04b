"""The one protocol every learner follows, exact, classical or learned.

A learner holds no per-task data itself: everything it knows about a batch of tasks lives in a
*state* (a dict of tensors with a leading task dimension), so the same learner object serves any
number of tasks and the rollout loop can drive, detach, or move any learner's state the same way.

    state = learner.init(x_query)        # x_query [T, M, D]: the points it will be asked about
    state = learner.step(state, x, y)    # one mini-batch x [T, B, D], y [T, B, O]
    pred  = learner.predict(state, x_query)   # [T, M, O]: values, or logits for classification

Only the implicit regime needs ``x_query`` at ``init`` (its state *is* the running prediction at
those queries); the others ignore it apart from its batch size, device and dtype.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

State = dict[str, Tensor]


@runtime_checkable
class Learner(Protocol):
    name: str
    regime: str  # one of iai.core.vocab.REGIMES
    signal: str  # "obs" | "grad" | "both" for learned parametric/explicit learners, else "none"

    def init(self, x_query: Tensor) -> State: ...

    def step(self, state: State, x: Tensor, y: Tensor) -> State: ...

    def predict(self, state: State, x_query: Tensor) -> Tensor: ...


def detach(state: State) -> State:
    """Cut the graph between steps: greedy training never backpropagates into an earlier step."""
    return {k: v.detach() for k, v in state.items()}

