"""The explicit regime: a learned latent z refined step by step, read by a learned decoder f_gamma(x, z).

Everything of the parametric regime carries over (same step network, same signals, gradients now
taken with respect to z *through the decoder*); only the predictor is learned too, jointly with the
step network. ``latent_tokens`` tokens of ``latent_dim`` make up z; ``decoder`` picks the decoder
(:class:`BilinearDecoder` by default, or :class:`FiLMDecoder`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iai.core.learners.backbone import LearnerConfig, ModelConfig
from iai.core.learners.learned import learner
from iai.core.learners.parametric import ParametricLearner
from iai.core.tasks import TaskFamily


class FiLMDecoder(nn.Module):
    """f_gamma(x, z): an MLP whose first layer is FiLM-conditioned on z, then two GELU layers.

    h = W_x x + W_z z + (A_x x) * (A_z z): the multiplicative term lets the decoder express the
    bilinear maps x^T W z that a linear family needs (a plain MLP on [x, z] learns them slowly).
    """

    def __init__(self, in_dim: int, latent: int, hidden: int, out_dim: int):
        super().__init__()
        self.x_in, self.z_in = nn.Linear(in_dim, 2 * hidden), nn.Linear(latent, 2 * hidden)
        self.net = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        # x [T, M, D], z [T, L, Z] -> [T, M, O]
        ax, bx = self.x_in(x).chunk(2, -1)  # [T, M, H] each
        az, bz = self.z_in(z.flatten(1).to(x.dtype)).unsqueeze(1).chunk(2, -1)  # [T, 1, H] each
        return self.net(ax + az + bx * bz)


class BilinearDecoder(nn.Module):
    """f_gamma(x, z) = phi(x)^T A(z) + b(z): learned features of x, read by a linear map that z sets.

    phi(x) = [x, mlp(x)] keeps the raw input among the features, so a map linear in x needs no
    learning of the features, and z acts as the weights of a linear model on them (a learned
    basis, as in a last-layer adaptation). Output ``[T, M, O]``.
    """

    def __init__(self, in_dim: int, latent: int, hidden: int, out_dim: int):
        super().__init__()
        self.out_dim, self.n_feat = out_dim, in_dim + hidden
        self.features = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.weights = nn.Linear(latent, (self.n_feat + 1) * out_dim)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        phi = torch.cat([x, self.features(x)], -1)  # [T, M, F]
        a = self.weights(z.flatten(1).to(x.dtype)).unflatten(-1, (self.n_feat + 1, self.out_dim))  # [T, F + 1, O]
        return phi @ a[:, :-1] + a[:, -1:]


DECODER_CLASSES = {"film": FiLMDecoder, "bilinear": BilinearDecoder}


@learner("explicit", example=("linear_regression", {"dim": 4, "noise_std": 0.5},
                                 {"regime": "explicit", "signal": "both", "latent_tokens": 2, "latent_dim": 3,
                                  "decoder": "film", "grad_norm": "rms"}))
class ExplicitLearner(ParametricLearner):
    regime = "explicit"

    def __init__(self, name: str, family: TaskFamily, cfg: LearnerConfig, model: ModelConfig,
                 batch_size: int, context_size: int):
        super().__init__(name, family, cfg, model, batch_size, context_size)
        self.decoder = DECODER_CLASSES[cfg.decoder](family.in_dim, cfg.latent_tokens * cfg.latent_dim,
                                                    cfg.decoder_hidden, family.out_dim)

    def state_shape(self) -> tuple[int, int]:
        if self.cfg.tokens == "coordinate":  # the decoder reads z flattened: any layout of its numbers will do
            return self.cfg.latent_tokens * self.cfg.latent_dim, 1
        return self.cfg.latent_tokens, self.cfg.latent_dim

    def initial_state(self) -> Tensor:
        return torch.zeros(self.state_shape())

    def f(self, x: Tensor, theta: Tensor) -> Tensor:
        return self.decoder(x, theta)
