"""Factored masked PPO: each segment's play is credited with what its own customers earn.

The action of ``Territory-v1`` is one play per customer segment (9 heads of 8 plays).  Masked PPO gives all 9
heads one scalar advantage, the whole territory's return: each head's gradient then carries the noise of the
other 8 heads' random choices and of the territory itself (whose return spread is larger than anything a
policy changes; docs/PERFORMANCE.md section 7).  Here the environment reports each step's reward split by HCP
(``env.hcp_rewards``) and the segment each HCP was in when the plays were chosen, and the trainer credits head
``k`` at step ``t`` with the advantage of the *cohort* it addressed, the HCPs in segment ``k`` at ``t``:

    v_i(t)   = V_seg(i,t)(s_t) / (members of that segment at t)    (an HCP's value: its segment's, shared)
    d_i(t)   = r_i(t) + gamma * v_i(t+1) - v_i(t)                  (v_i(T) = 0: the tail is in the last reward;
                                                                    with reward observed v_i(T) is bootstrapped)
    a_i(t)   = d_i(t) + gamma * lambda * a_i(t+1)                  (GAE, per HCP)
    A_k(t)   = sum over HCPs i in segment k at step t of a_i(t)    (wherever its HCPs move later)

with a critic of one output per segment (trained on ``A_k + V_k``), and each head gets its own clipped surrogate
with its own probability ratio (the heads are independent factors of the policy, so this is PPO applied factor by
factor).  Every rollout is one whole episode of each of the ``n_envs`` territories, started together, so nothing
is bootstrapped beyond the horizon, whose value is the environment's own terminal value (``env.terminal_value``).
With ``env.reward: observed`` (the Rx the pipeline publishes to the view, no value from the true state, the horizon a
truncation) the critic's values of the final state are bootstrapped instead, shared over each segment's members as
at the last decision (the segments at the horizon itself are not reported; the same bootstrap SB3 makes on
truncation, on a state its critic was never trained at).
A customer converted by one head and then addressed by another is credited to both (both plays contributed); the
field force's salaries are in no cohort (no play changes them).  What the credit ignores: effects across segments
(shared field capacity, reps' own picks, a KOL's followers elsewhere).  Measured (``oce_sim.studies.spillover``,
docs/PERFORMANCE.md §8): on the default scenario the other segments lose 23 cents for each dollar a segment's
follow-up play earns its own cohort over a year (-0.23 [-0.31, -0.15]), and in the low-potential segments more
than the play earns (``low_non_prescriber``: -4.6), so the credit overstates those heads' plays.  Trained on the expected reward (privileged:
computed from the customers' true state) or the observed one (``env.reward``).

The networks are Stable-Baselines3's ``MaskableActorCriticPolicy`` with a value head of 9 outputs, so the model
file, ``oce-sim compare --model`` and every other consumer of masked-PPO models work unchanged
(``oce_sim.agents.model_file``, algorithm ``factored-ppo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from oce_sim.agents.model_file import with_segment_values
from oce_sim.config import ScenarioConfig, load_scenario
from oce_sim.world import dispatch

N_HEADS = dispatch.N_SEGMENTS
N_PLAYS = dispatch.N_PLAYS
TRAIN_SEED_OFFSET = 1_000_000  # training territories are seeded from here up: far from evaluation seeds (100,000+)


@dataclass
class FactoredSettings:
    """Hyper-parameters (``oce-sim train --algo factored-ppo`` maps its own flags onto these)."""

    n_envs: int = 16  # territories per rollout; each rollout is one whole episode of each
    learning_rate: float = 3e-4
    n_epochs: int = 10
    n_minibatches: int = 4
    gamma: float = 1.0  # the KPI's own weighting: the tail is already discounted inside the terminal value
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5


def make_policy(observation_space: Any, action_space: Any, net_arch: list[int], learning_rate: float = 3e-4) -> Any:
    """SB3's masked actor-critic with one value output per segment (and an Adam optimizer over all of it)."""
    import torch
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    policy = MaskableActorCriticPolicy(observation_space, action_space, lr_schedule=lambda _: learning_rate,
                                       net_arch=list(net_arch))
    with_segment_values(policy)
    policy.optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate, eps=1e-5)
    return policy


def heads(policy: Any, obs: Any, mask: Any) -> tuple[Any, Any]:
    """Masked log-probabilities ``(B, 9, 8)`` of every play and the segment values ``(B, 9)``."""
    import torch

    features = policy.extract_features(obs)
    latent_pi, latent_vf = policy.mlp_extractor(features)
    logits = policy.action_net(latent_pi).masked_fill(~mask, -1e8).view(-1, N_HEADS, N_PLAYS)
    return torch.log_softmax(logits, dim=-1), policy.value_net(latent_vf)


