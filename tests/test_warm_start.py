"""Warm start for RL: behaviour cloning from a strategy, then a critic-only warm-up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

from oce_sim.config import load_scenario
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.learning.training import ActorFreeze, behaviour_clone

SMALL = {"env": {"horizon_days": 56}}


def small_model() -> tuple[MaskablePPO, object]:
    config = load_scenario("small", stage=3, overrides=SMALL)
    env = TerritoryEnv(scenario=config)
    model = MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu",
                        policy_kwargs=dict(net_arch=[32, 32]))
    return model, config


def test_behaviour_cloning_imitates_the_teacher():
    model, config = small_model()
    env = TerritoryEnv(scenario=config)
    obs, _ = env.reset(seed=123)
    log_likelihood = behaviour_clone(model, config, "intervention", episodes=4, epochs=200, seed=0)
    # 9 dimensions of up to 8 plays: uniform guessing scores about 9 * log(1/8) = -18.7
    assert log_likelihood > -6.0, log_likelihood
    from oce_sim.agents import make_strategy

    teacher = make_strategy("intervention")
    teacher.reset(env, 0)
    agree = []
    for _ in range(6):
        mask = env.action_masks()
        expected, _ = teacher.predict(obs, action_masks=mask)
        got, _ = model.predict(obs, action_masks=mask, deterministic=True)
        agree.append(np.mean(expected == got))
        obs, *_ = env.step(expected)
    assert np.mean(agree) > 0.7, agree


def test_actor_freeze_trains_only_the_critic_during_warmup():
    model, _ = small_model()
    actor = [p.detach().clone() for p in (*model.policy.mlp_extractor.policy_net.parameters(), *model.policy.action_net.parameters())]
    critic = [p.detach().clone() for p in model.policy.mlp_extractor.value_net.parameters()]
    model.learn(total_timesteps=128, callback=ActorFreeze(steps=10_000))
    after_actor = [*model.policy.mlp_extractor.policy_net.parameters(), *model.policy.action_net.parameters()]
    after_critic = list(model.policy.mlp_extractor.value_net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(actor, after_actor))
    assert any(not torch.equal(a, b) for a, b in zip(critic, after_critic))


@pytest.mark.parametrize("steps", [64])
def test_actor_is_released_after_warmup(steps):
    model, _ = small_model()
    actor = [p.detach().clone() for p in model.policy.action_net.parameters()]
    model.learn(total_timesteps=256, callback=ActorFreeze(steps=steps))
    assert any(not torch.equal(a, b) for a, b in zip(actor, model.policy.action_net.parameters()))
