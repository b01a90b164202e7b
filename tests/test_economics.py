"""Field-force economics, value beyond the horizon, the steady start and the paired KPIs (the economics issue)."""

from __future__ import annotations

import numpy as np
import pytest

from oce_sim.agents import make_strategy
from oce_sim.agents.planning import PlannerEconomics
from oce_sim.config import load_scenario
from oce_sim.envs import steady_start
from oce_sim.envs.territory import TerritoryEnv
from oce_sim.studies.evaluation import evaluate, play_episode
from oce_sim.world.dispatch import HOLD, N_SEGMENTS
from oce_sim.world.population import generate_population
from oce_sim.world.streams import RandomStreams
from oce_sim.world.tail import _review_on_day, _reviews_on_days, discount_factors, tail_value

TAIL_DAYS = 730


def run_policy(env: TerritoryEnv, strategy: str, seed: int, until_day: int | None = None):
    return play_episode(env, make_strategy(strategy), seed, until_day)


def continue_without_promotion(world, start_day: int, rate: float) -> float:
    """Discounted expected revenue of actually running the world on, every segment held, no calendar (stage 3), the
    reps idle (their own picks would be promotion)."""
    factor = discount_factors(TAIL_DAYS, rate)
    world.field.fills_free_slots = False
    before, total = world.ledger.expected_revenue_usd, 0.0
    for k in range(TAIL_DAYS):
        if k % 7 == 0:
            world.apply_plays(np.full(N_SEGMENTS, HOLD))
        world.run_until(start_day + k + 1)
        total += factor[k] * (world.ledger.expected_revenue_usd - before)
        before = world.ledger.expected_revenue_usd
    return total


def test_value_at_horizon_matches_continuing_the_world_without_promotion():
    """The tail computed from the model's own dynamics (blocks of up to 4 weeks) is within 2% of running the same
    worlds on (common random numbers: the exogenous draws of the continuation are the world's own) with no
    promotion, and within 0.1% of the day-by-day propagation it replaced (measured: -1.27% and +0.006%)."""
    # 3,000 HCPs x 12 seeds: one world's own transition luck moves its tail by ~2.5%, the mean by < 1%.
    horizon = 91
    estimated, realised, daily = [], [], []
    for seed in range(12):
        env = TerritoryEnv(scenario="small", stage=3, config={
            "population": {"n_hcps": 3000, "n_reps": 6}, "history": {"start": "configured"},
            "env": {"horizon_days": horizon + TAIL_DAYS, "terminal_value": False}})
        run_policy(env, "intervention", seed, until_day=horizon)
        world = env.world
        estimated.append(tail_value(world, tail_years=2.0, discount_rate=0.10).revenue_usd)
        daily.append(tail_value(world, tail_years=2.0, discount_rate=0.10, method="daily").revenue_usd)
        pushed_before = world.ledger.delivered[:4].sum()
        realised.append(continue_without_promotion(world, horizon, 0.10))
        assert world.ledger.delivered[:4].sum() == pushed_before, "no promotion in the continuation"
    assert np.mean(estimated) == pytest.approx(np.mean(realised), rel=0.02)
    assert np.mean(daily) == pytest.approx(np.mean(realised), rel=0.02)
    np.testing.assert_allclose(estimated, daily, rtol=1e-3)
    assert np.corrcoef(estimated, realised)[0, 1] > 0.8, "the estimate follows each world's own state"


@pytest.mark.parametrize("strategy", ["intervention", "no_promotion"])
def test_the_block_tail_follows_the_daily_one_day_by_day_and_hcp_by_hcp(strategy: str):
    """The blocks keep the daily output: the same tail days (none on weekends), each HCP's share of the value
    summing to the total, and within 0.1% of the day-by-day propagation in total, per HCP and over each year."""
    env = TerritoryEnv(scenario="small", config={"env": {"horizon_days": 63, "terminal_value": False}})
    run_policy(env, strategy, 5)
    blocks = tail_value(env.world, by_hcp=True)
    daily = tail_value(env.world, by_hcp=True, method="daily")
    assert blocks.margin_usd == pytest.approx(daily.margin_usd, rel=1e-3)
    assert blocks.margin_per_hcp_usd.sum() == pytest.approx(blocks.margin_usd, rel=1e-9)
    np.testing.assert_allclose(blocks.margin_per_hcp_usd, daily.margin_per_hcp_usd, rtol=5e-3, atol=1.0)
    assert np.array_equal(blocks.expected_rx_per_day > 0, daily.expected_rx_per_day > 0), "the same working days"
    for year in (slice(0, 365), slice(365, 730)):
        assert blocks.expected_rx_per_day[year].sum() == pytest.approx(daily.expected_rx_per_day[year].sum(), rel=1e-3)
    with pytest.raises(ValueError, match="method"):
        tail_value(env.world, method="monthly")


