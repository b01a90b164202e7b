"""Factored masked PPO: the reward split by HCP, cohort advantages (known answers), training, resume, loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oce_sim.agents.trained import TrainedModel
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import evaluate
from oce_sim.learning.factored_ppo import N_HEADS, cohort_advantages
from oce_sim.config import load_scenario
from oce_sim.learning.training import TrainArgs, model_path, train

SMALL_STAGE_3 = dict(scenario="small", stage=3)


def random_masked_episode(config: dict, seed: int):
    env = TerritoryEnv(**SMALL_STAGE_3, config=config)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        mask = env.action_masks().reshape(9, 8)
        action = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        yield env, obs, reward, truncated, info


def test_the_hcp_split_adds_up_to_the_reward_on_every_step():
    """Each HCP's expected margin minus its touches' costs (and its value at the horizon on the last step), summed,
    is the step's expected-profit reward plus the field force's salaries, which are no HCP's."""
    config = {"env": {"reward": "expected", "hcp_rewards": True}}
    steps = 0
    for env, _, reward, truncated, info in random_masked_episode(config, seed=4):
        split = info["hcp_reward"].sum() * env.reward_scale_usd - info["reward_components"]["field_fixed_cost"]
        assert split == pytest.approx(reward * env.reward_scale_usd, rel=1e-9, abs=1e-6)
        assert info["hcp_segment"].shape == (env.world.pop.n_hcps,) and info["hcp_segment"].max() < N_HEADS
        steps += 1
        if truncated:
            tail = env.tail.margin_per_hcp_usd
            assert tail.sum() == pytest.approx(env.tail.margin_usd, rel=1e-9)
            assert (tail >= 0).all()
    assert steps == 26


def test_splitting_the_reward_changes_nothing_else():
    plain = [(o, r) for _, o, r, _, _ in random_masked_episode({"env": {"reward": "expected"}}, seed=2)]
    split = [(o, r) for _, o, r, _, _ in random_masked_episode({"env": {"reward": "expected", "hcp_rewards": True}},
                                                               seed=2)]
    assert len(plain) == len(split)
    for (o1, r1), (o2, r2) in zip(plain, split):
        assert np.array_equal(o1, o2) and r1 == r2


def test_cohort_advantages_are_the_cohorts_returns_without_a_critic():
    """Two steps, three HCPs.  HCP 0 is converted (segment 0 at step 0, segment 1 at step 1): its step-1 reward
    still counts for the step-0 cohort of segment 0 that addressed it."""
    reward = np.array([[[1.0, 2.0, 4.0]], [[10.0, 20.0, 40.0]]])  # (T=2, N=1, H=3)
    segment = np.array([[[0, 0, 2]], [[1, 0, 2]]], dtype=np.int8)
    values = np.zeros((2, 1, N_HEADS))
    advantages, returns = cohort_advantages(reward, segment, values, gamma=1.0, gae_lambda=1.0)
    assert advantages[0, 0, 0] == 1 + 10 + 2 + 20  # both HCPs of segment 0 at step 0, wherever they went
    assert advantages[0, 0, 2] == 4 + 40
    assert advantages[1, 0, 0] == 20 and advantages[1, 0, 1] == 10 and advantages[1, 0, 2] == 40
    assert advantages[:, :, 3:].sum() == 0 and np.array_equal(returns, advantages)


def test_cohort_advantages_bootstrap_on_each_members_share_of_its_segments_value():
    """One-step TD (lambda 0): a member's value is its segment's value shared among the segment's members."""
    reward = np.array([[[1.0, 2.0, 4.0]], [[0.0, 0.0, 0.0]]])
    segment = np.array([[[0, 0, 2]], [[1, 0, 2]]], dtype=np.int8)
    values = np.zeros((2, 1, N_HEADS))
    values[0, 0, [0, 2]] = [6.0, 5.0]
    values[1, 0, [0, 1, 2]] = [8.0, 30.0, 7.0]  # step 1: HCP 0 alone in segment 1, HCP 1 alone in segment 0
    advantages, returns = cohort_advantages(reward, segment, values, gamma=0.5, gae_lambda=0.0)
    # cohort 0 at step 0: rewards 1 + 2, next values 30 (HCP 0) + 8 (HCP 1) discounted by 0.5, minus its value 6
    assert advantages[0, 0, 0] == pytest.approx(3 + 0.5 * 38 - 6)
    assert advantages[0, 0, 2] == pytest.approx(4 + 0.5 * 7 - 5)
    assert advantages[1, 0, 1] == pytest.approx(-30)  # the last step bootstraps nothing
    assert np.allclose(returns, advantages + values)