def cohort_advantages(hcp_reward: np.ndarray, hcp_segment: np.ndarray, values: np.ndarray, gamma: float,
                      gae_lambda: float, final_values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and value targets ``(T, N, 9)`` of each step's segment cohorts (generalised advantage estimation
    per HCP, summed over each cohort).

    ``hcp_reward``, ``hcp_segment``: ``(T, N, H)`` per-HCP rewards and the segment each HCP was in when step
    ``t``'s plays were chosen; ``values``: ``(T, N, 9)`` the critic's segment values at those decisions.  An HCP's
    value is its segment's value shared equally among the segment's members, so that a cohort whose customers
    move to another segment (a conversion) keeps the value they carry there.  The episode ends at step T: without
    ``final_values`` its last reward holds the horizon's value and nothing is bootstrapped beyond it; with them
    (``(N, 9)``, the critic at the final state, a truncated horizon) each HCP's share of its last segment's value is.
    """
    steps, n_envs, n_hcps = hcp_reward.shape
    cell = hcp_segment.astype(np.int64) + N_HEADS * np.arange(steps * n_envs).reshape(steps, n_envs, 1)
    counts = np.bincount(cell.ravel(), minlength=steps * n_envs * N_HEADS).reshape(steps, n_envs, N_HEADS)
    per_member = values / np.maximum(counts, 1)
    hcp_value = np.take_along_axis(per_member, hcp_segment.astype(np.int64), axis=2)  # (T, N, H)
    hcp_advantage = np.empty_like(hcp_reward)
    running = np.zeros((n_envs, n_hcps))
    following = np.zeros((n_envs, n_hcps))
    if final_values is not None:
        last = hcp_segment[-1].astype(np.int64)
        members = np.stack([np.bincount(row, minlength=N_HEADS) for row in last])
        following = np.take_along_axis(final_values / np.maximum(members, 1), last, axis=1)
    for t in range(steps - 1, -1, -1):
        delta = hcp_reward[t] + gamma * following - hcp_value[t]
        running = delta + gamma * gae_lambda * running
        hcp_advantage[t] = running
        following = hcp_value[t]
    advantages = np.bincount(cell.ravel(), weights=hcp_advantage.ravel(),
                             minlength=steps * n_envs * N_HEADS).reshape(steps, n_envs, N_HEADS)
    return advantages, advantages + values


class FactoredPPO:
    """The trainer: ``collect`` plays one whole episode of ``n_envs`` territories, ``update`` learns from it
    (``oce_sim.learning.training`` alternates them, with run folders, checkpoints and a wall-clock budget).

    ``policy``, ``num_timesteps``, ``_n_updates``, ``observation_space`` and ``action_space`` are what the model
    file writer reads (the same names as an SB3 model's)."""

    def __init__(self, scenario: ScenarioConfig, settings: FactoredSettings, net_arch: list[int], seed: int,
                 workers: int = 1):
        """``workers``: processes the territories step in (``oce_sim.envs.sharded``; the same rollouts for any
        count)."""
        import torch

        from oce_sim.envs.sharded import make_territory_vector_env

        config = load_scenario(scenario.model_dump(mode="python"),
                               overrides={"env": {"hcp_rewards": True, "info_kpis": "episode_end",
                                                  # the split is of the expected or the observed reward
                                                  "reward": "observed" if scenario.env.reward == "observed"
                                                  else "expected"}})
        self.bootstrap = config.env.reward == "observed"  # a truncated horizon: bootstrap the final state
        self.settings = settings
        self.seed = int(seed)
        self.envs = make_territory_vector_env(settings.n_envs, workers=workers, scenario=config)
        self.observation_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        self.episode_steps = -(-self.envs.horizon_days // self.envs.decision_interval_days)
        torch.manual_seed(self.seed)
        self.policy = make_policy(self.observation_space, self.action_space, net_arch, settings.learning_rate)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.num_timesteps = 0
        self._n_updates = 0
        self.value_scale: float | None = None  # cohort returns per value unit, fixed by the first rollout
        self.last_stats: dict[str, float] = {}

    @property
    def rollout_steps(self) -> int:
        return self.settings.n_envs * self.episode_steps

    def close(self) -> None:
        self.envs.close()

    # -------------------------------------------------------------------------------------------- rollout
    def collect(self) -> dict[str, Any]:
        """One whole episode of every territory with the current policy (sampled plays)."""
        import torch

        rollout = self.num_timesteps // self.rollout_steps
        # every random choice of a rollout and its update comes from (seed, rollout): a resumed run continues
        # exactly as an uninterrupted one
        self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + rollout)
        obs, info = self.envs.reset(seed=TRAIN_SEED_OFFSET * (1 + self.seed) + rollout * self.settings.n_envs)
        mask = info["action_mask"]
        buffers: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "mask", "action", "logp", "hcp_reward",
                                                                  "hcp_segment", "value")}
        episode_return = np.zeros(self.settings.n_envs)
        for _ in range(self.episode_steps):
            with torch.no_grad():
                logp_all, value = heads(self.policy, torch.as_tensor(obs), torch.as_tensor(mask, dtype=torch.bool))
                action = torch.multinomial(logp_all.exp().view(-1, N_PLAYS), 1, generator=self.generator).view(
                    -1, N_HEADS)
                logp = logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
            buffers["obs"].append(obs)
            buffers["mask"].append(mask)
            buffers["action"].append(action.numpy())
            buffers["logp"].append(logp.numpy())
            buffers["value"].append(value.numpy().astype(np.float64))
            obs, reward, terminated, truncated, info = self.envs.step(action.numpy())
            episode_return += reward
            buffers["hcp_reward"].append(info["hcp_reward"])
            buffers["hcp_segment"].append(info["hcp_segment"])
            mask = info["action_mask"]
        if not (terminated | truncated).all():
            raise RuntimeError("a rollout must end with the episode (one horizon for all territories)")
        final_values = None
        if self.bootstrap:
            with torch.no_grad():
                final_values = heads(self.policy, torch.as_tensor(obs),
                                     torch.as_tensor(mask, dtype=torch.bool))[1].numpy().astype(np.float64)
        self.num_timesteps += self.rollout_steps
        batch = {k: np.stack(v) for k, v in buffers.items()}
        reward = batch.pop("hcp_reward")
        if self.value_scale is None:  # cohort values per critic unit: the spread of the first rollout's returns
            first = cohort_advantages(reward, batch["hcp_segment"], np.zeros_like(batch["value"]), 1.0, 1.0)[1]
            self.value_scale = float(max(1e-6, first.std()))
        advantages, returns = cohort_advantages(reward / self.value_scale, batch.pop("hcp_segment"), batch["value"],
                                                self.settings.gamma, self.settings.gae_lambda, final_values)
        batch["advantages"], batch["returns"] = advantages, returns
        batch["episode_return"] = episode_return
        return batch

    # ---------------------------------------------------------------------------------------------- update
    def update(self, batch: dict[str, Any]) -> dict[str, float]:
        import torch
        from torch import nn

        s = self.settings
        returns = batch["returns"].reshape(-1, N_HEADS)
        obs = torch.as_tensor(batch["obs"].reshape(len(returns), -1))
        mask = torch.as_tensor(batch["mask"].reshape(len(returns), -1), dtype=torch.bool)
        action = torch.as_tensor(batch["action"].reshape(-1, N_HEADS), dtype=torch.int64)
        old_logp = torch.as_tensor(batch["logp"].reshape(-1, N_HEADS))
        target = torch.as_tensor(returns, dtype=torch.float32)
        advantage = torch.as_tensor(batch["advantages"].reshape(-1, N_HEADS), dtype=torch.float32)
        advantage = (advantage - advantage.mean(0)) / (advantage.std(0) + 1e-8)  # per head
        n = len(returns)
        size = max(1, n // s.n_minibatches)
        stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [],
                                         "clip_fraction": []}
        for _ in range(s.n_epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, size):
                idx = order[start:start + size]
                logp_all, values = heads(self.policy, obs[idx], mask[idx])
                logp = logp_all.gather(-1, action[idx].unsqueeze(-1)).squeeze(-1)
                log_ratio = logp - old_logp[idx]
                ratio = log_ratio.exp()
                adv = advantage[idx]
                surrogate = torch.min(ratio * adv, ratio.clamp(1 - s.clip_range, 1 + s.clip_range) * adv)
                policy_loss = -surrogate.sum(-1).mean()  # each head its own ratio and advantage
                probs = logp_all.exp()
                entropy = -(probs * logp_all.clamp(min=-1e4)).sum(-1).sum(-1).mean()
                value_loss = 0.5 * ((values - target[idx]) ** 2).sum(-1).mean()
                loss = policy_loss - s.ent_coef * entropy + s.vf_coef * value_loss
                self.policy.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), s.max_grad_norm)
                self.policy.optimizer.step()
                with torch.no_grad():
                    stats["policy_loss"].append(float(policy_loss))
                    stats["value_loss"].append(float(value_loss))
                    stats["entropy"].append(float(entropy))
                    stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                    stats["clip_fraction"].append(float(((ratio - 1).abs() > s.clip_range).float().mean()))
        self._n_updates += s.n_epochs
        with torch.no_grad():
            _, values = heads(self.policy, obs, mask)
            explained = 1.0 - float((target - values).var() / (target.var() + 1e-12))
        self.last_stats = {k: float(np.mean(v)) for k, v in stats.items()}
        self.last_stats["explained_variance"] = explained
        return self.last_stats
