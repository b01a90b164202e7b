"""Masked PPO in one file, without Stable-Baselines3: torch, Gymnasium and the environment only (CleanRL style).

The action is ``MultiDiscrete([8] * 9)``: one play per customer segment.  The policy outputs 9 x 8 logits and
each segment's categorical distribution is masked with that segment's row of the action mask, which the
environment puts in ``info["action_mask"]`` after ``reset`` and every ``step`` (the same array as
``env.unwrapped.action_masks()``, flattened to 72).  Masked plays get a logit of -1e8: never sampled, no
gradient.  Read it top to bottom.

    python experiments/masked_ppo_single_file.py --total-timesteps 50000 --num-envs 4
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, fields

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

import oce_sim  # noqa: F401  (registers the environment ids)


@dataclass
class Args:
    env_id: str = "oce_sim/TerritorySmall-v1"
    stage: int = 3  # 3: every channel is in the action
    seed: int = 0
    num_envs: int = 4
    num_steps: int = 128  # steps per environment per rollout
    total_timesteps: int = 50_000
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    torch_threads: int = 1


def parse() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Args):
        kind = (lambda text: text.lower() in ("1", "true", "yes")) if f.type in (bool, "bool") else type(f.default)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    return Args(**vars(parser.parse_args()))


def make_env(args: Args) -> gym.Env:
    # expected-value reward (same mean as realised profit, less noise); KPIs only at the episode's end
    return gym.make(args.env_id, stage=args.stage, config={"env": {"reward": "expected", "info_kpis": "episode_end"}})


def layer(n_in: int, n_out: int, std: float = np.sqrt(2)) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, std)
    nn.init.constant_(linear.bias, 0.0)
    return linear


class Agent(nn.Module):
    def __init__(self, n_obs: int, nvec: np.ndarray, hidden: int):
        super().__init__()
        self.nvec = [int(n) for n in nvec]  # [8] * 9
        self.critic = nn.Sequential(layer(n_obs, hidden), nn.Tanh(), layer(hidden, hidden), nn.Tanh(),
                                    layer(hidden, 1, std=1.0))
        self.actor = nn.Sequential(layer(n_obs, hidden), nn.Tanh(), layer(hidden, hidden), nn.Tanh(),
                                   layer(hidden, sum(self.nvec), std=0.01))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def act(self, obs: torch.Tensor, mask: torch.Tensor, action: torch.Tensor | None = None):
        """Sample (or score) one play per segment among the allowed ones.  ``mask``: (batch, 72) booleans."""
        logits = torch.where(mask, self.actor(obs), torch.tensor(-1e8))
        dists = [Categorical(logits=part) for part in torch.split(logits, self.nvec, dim=-1)]
        if action is None:
            action = torch.stack([d.sample() for d in dists], dim=-1)
        log_prob = torch.stack([d.log_prob(a) for d, a in zip(dists, action.unbind(-1))], dim=-1).sum(-1)
        entropy = torch.stack([d.entropy() for d in dists], dim=-1).sum(-1)
        return action, log_prob, entropy, self.value(obs)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_updates = max(1, args.total_timesteps // batch_size)

    # Same-step autoreset: when an episode ends, the step returns the next episode's first observation and
    # its action mask, as a classic gym loop expects.  The horizon terminates (its reward holds the value beyond
    # it), so nothing is bootstrapped past it.
    envs = gym.vector.SyncVectorEnv([lambda: make_env(args) for _ in range(args.num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    nvec = envs.single_action_space.nvec
    n_obs = envs.single_observation_space.shape[0]
    n_mask = int(nvec.sum())
    agent = Agent(n_obs, nvec, args.hidden)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    obs_buf = torch.zeros((args.num_steps, args.num_envs, n_obs))
    mask_buf = torch.zeros((args.num_steps, args.num_envs, n_mask), dtype=torch.bool)
    action_buf = torch.zeros((args.num_steps, args.num_envs, len(nvec)), dtype=torch.long)
    logprob_buf = torch.zeros((args.num_steps, args.num_envs))
    reward_buf = torch.zeros((args.num_steps, args.num_envs))
    done_buf = torch.zeros((args.num_steps, args.num_envs))
    value_buf = torch.zeros((args.num_steps, args.num_envs))

    obs, info = envs.reset(seed=args.seed)
    next_obs = torch.tensor(obs, dtype=torch.float32)
    next_mask = torch.tensor(info["action_mask"], dtype=torch.bool)
    next_done = torch.zeros(args.num_envs)
    episode_return = np.zeros(args.num_envs)
    finished: list[float] = []
    start = time.time()
    global_step = 0

    for update in range(1, num_updates + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - (update - 1.0) / num_updates)

        # 1. rollout: the mask of every decision comes with the observation, from the previous step's info
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs_buf[step], mask_buf[step], done_buf[step] = next_obs, next_mask, next_done
            with torch.no_grad():
                action, log_prob, _, value = agent.act(next_obs, next_mask)
            action_buf[step], logprob_buf[step], value_buf[step] = action, log_prob, value
            obs, reward, terminated, truncated, info = envs.step(action.numpy())
            reward_buf[step] = torch.tensor(reward, dtype=torch.float32)
            next_obs = torch.tensor(obs, dtype=torch.float32)
            next_mask = torch.tensor(info["action_mask"], dtype=torch.bool)
            done = np.logical_or(terminated, truncated)
            next_done = torch.tensor(done, dtype=torch.float32)
            episode_return += reward
            finished.extend(episode_return[done].tolist())
            episode_return[done] = 0.0

        # 2. generalised advantage estimates
        with torch.no_grad():
            next_value = agent.value(next_obs)
            advantages = torch.zeros_like(reward_buf)
            last_gae = torch.zeros(args.num_envs)
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    not_done, following = 1.0 - next_done, next_value
                else:
                    not_done, following = 1.0 - done_buf[t + 1], value_buf[t + 1]
                delta = reward_buf[t] + args.gamma * following * not_done - value_buf[t]
                last_gae = delta + args.gamma * args.gae_lambda * not_done * last_gae
                advantages[t] = last_gae
            returns = advantages + value_buf

        # 3. clipped-surrogate updates on shuffled minibatches, with the masks the actions were sampled under
        b_obs, b_mask = obs_buf.reshape(batch_size, n_obs), mask_buf.reshape(batch_size, n_mask)
        b_action, b_logprob = action_buf.reshape(batch_size, len(nvec)), logprob_buf.reshape(batch_size)
        b_adv, b_ret, b_value = advantages.reshape(-1), returns.reshape(-1), value_buf.reshape(-1)
        for _ in range(args.update_epochs):
            for idx in torch.randperm(batch_size).split(minibatch_size):
                _, new_logprob, entropy, new_value = agent.act(b_obs[idx], b_mask[idx], b_action[idx])
                ratio = (new_logprob - b_logprob[idx]).exp()
                adv = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                value_loss = 0.5 * ((new_value - b_ret[idx]) ** 2).mean()
                loss = policy_loss - args.ent_coef * entropy.mean() + args.vf_coef * value_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        recent = f"{np.mean(finished[-20:]):.2f}" if finished else "n/a"
        sps = int(global_step / (time.time() - start))
        print(f"update {update}/{num_updates}  steps {global_step}  episodes {len(finished)}  "
              f"return(last 20) {recent}  policy_loss {policy_loss.item():.4f}  value_loss {value_loss.item():.4f}  "
              f"steps/s {sps}", flush=True)
    envs.close()


if __name__ == "__main__":
    main()
