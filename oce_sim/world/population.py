"""Ground-truth population: HCPs, KOL influence network, accounts and rep territories (NumPy arrays)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from oce_sim.config import CHANNELS, ScenarioConfig

ARCHETYPES: tuple[str, ...] = ("traditional", "digital_first", "no_see")
ACCESS_LEVELS: tuple[str, ...] = ("open", "restricted", "blocked")
ADOPTION_STATES: tuple[str, ...] = ("unaware", "aware", "trialing", "adopter")

# Latent channel preference (0..1) by archetype, before individual noise; columns follow CHANNELS.
_CHANNEL_PREFERENCE_BY_ARCHETYPE = np.array(
    [
        # rep_visit remote email webinar website
        [0.85, 0.35, 0.35, 0.45, 0.25],  # traditional
        [0.45, 0.70, 0.80, 0.65, 0.85],  # digital_first
        [0.15, 0.55, 0.65, 0.50, 0.60],  # no_see
    ]
)


DIGITAL_CONSENT_ODDS_RATIO = 3.0  # digital-first HCPs' odds of consenting, relative to the others


def consent_probability(archetype: np.ndarray, opt_in: float, odds_ratio: float) -> np.ndarray:
    """Per-HCP consent probability whose mean over the population is ``opt_in`` (0 means no consent, 1 all).

    Digital-first HCPs have ``odds_ratio`` times the odds of the others; the base odds are solved so that the
    expected share is exactly the configured one (bisection on the log-odds).
    """
    if opt_in <= 0.0 or opt_in >= 1.0:
        return np.full(archetype.size, float(opt_in))
    digital = archetype == ARCHETYPES.index("digital_first")
    share_digital = float(digital.mean()) if archetype.size else 0.0
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        base = 1.0 / (1.0 + np.exp(-mid))
        boosted = 1.0 / (1.0 + np.exp(-(mid + np.log(odds_ratio))))
        if share_digital * boosted + (1.0 - share_digital) * base < opt_in:
            lo = mid
        else:
            hi = mid
    base = 1.0 / (1.0 + np.exp(-lo))
    boosted = 1.0 / (1.0 + np.exp(-(lo + np.log(odds_ratio))))
    return np.where(digital, boosted, base)


@dataclass
class Population:
    """Static attributes of the customers; dynamic state lives in :class:`oce_sim.world.response.CustomerState`."""

    n_hcps: int
    n_themes: int
    specialty: np.ndarray  # 0 primary care, 1 specialist
    decile: np.ndarray  # prescribing potential decile 1..10 (public, syndicated data)
    class_rx_per_day: np.ndarray  # class prescriptions written per working day
    archetype: np.ndarray  # index into ARCHETYPES
    channel_fit: np.ndarray  # [n, C] latent channel preference in 0..1
    need: np.ndarray  # [n, T] latent need over themes, rows sum to 1
    need_relevance: np.ndarray  # [n, T] need / max(need): 1 for the most-needed theme
    contact_tolerance_per_month: np.ndarray
    account: np.ndarray  # account index
    is_kol: np.ndarray
    kol_edge_follower: np.ndarray  # influence edges: follower index
    kol_edge_kol: np.ndarray  # influence edges: KOL index
    rep: np.ndarray  # territory: rep index, -1 if unassigned
    rep_knows_need: np.ndarray  # rep's private knowledge at start
    email_consent: np.ndarray
    remote_consent: np.ndarray
    initial_state: np.ndarray  # adoption state index
    initial_uniform: np.ndarray  # the uniform the initial state was drawn from (reused by a steady start)
    n_accounts: int
    initial_account_access: np.ndarray  # index into ACCESS_LEVELS
    account_uniform: np.ndarray  # the uniform each account's access was drawn from (reused by a steady start)

    @functools.cached_property
    def potential_tier(self) -> np.ndarray:
        """0 low (deciles 1-4), 1 mid (5-7), 2 high (8-10); read-only (deciles never change)."""
        tier = np.digitize(self.decile, [5, 8]).astype(np.int8)
        tier.flags.writeable = False
        return tier


def generate_population(config: ScenarioConfig, rng: np.random.Generator) -> Population:
    pop = config.population
    n = pop.n_hcps
    specialty = (rng.random(n) < pop.specialist_share).astype(np.int8)
    decile = rng.integers(1, 11, size=n).astype(np.int8)
    class_rx_per_week = pop.top_decile_class_rx_per_week / pop.decile_rx_ratio ** (10 - decile)
    class_rx_per_week = class_rx_per_week * rng.lognormal(0.0, 0.25, size=n)
    class_rx_per_day = class_rx_per_week / 5.0

    shares = np.array([pop.archetypes.traditional, pop.archetypes.digital_first, pop.archetypes.no_see])
    archetype = rng.choice(len(ARCHETYPES), size=n, p=shares / shares.sum()).astype(np.int8)
    channel_fit = np.clip(
        _CHANNEL_PREFERENCE_BY_ARCHETYPE[archetype] + rng.normal(0.0, 0.12, size=(n, len(CHANNELS))), 0.02, 1.0
    )

    need = rng.dirichlet(np.full(pop.n_themes, pop.need_concentration), size=n)
    need_relevance = need / need.max(axis=1, keepdims=True)
    lo, hi = pop.contact_tolerance_per_month
    tolerance = rng.uniform(lo, hi, size=n)

    n_accounts = max(1, int(np.ceil(n / pop.hcps_per_account)))
    account = rng.integers(0, n_accounts, size=n).astype(np.int32)
    access_shares = np.array([pop.access.open, pop.access.restricted, pop.access.blocked])
    # rng.choice's own draw (the same uniforms, the same cut points), keeping each account's uniform for a steady
    # start, which draws the account's access from its history with it (a common random number)
    account_uniform = rng.random(n_accounts)
    cumulative = access_shares.cumsum()
    account_access = np.minimum((cumulative / cumulative[-1]).searchsorted(account_uniform, side="right"), 2)
    account_access = account_access.astype(np.int8)

    # KOLs are drawn among high-potential HCPs; each influences followers of the same specialty.
    n_kols = int(round(pop.kol_share * n))
    is_kol = np.zeros(n, dtype=bool)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    if n_kols > 0:
        weights = decile.astype(float) ** 2
        kols = rng.choice(n, size=n_kols, replace=False, p=weights / weights.sum())
        is_kol[kols] = True
        candidates = {int(spec): np.flatnonzero((specialty == spec) & ~is_kol) for spec in np.unique(specialty)}
        for kol in kols:
            same = candidates[int(specialty[kol])]
            if same.size == 0 or pop.kol_followers == 0:
                continue
            followers = rng.choice(same, size=min(pop.kol_followers, same.size), replace=False)
            rows.append(followers)
            cols.append(np.full(followers.size, kol))
    edge_rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    edge_cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)

    # Territories: equal-sized random territories, every HCP covered while there are reps.  The permutation is
    # drawn whatever the field force, so that every other draw (and so the market) is the same with 0 or 8 reps.
    permutation = rng.permutation(n)
    if pop.n_reps > 0:
        rep = (np.arange(n) * pop.n_reps // n).astype(np.int32)[permutation]
    else:
        rep = np.full(n, -1, dtype=np.int32)
    rep_knows_need = (rng.random(n) < pop.rep_knowledge_share) & (rep >= 0)

    # Digital-first HCPs consent more often, but the territory's consent share is the configured opt-in.
    email_consent = rng.random(n) < consent_probability(archetype, pop.email_opt_in, DIGITAL_CONSENT_ODDS_RATIO)
    remote_consent = rng.random(n) < consent_probability(archetype, pop.remote_opt_in, DIGITAL_CONSENT_ODDS_RATIO)

    u = rng.random(n)
    cut_adopter = pop.initial_adopter_share
    cut_trial = cut_adopter + pop.initial_trialing_share
    cut_aware = cut_trial + pop.initial_aware_share
    # High-potential HCPs are likelier to already prescribe: scale the draw by decile.
    u_scaled = u * (1.25 - 0.05 * decile)
    initial_state = np.select(
        [u_scaled < cut_adopter, u_scaled < cut_trial, u_scaled < cut_aware], [3, 2, 1], default=0
    ).astype(np.int8)

    return Population(
        n_hcps=n,
        n_themes=pop.n_themes,
        specialty=specialty,
        decile=decile,
        class_rx_per_day=class_rx_per_day,
        archetype=archetype,
        channel_fit=channel_fit,
        need=need,
        need_relevance=need_relevance,
        contact_tolerance_per_month=tolerance,
        account=account,
        is_kol=is_kol,
        kol_edge_follower=edge_rows.astype(np.int64),
        kol_edge_kol=edge_cols.astype(np.int64),
        rep=rep,
        rep_knows_need=rep_knows_need,
        email_consent=email_consent,
        remote_consent=remote_consent,
        initial_state=initial_state,
        initial_uniform=u,
        n_accounts=n_accounts,
        initial_account_access=account_access,
        account_uniform=account_uniform,
    )