def test_the_tail_loses_access_where_use_falls():
    """With no promotion, accounts tighten faster than they open (the reviews' downgrades): the tail with the
    world's downgrades is below the same tail with access that can only improve."""
    env = TerritoryEnv(scenario="default", config={"env": {"horizon_days": 28, "terminal_value": False}})
    run_policy(env, "no_promotion", 2)
    with_losses = tail_value(env.world).margin_usd
    env.world.response.access_downgrade = np.zeros(2)
    one_way = tail_value(env.world).margin_usd
    assert with_losses < one_way


def test_terminal_value_is_added_to_the_last_reward_only_when_asked():
    rewards = {}
    for flag in (True, False):
        env = TerritoryEnv(scenario="small", config={"env": {"terminal_value": flag, "horizon_days": 28}})
        env.reset(seed=1)
        got = []
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(np.full(N_SEGMENTS, 1))
            got.append(reward)
            done = terminated or truncated
        rewards[flag] = (np.array(got), info)
    with_tv, info = rewards[True]
    without, _ = rewards[False]
    terminal = info["reward_components"]["terminal_value"]
    assert terminal == pytest.approx(info["kpis"]["value_at_horizon_usd"]) and terminal > 0
    np.testing.assert_allclose(with_tv[:-1], without[:-1])
    assert with_tv[-1] - without[-1] == pytest.approx(terminal / 10_000.0)


def test_a_rep_is_a_fixed_cost_paid_whether_she_calls_or_not():
    config = load_scenario("small", stage=3, overrides={"env": {"horizon_days": 91}})
    def idle(config) -> dict:  # every segment held and the reps idle, with the scenario's rep on payroll
        env = TerritoryEnv(scenario=config)
        env.reset(seed=0)
        env.world.field.fills_free_slots = False
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(np.full(N_SEGMENTS, HOLD))
            done = terminated or truncated
        return info["kpis"]

    kpis = idle(config)
    economics = config.economics
    assert kpis["cost_fixed_usd"] == pytest.approx(config.population.n_reps * economics.rep_annual_cost_usd * 91 / 365)
    assert kpis["touches_rep_visit"] == 0 and kpis["field_utilisation"] == 0.0
    assert kpis["idle_field_cost_usd"] == pytest.approx(kpis["cost_fixed_usd"])
    shared = load_scenario(config, overrides={"economics": {"call_cost_share": 0.6}})
    half = idle(shared)
    assert half["cost_fixed_usd"] == pytest.approx(0.6 * kpis["cost_fixed_usd"])


def test_calls_cost_their_variable_cost_and_the_field_force_caps_calls():
    config = load_scenario("small", overrides={"env": {"horizon_days": 56}})
    kpis = run_policy(TerritoryEnv(scenario=config), "insight", 0)["kpis"]
    visit = config.channels.rep_visit
    calls = kpis["touches_rep_visit"]
    assert calls > 0
    assert visit.variable_cost_primary_care_usd * calls <= kpis["cost_rep_visit_usd"] <= visit.variable_cost_specialist_usd * calls
    assert 0.5 < kpis["field_utilisation"] <= 1.0
    assert kpis["cost_usd"] == pytest.approx(kpis["cost_fixed_usd"] + kpis["cost_variable_usd"])


def test_the_market_is_the_same_whatever_the_field_force():
    """Territories are drawn whatever the number of reps, so no promotion (0 reps) and a what-if on headcount
    see the same HCPs, consents and initial draws as the scenario itself."""
    pops = [generate_population(load_scenario("default", overrides={"population": {"n_reps": k}}),
                                RandomStreams(5).population) for k in (0, 4, 8)]
    for pop in pops[1:]:
        for name in ("decile", "archetype", "specialty", "email_consent", "remote_consent", "initial_uniform",
                     "account", "kol_edge_kol", "need"):
            np.testing.assert_array_equal(getattr(pop, name), getattr(pops[0], name), err_msg=name)
    assert (pops[0].rep == -1).all() and set(np.unique(pops[2].rep)) == set(range(8))