def factored_args(out, **kwargs) -> TrainArgs:
    defaults = dict(scenario="small", stage=3, algo="factored-ppo", n_envs=2, timesteps=104, checkpoint_every=52,
                    n_epochs=2, out=str(out), progress_bar=False)
    return TrainArgs(**{**defaults, **kwargs})


def policy_weights(run) -> dict[str, torch.Tensor]:
    return TrainedModel(model_path(run)).policy.state_dict()


def test_factored_training_resumes_exactly_and_its_model_plays_masked(tmp_path):
    """Two whole-episode rollouts of 2 territories: stopped after one and resumed, the run ends with the same weights
    as an uninterrupted one, whatever number of worker processes each session steps the territories in; the model
    file loads with its 9 segment values and plays only allowed plays."""
    whole = train(factored_args(tmp_path / "whole", workers=1), log=lambda line: None)
    half = train(factored_args(tmp_path / "half", timesteps=52, workers=2), log=lambda line: None)
    lines: list[str] = []
    resumed = train(factored_args(tmp_path / "half", resume=True, workers=1), log=lines.append)
    assert resumed == half and any("resuming" in line and "from step 52" in line for line in lines), lines
    expected, got = policy_weights(whole), policy_weights(resumed)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    model = TrainedModel(model_path(whole))
    assert model.algo == "factored-ppo" and model.num_timesteps == 104 and model.stage == 3
    assert model.policy.value_net.out_features == N_HEADS
    results, _ = evaluate({"model": model}, load_scenario("small", overrides={"env": {"horizon_days": 28}}), 1, 0,
                          progress=False)
    kpis = results.pivot_table(index="seed", columns="metric", values="value")
    assert (kpis["masked_actions"] == 0).all()


def test_a_run_killed_in_its_first_rollout_resumes_from_step_0(tmp_path, monkeypatch):
    """The step-0 checkpoint is written before the first rollout sets the value scale: it must still resume."""
    from oce_sim.learning.factored_ppo import FactoredPPO

    real_collect = FactoredPPO.collect

    def killed(self):
        raise RuntimeError("killed")

    monkeypatch.setattr(FactoredPPO, "collect", killed)
    with pytest.raises(RuntimeError, match="killed"):
        train(factored_args(tmp_path, timesteps=52), log=lambda line: None)
    monkeypatch.setattr(FactoredPPO, "collect", real_collect)
    lines: list[str] = []
    run = train(factored_args(tmp_path, timesteps=52, resume=True), log=lines.append)
    assert any("from step 0" in line for line in lines), lines
    assert TrainedModel(model_path(run)).num_timesteps == 52


@pytest.mark.parametrize("field, value, message", [("init_from", "intervention", "needs algo maskable-ppo"),
                                                   ("reward", "realized", "or observed: the environment splits"),
                                                   ("vec", "subproc", "native vector env"),
                                                   ("workers", 3, "between 1 and n_envs"),
                                                   ("workers", 0, "between 1 and n_envs")])
def test_what_factored_ppo_cannot_honour_is_refused_before_any_work(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        train(factored_args(tmp_path, **{field: value}), log=lambda line: None)
    assert not any(tmp_path.iterdir()), "no run folder for a refused run"


def test_workers_are_refused_for_the_sb3_algorithms(tmp_path):
    with pytest.raises(ValueError, match="vec='subproc'"):
        train(factored_args(tmp_path, algo="maskable-ppo", workers=2), log=lambda line: None)
    assert not any(tmp_path.iterdir()), "no run folder for a refused run"


def test_factored_ppo_trains_on_the_observed_reward(tmp_path):
    """--reward observed: the Rx the pipeline publishes, the horizon a truncation (the final state bootstrapped);
    the run writes a model file that says what it trained on."""
    run = train(factored_args(tmp_path, timesteps=52, reward="observed"), log=lambda line: None)
    model = TrainedModel(model_path(run))
    assert model.num_timesteps == 52
    assert "observed" in (run / "config.yaml").read_text()