@pytest.mark.parametrize("opt_in", [0.0, 0.3, 0.6, 1.0])
def test_opt_in_means_what_it_says(opt_in):
    config = load_scenario("default", overrides={"population": {"n_hcps": 4000, "email_opt_in": opt_in}})
    pop = generate_population(config, RandomStreams(0).population)
    share = pop.email_consent.mean()
    assert share == pytest.approx(opt_in, abs=3 * np.sqrt(opt_in * (1 - opt_in) / pop.n_hcps) + 1e-9)
    digital = pop.archetype == 1
    if 0 < opt_in < 1:
        assert pop.email_consent[digital].mean() > pop.email_consent[~digital].mean(), "digital-first opt in more"


def test_incremental_kpis_are_paired_with_no_promotion():
    config = load_scenario("small", overrides={"env": {"horizon_days": 91}})
    shown, _ = evaluate({"insight": make_strategy("insight")}, config, 2, 0, progress=False)
    assert set(shown.strategy) == {"insight"}, "the counterfactual runs but is not shown unless asked for"
    both, _ = evaluate({"insight": make_strategy("insight"), "no_promotion": make_strategy("no_promotion")}, config,
                       2, 0, progress=False)
    wide = both.pivot_table(index=["strategy", "seed"], columns="metric", values="value")
    for seed in (0, 1):
        own, base = wide.loc[("insight", seed)], wide.loc[("no_promotion", seed)]
        extra = own["revenue_usd"] - base["revenue_usd"]
        assert own["incremental_revenue_usd"] == pytest.approx(extra)
        assert own["incremental_roi"] == pytest.approx(extra / own["cost_usd"])
        assert own["incremental_profit_multi_period_usd"] == pytest.approx(
            own["profit_multi_period_usd"] - base["profit_multi_period_usd"])
        assert base["cost_usd"] == 0.0 and base["incremental_revenue_usd"] == 0.0
    insight_only = shown.pivot_table(index="seed", columns="metric", values="value")
    np.testing.assert_allclose(insight_only["incremental_roi"], wide.loc["insight"]["incremental_roi"])


def test_steady_start_is_shared_by_every_stage_and_field_force_of_a_market():
    base = load_scenario("default")
    keys = {steady_start.history_key(load_scenario("default", stage=s)) for s in range(4)}
    keys.add(steady_start.history_key(load_scenario(base, overrides={"population": {"n_reps": 0}})))
    assert len(keys) == 1, "the market's history is the scenario's own, whatever a strategy or what-if changes"
    other = load_scenario("default", overrides={"economics": {"price_per_rx_usd": 900.0}})
    assert steady_start.history_key(other) not in keys
    assert steady_start.steady_start(load_scenario("launch_kol"), TerritoryEnv) is None, "a launch starts as configured"


def test_a_mature_market_starts_near_its_steady_state():
    """Under its own stage's usual promotion, the default market's expected revenue grows far less in year 1
    than from the configured shares (38% on seeds 0-1 after the monthly-panel recalibration; 49-95% before it),
    and it decays without promotion."""
    growth = {}
    for start in ("steady", "configured"):
        config = load_scenario("default", overrides={"history": {"start": start}})
        env = TerritoryEnv(scenario=config)
        ratios = []
        for seed in (0, 1):
            obs, _ = env.reset(seed=seed)
            policy = make_strategy("insight")
            policy.reset(env, seed)
            revenue, done = [], False
            while not done:
                action, _ = policy.predict(obs, action_masks=env.action_masks())
                obs, _, terminated, truncated, info = env.step(action)
                revenue.append(info["reward_components"]["expected_revenue"])
                done = terminated or truncated
            ratios.append(np.mean(revenue[-8:]) / np.mean(revenue[:8]) - 1)
        growth[start] = float(np.mean(ratios))
    assert growth["configured"] > 0.3
    assert abs(growth["steady"]) < 0.2


def test_heuristics_plan_with_the_economics():
    """A planner drops what does not pay its marginal cost: at a low price per Rx low-potential customers get no
    visits and the stage-3 planner adds remote details for mid potential only when their value covers them."""
    cheap = PlannerEconomics.from_config(load_scenario("default", overrides={"economics": {"price_per_rx_usd": 50.0}}))
    usual = PlannerEconomics.from_config(load_scenario("default"))
    dear = PlannerEconomics.from_config(load_scenario("default", overrides={"economics": {"price_per_rx_usd": 1800.0}}))
    assert not cheap.visit_pays("low") and usual.visit_pays("low")
    assert not usual.remote_pays("mid") and dear.remote_pays("mid")
    plays = {}
    for name, price in (("cheap", 50.0), ("usual", 500.0), ("dear", 2000.0)):
        env = TerritoryEnv(scenario="default", stage=3, config={"economics": {"price_per_rx_usd": price}})
        obs, _ = env.reset(seed=0)
        policy = make_strategy("intervention")
        policy.reset(env, 0)
        plays[name] = tuple(policy.predict(obs, action_masks=env.action_masks())[0])
    assert len(set(plays.values())) == 3, plays


def test_docs_carry_the_kpi_registry_and_the_stage_ranking():
    """docs/MODEL.md shows the registry as generated (regenerate the block with oce_sim.world.kpis.markdown_table())."""
    from pathlib import Path

    from oce_sim.world.kpis import markdown_table

    text = (Path(__file__).resolve().parent.parent / "docs" / "MODEL.md").read_text(encoding="utf-8")
    assert markdown_table() in text
    ranking = text.split("<!-- stage-ranking:begin -->")[1].split("<!-- stage-ranking:end -->")[0]
    assert ranking.count("\n| ×") == 4 * 9, "every benchmark scenario over the 3 x 3 grid"


@pytest.mark.parametrize("interval", [91.0, 90.5, 30.0, 7.0, 1.0, 364.0, 13.37])
def test_tail_review_days_are_the_scalar_rule_elementwise(interval: float) -> None:
    days = np.arange(-5, 2_000)
    assert _reviews_on_days(days, interval).tolist() == [_review_on_day(int(d), interval) for d in days]


def test_an_observed_reward_pays_what_the_pipeline_publishes_and_nothing_from_the_true_state():
    """env.reward observed: margin on the Rx the pipeline published to the view during each step, minus the costs;
    no value at the horizon (the last step truncates); its split by HCP adds up to it plus the salaries.  The
    simulation itself is the same run as with the realised reward (same KPIs)."""
    def episode(reward: str, it: int) -> tuple[float, dict, bool, bool, float, float]:
        env = TerritoryEnv(scenario="small", stage={"customer": 1, "sales": 1, "marketing": 1, "it": it},
                           config={"env": {"reward": reward, "hcp_rewards": True, "horizon_days": 91}})
        env.reset(seed=4)
        total = split = fixed = 0.0
        done = False
        while not done:
            _, r, terminated, truncated, info = env.step(np.full(N_SEGMENTS, 1))
            total += r
            split += float(info["hcp_reward"].sum())
            fixed += info["reward_components"]["field_fixed_cost"]
            done = terminated or truncated
        published = float(env.world.view.published_rx.sum())
        env.close()
        return total * 1e4, info, terminated, truncated, split * 1e4 - fixed, published

    observed, info, terminated, truncated, split, published = episode("observed", 1)
    kpis = info["kpis"]
    margin = kpis["gross_margin_usd"] / kpis["trx"]  # per Rx
    assert not terminated and truncated, "no value at the horizon: a learner bootstraps"
    assert observed == pytest.approx(published * margin - kpis["cost_usd"], rel=1e-9)
    assert split == pytest.approx(observed, rel=1e-9)
    assert 0.5 * kpis["trx"] < published < kpis["trx"], "late (the last days are unpublished) and gappy"
    realised = episode("realized", 1)[1]["kpis"]
    assert realised == kpis
    slow = episode("observed", 0)[5]  # IT 0: monthly batches, 21 days late
    assert slow < published


def test_factored_ppo_trains_on_the_observed_reward_and_bootstraps_the_truncated_horizon():
    from oce_sim.learning.factored_ppo import cohort_advantages

    # one HCP in segment 0, two steps of reward 1, critic values 0 and a final value of 5 for segment 0
    reward = np.ones((2, 1, 1))
    segment = np.zeros((2, 1, 1), dtype=np.int8)
    values = np.zeros((2, 1, 9))
    final = np.zeros((1, 9))
    final[0, 0] = 5.0
    plain = cohort_advantages(reward, segment, values, 1.0, 1.0)[0][:, 0, 0]
    boot = cohort_advantages(reward, segment, values, 1.0, 1.0, final)[0][:, 0, 0]
    np.testing.assert_allclose(plain, [2.0, 1.0])
    np.testing.assert_allclose(boot, [7.0, 6.0])
