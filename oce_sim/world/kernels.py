"""Compiled (Numba) inner loops of the simulated day.

A territory's day is a few hundred touches and a few hundred HCPs, so array-at-a-time NumPy spends most of its
time in call overhead; these loops do the same work in one call each.  The equations are those of
``docs/MODEL.md`` and of the NumPy reference functions kept beside them (``ResponseModel.expected_rx_per_day``,
``poisson_from_uniform``, ``choose_theme``), which the tests compare them with.  Every random number is drawn
by the caller from the world's named streams and passed in, so the kernels themselves are deterministic.
"""

from __future__ import annotations

import math

import numpy as np

from oce_sim.world.jit import (
    njit,  # numba.njit whose cache survives a read-only install
)

# Channel indices (same order as oce_sim.config.CHANNELS; asserted in oce_sim.world.response).
_REP_VISIT, _REMOTE_DETAIL, _EMAIL = 0, 1, 2
_N_STAKEHOLDERS = 3
_MAX_POISSON_COUNT = 30

# An HCP not yet aware of the brand visits its website at this share of his rate (portal_visitors; the tail too).
PORTAL_UNAWARE_FACTOR = 0.2
# Goodwill lifts the brand's share from the aware state on (an aware HCP prescribes it now and then; Montoya et
# al. 2010: detailing moves prescribing within a state as well as between states).
LIFT_FROM_STATE = 1
# What a play needs in a segment besides customers (play_mask; the table per play is dispatch.PLAY_NEEDS).
(NEEDS_NOTHING, NEEDS_REP, NEEDS_REP_AND_UNKNOWN_NEED, NEEDS_REMOTE_OPT_IN, NEEDS_EMAIL_OPT_IN,
 NEEDS_REP_OR_EMAIL_OPT_IN) = range(6)
# Layout of the scalar parameter vector of deliver_touches.
TOUCH_PARAMS: tuple[str, ...] = (
    "load_to_monthly",
    "confusion_window_days",
    "confusion_theme_distance",
    "confusion_increment",
    "out_of_sequence_factor",
    "repeat_theme_factor",
    "unsubscribe_base",
    "unsubscribe_per_excess",
    "reinforcement",
    "email_follow_up_open",
)
# Layout of the scalar parameter vector of daily_update.
DAY_PARAMS: tuple[str, ...] = (
    "share_lift_from_response",
    "hill_shape",
    "hill_half_saturation_pow",
    "peer_effect_per_adopter_kol",
    "goodwill_decay",
    "confusion_decay",
    "load_decay",
    "new_patient_share",
    "refill_rate",
    "patient_keep",
)
# Layout of the scalar parameter vector of field_day.
FIELD_PARAMS: tuple[str, ...] = (
    "travel_minutes",
    "visit_minutes",
    "question_minutes",
    "working_minutes_per_day",
    "own_pick_revisit_days",
    "trust_learning_rate",
    "learn_need_per_visit",
    "day_start_hours",
)


@njit(cache=True)
def _before(first, second, i, j) -> bool:
    """Whether row ``i`` sorts strictly before row ``j`` by ``first``, then ``second`` (NaN last, as NumPy)."""
    a, b = first[i], first[j]
    if a < b or (b != b and a == a):
        return True
    if not a == b:
        return False
    c, d = second[i], second[j]
    return c < d or (d != d and c == c)


@njit(cache=True)
def stable_order(first, second):
    """The indices that sort ``first``, then ``second``, ties in index order: ``np.lexsort((second, first))``, and
    ``np.argsort(first, kind="mergesort")`` when ``second`` is ``first``.  A bottom-up merge sort written out
    because NumPy's compiles for seconds on a fresh install; any stable sort gives the same order."""
    n = first.size
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[i] = i
    buffer = np.empty(n, dtype=np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if _before(first, second, order[j], order[i]):  # the right run's only when strictly before
                    buffer[k] = order[j]
                    j += 1
                else:
                    buffer[k] = order[i]
                    i += 1
                k += 1
            while i < mid:
                buffer[k] = order[i]
                i += 1
                k += 1
            while j < hi:
                buffer[k] = order[j]
                j += 1
                k += 1
        order, buffer = buffer, order
        width *= 2
    return order


@njit(cache=True)
def copy_into(target, start, source):
    """``target[start:start + source.size] = source`` as a loop (a slice assignment compiles NumPy's broadcasting
    checks and their error messages, seconds on a fresh install)."""
    for i in range(source.size):
        target[start + i] = source[i]


@njit(cache=True)
def copy_rows(target, source):
    """``target[:] = source`` for 2-D arrays of one shape, as a loop (see :func:`copy_into`)."""
    for i in range(source.shape[0]):
        for j in range(source.shape[1]):
            target[i, j] = source[i, j]


@njit(cache=True)
def poisson_inverse_cdf(u: float, lam: float) -> int:
    """Smallest k with CDF(k) >= u (at most 30): monotone in ``lam`` for a fixed ``u``."""
    if lam <= 0.0:
        return 0  # CDF(0) = exp(-0) = 1 > u: skips the exp for customers who do not prescribe the brand
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u > cdf and k < _MAX_POISSON_COUNT:
        k += 1
        p = p * lam / k
        cdf += p
    return k


@njit(cache=True)
def hill_power(goodwill: float, shape: float) -> float:
    """``max(goodwill, 0) ** shape`` without libm's ``pow`` where its result is known exactly: 0 for no goodwill,
    and goodwill itself at the default shape 1 (``pow`` returns a representable result exactly)."""
    if goodwill <= 0.0:
        return 0.0
    if shape == 1.0:
        return goodwill
    return goodwill**shape


@njit(cache=True)
def next_theme(belief: int, relevance: np.ndarray) -> int:
    """Scalar ``choose_theme``: the next theme in order, or an earlier one a known need makes worth repeating."""
    n_themes = relevance.size
    limit = min(belief, n_themes - 1)
    best, best_score = 0, -np.inf
    for theme in range(n_themes):
        if theme <= limit:
            weight = 1.0 if theme == belief else 0.5
            score = relevance[theme] * weight
        else:
            score = -1.0
        if score > best_score:
            best, best_score = theme, score
    return best


@njit(cache=True)
def sends_in_last_30_days(sent_days, h, channel, day) -> int:
    """Deliveries of ``channel`` to HCP ``h`` in the 30 days before ``day`` (scalar ``sent_last_30_days``)."""
    recent = 0
    for slot in range(sent_days.shape[2]):
        if sent_days[h, channel, slot] > day - 30.0:
            recent += 1
    return recent


@njit(cache=True)
def deliver_touches(
    order, hcp, channel, theme, origin, question, engaged_hint, u, day,
    email_consent, remote_consent, sent_days, sent_pointer, contact_load, confusion, goodwill, progress,
    last_stakeholder_day, last_stakeholder_theme, ever_delivered,
    channel_fit, need_relevance, tolerance, visit_cost,
    caps, base_engagement, channel_effect, unit_cost, source_of_channel, contact_weight, params,
):  # fmt: skip
    """Deliver one day's touches in ``order`` (by HCP, then time), updating the customer state in place.

    Returns the delivered touches in delivery order, ``(hcp, channel, theme, origin, question, engaged, conflict,
    out_of_sequence, unsubscribed, impact, cost_usd)``, then the numbers blocked for consent and for caps.
    """
    load_to_monthly, window, distance, increment = params[0], params[1], params[2], params[3]
    out_of_sequence_factor, repeat_factor, unsub_base, unsub_per_excess = params[4], params[5], params[6], params[7]
    reinforcement, follow_up_open = params[8], params[9]
    n = order.size
    hcp_out = np.empty(n, dtype=hcp.dtype)
    channel_out = np.empty(n, dtype=channel.dtype)
    theme_out = np.empty(n, dtype=theme.dtype)
    origin_out = np.empty(n, dtype=origin.dtype)
    question_out = np.empty(n, dtype=question.dtype)
    engaged_out = np.zeros(n, dtype=np.bool_)
    conflict_out = np.zeros(n, dtype=np.bool_)
    ahead_out = np.zeros(n, dtype=np.bool_)
    unsub_out = np.zeros(n, dtype=np.bool_)
    impact_out = np.zeros(n)
    cost_out = np.zeros(n)
    blocked_consent = 0
    blocked_cap = 0
    k = 0
    ring = sent_days.shape[2]
    for i in range(n):
        j = order[i]
        h = hcp[j]
        c = channel[j]
        t = theme[j]
        # The channel systems block what consent or caps forbid.
        if (c == _EMAIL and not email_consent[h]) or (c == _REMOTE_DETAIL and not remote_consent[h]):
            blocked_consent += 1
            continue
        if sends_in_last_30_days(sent_days, h, c, day) >= caps[c]:
            blocked_cap += 1
            continue
        fit = channel_fit[h, c]
        relevance = need_relevance[h, t]
        excess = max(0.0, contact_load[h] * load_to_monthly / tolerance[h] - 1.0)
        fatigue = math.exp(-2.0 * excess)
        if engaged_hint[j] >= 0:
            engaged = engaged_hint[j] == 1
        else:
            base = base_engagement[c]
            # An orchestrated email that follows up the rep's met visit is opened like a rep-sent email.
            if c == _EMAIL and origin[j] == 0 and day - last_stakeholder_day[h, 0] <= window:
                base = follow_up_open
            p_engage = base * (0.4 + 0.6 * fit) * (0.6 + 0.4 * relevance) * fatigue
            engaged = u[i, 0] < p_engage
        heard = progress[h]
        if t == heard:
            sequence = 1.0
        elif t > heard:
            sequence = out_of_sequence_factor
        else:
            sequence = repeat_factor
        source = source_of_channel[c]
        pushed = source < _N_STAKEHOLDERS
        conflict = False
        consistent = False
        if engaged and pushed:
            for other in range(_N_STAKEHOLDERS):
                if other != source and day - last_stakeholder_day[h, other] <= window:
                    if abs(np.int64(last_stakeholder_theme[h, other]) - np.int64(t)) >= distance:
                        conflict = True
                    else:
                        consistent = True
        if conflict:
            confusion[h] = min(1.0, confusion[h] + increment)
        impact = 0.0
        if engaged:
            impact = channel_effect[c] * fit * relevance * sequence * (1.0 - confusion[h]) * fatigue
            # Another stakeholder's recent message on a consistent theme gives this one context.
            if consistent and not conflict:
                impact *= 1.0 + reinforcement
            goodwill[h] += impact
            if t == heard:
                progress[h] = t + 1
            if pushed:
                last_stakeholder_day[h, source] = day
                last_stakeholder_theme[h, source] = t
        # Over-contact on opt-in channels loses consent for good.
        unsubscribed = False
        if c == _EMAIL or c == _REMOTE_DETAIL:
            if u[i, 1] < unsub_base + unsub_per_excess * excess:
                unsubscribed = True
                if c == _EMAIL:
                    email_consent[h] = False
                else:
                    remote_consent[h] = False
        if c == _REP_VISIT:
            contact_load[h] += contact_weight[c] * (1.0 if engaged else 0.0)
        else:
            contact_load[h] += contact_weight[c]
        pointer = sent_pointer[h, c]
        sent_days[h, c, pointer] = day
        sent_pointer[h, c] = (pointer + 1) % ring
        ever_delivered[h] = True
        hcp_out[k] = h
        channel_out[k] = c
        theme_out[k] = t
        origin_out[k] = origin[j]
        question_out[k] = question[j]
        engaged_out[k] = engaged
        conflict_out[k] = conflict
        ahead_out[k] = engaged and pushed and t > heard
        unsub_out[k] = unsubscribed
        impact_out[k] = impact
        cost_out[k] = visit_cost[h] if c == _REP_VISIT else unit_cost[c]
        k += 1
    return (hcp_out[:k], channel_out[:k], theme_out[:k], origin_out[:k], question_out[:k], engaged_out[:k],
            conflict_out[:k], ahead_out[:k], unsub_out[:k], impact_out[:k], cost_out[:k], blocked_consent, blocked_cap)


@njit(cache=True)
def daily_update(
    working, u_rx, u_refill, u_transition, adoption, goodwill, confusion, contact_load, patients, account_access,
    account, class_rx_per_day, brand_share, access_factor, kol_edge_kol, kol_edge_follower,
    up_base, up_slope, up_peer, down_base, down_damp, params, rx_out, nrx_out, expected_out,
):  # fmt: skip
    """End of day: prescriptions and adoption transitions (working days), then carryover and decay.

    New prescriptions (NRx) are drawn from ``u_rx``, refills from ``u_refill`` on the stock of patients on the brand
    (before today's new ones join it).  Writes the day's total (TRx = NRx + refills) into ``rx_out`` and NRx into
    ``nrx_out``, and (on working days, when ``expected_out`` is not empty) each HCP's expected TRx into
    ``expected_out``; returns the expected and drawn TRx totals and the drawn NRx total.
    """
    per_hcp = expected_out.size > 0
    share_lift, hill_shape, hill_k_pow, peer_per_kol = params[0], params[1], params[2], params[3]
    goodwill_decay, confusion_decay, load_decay = params[4], params[5], params[6]
    new_share, refill_rate, patient_keep = params[7], params[8], params[9]
    n = goodwill.size
    expected_total = 0.0
    rx_total = 0
    nrx_total = 0
    if working:
        peer_count = np.zeros(n)
        for e in range(kol_edge_kol.size):
            if adoption[kol_edge_kol[e]] == 3:
                peer_count[kol_edge_follower[e]] += 1.0
        for i in range(n):
            g = hill_power(goodwill[i], hill_shape)
            response = g / (g + hill_k_pow)
            state = adoption[i]
            access = access_factor[account_access[account[i]]]
            share = brand_share[state] + (share_lift * response if state >= LIFT_FROM_STATE else 0.0)
            lam = class_rx_per_day[i] * share * access * new_share
            refill_lam = refill_rate * patients[i]
            expected_total += lam + refill_lam
            if per_hcp:
                expected_out[i] = lam + refill_lam
            nrx_out[i] = poisson_inverse_cdf(u_rx[i], lam)
            rx_out[i] = nrx_out[i] + poisson_inverse_cdf(u_refill[i], refill_lam)
            patients[i] = patients[i] * patient_keep + nrx_out[i]
            rx_total += rx_out[i]
            nrx_total += nrx_out[i]
            if state == 1:
                gate = access
            elif state == 2:
                gate = 1.0 - confusion[i]
            else:
                gate = 1.0
            p_up = (up_base[state] + up_slope[state] * response + up_peer[state] * (peer_per_kol * peer_count[i])) * gate
            p_down = (down_base[state] * (1.0 - down_damp[state] * response)) * (1.0 + confusion[i])
            u = u_transition[i]
            if u < p_up:
                adoption[i] = state + 1
            elif u > 1.0 - p_down:
                adoption[i] = 1
    else:
        rx_out[:] = 0
        nrx_out[:] = 0
    for i in range(n):
        goodwill[i] *= goodwill_decay
        confusion[i] *= confusion_decay
        contact_load[i] *= load_decay
    return expected_total, rx_total, nrx_total


@njit(cache=True)
def absorb_touches(
    day, hcp, channel, theme, origin, engaged, unsubscribed, u_keep, covered, missing_share,
    last_touch_day, delivered, engaged_count, progress, email_consent, remote_consent,
):  # fmt: skip
    """The view records a published day's touches (integrated channels only, minus lost rows).

    Returns how many of them were rep visits the orchestrator had suggested.
    """
    suggested_visits = 0
    for i in range(hcp.size):
        c = channel[i]
        if not covered[c] or u_keep[i] < missing_share:
            continue
        h = hcp[i]
        last_touch_day[h, c] = max(last_touch_day[h, c], day)
        delivered[h, c] += 1.0
        if engaged[i]:
            engaged_count[h, c] += 1.0
            if theme[i] == progress[h]:
                progress[h] = theme[i] + 1
        if unsubscribed[i]:
            if c == _EMAIL:
                email_consent[h] = False
            elif c == _REMOTE_DETAIL:
                remote_consent[h] = False
        if c == _REP_VISIT and origin[i] == 0:
            suggested_visits += 1
    return suggested_visits


@njit(cache=True)
def field_day(
    day, u, queue_hcp, queue_theme, queue_ask, pointer, trust, knows_no_see, knows_need, last_visit_day,
    rep_progress, failed_visits, seen_visits, own_order, view_progress, uses_shared_insight, records_knowledge,
    need_relevance,
    availability, archetype, params, fills_free_slots, coached_on_engagement, chose_other_channel, pick_value,
):  # fmt: skip
    """All reps' working day: accept or dismiss suggestions, fill dismissed slots with own picks, visit in
    order until the day is full, then learn (trust, needs, no-see).  ``u`` is ``[n_reps, slots, 4]``.
    With ``fills_free_slots`` (the model's reps, at every stage) slots the plan leaves empty get own picks too;
    without it (a measurement protocol's idle field) the reps make only the calls suggested to them.
    With ``coached_on_engagement`` (sales 1: coached to drive engagement, not only reach and frequency) her own
    picks are the eligible customers worth most to call: ``pick_value`` (potential, decile + 1; at sales 3 the
    orchestrator's value of the customer) x her own estimate of meeting them, (met + 1) / (called + 2); without
    it, the first eligible ones in habit (decile) order.  A rep who
    reads shared insight never picks a customer who chose another channel than hers (``chose_other_channel``).

    Returns the executed visits ``(hcp, theme, from_suggestion, asked, met, start_time)``, then the HCPs whose
    need was answered or noted, the suggested HCPs the reps dismissed as no-see, the number of dismissed
    suggestions that were used up and the number of accepted suggestions executed.
    """
    travel_minutes, visit_minutes, question_minutes, working_minutes = params[0], params[1], params[2], params[3]
    revisit_days, trust_rate, learn_rate, day_start_hours = params[4], params[5], params[6], params[7]
    n_reps, slots = u.shape[0], u.shape[1]
    queue_len = queue_hcp.shape[1]
    n_max = n_reps * slots
    ex_hcp = np.empty(n_max, dtype=np.int64)
    ex_theme = np.empty(n_max, dtype=np.int8)
    ex_origin = np.empty(n_max, dtype=np.int8)
    ex_ask = np.empty(n_max, dtype=np.bool_)
    ex_met = np.empty(n_max, dtype=np.int8)
    ex_time = np.empty(n_max)
    answered = np.empty(n_max, dtype=np.int64)
    noted = np.empty(n_max, dtype=np.int64)
    no_see = np.empty(n_max, dtype=np.int64)
    n_ex = n_answered = n_noted = n_no_see = 0
    dismissed_total = accepted_total = 0
    ones = np.ones(need_relevance.shape[1])

    sugg = np.empty(slots, dtype=np.int64)
    sugg_theme = np.empty(slots, dtype=np.int64)
    sugg_ask = np.empty(slots, dtype=np.bool_)
    accept = np.empty(slots, dtype=np.bool_)
    dismissed = np.empty(slots, dtype=np.bool_)
    picks = np.empty(own_order.shape[1], dtype=np.int64)  # a rep's eligible own picks, the day's first
    pick_score = np.empty(own_order.shape[1])
    visit = np.empty(slots, dtype=np.int64)
    theme = np.empty(slots, dtype=np.int64)
    ask = np.empty(slots, dtype=np.bool_)
    met = np.empty(slots, dtype=np.bool_)
    minutes = np.empty(slots)
    finish = np.empty(slots)
    executed = np.empty(slots, dtype=np.bool_)

    anything = fills_free_slots and n_reps > 0
    for r in range(n_reps):
        for s in range(slots):
            col = pointer[r] + s
            if col < queue_len and queue_hcp[r, col] >= 0:
                anything = True
    if not anything:
        return (ex_hcp[:0], ex_theme[:0], ex_origin[:0], ex_ask[:0], ex_met[:0], ex_time[:0], answered[:0],
                noted[:0], no_see[:0], 0, 0)

    accepted_today = np.zeros(last_visit_day.size, dtype=np.bool_)  # a rep's accepted suggestions (one load a pick)
    for r in range(n_reps):
        # Suggestions: accepted with probability = trust, unless the rep knows the HCP does not see reps.
        n_dismissed = 0
        for s in range(slots):
            col = pointer[r] + s
            if col < queue_len:
                sugg[s], sugg_theme[s], sugg_ask[s] = queue_hcp[r, col], queue_theme[r, col], queue_ask[r, col]
            else:
                sugg[s], sugg_theme[s], sugg_ask[s] = -1, 0, False
            has = sugg[s] >= 0
            accept[s] = has and not knows_no_see[sugg[s]] and u[r, s, 0] < trust[r]
            dismissed[s] = has and not accept[s]
            if dismissed[s] or (fills_free_slots and not has):
                n_dismissed += 1
            if accept[s]:
                accepted_today[sugg[s]] = True
        # Own picks, in habit order: not seen lately, not known as no-see, not already accepted for today (a
        # padded slot never repeats a suggested call).  Coached on engagement, she ranks them by potential times
        # the chance she meets them, judged from her own calls (a partial selection sort: a few picks a day).
        n_picks = 0
        for col in range(own_order.shape[1]):
            if not coached_on_engagement and n_picks >= n_dismissed:
                break
            h = own_order[r, col]
            if h < 0 or day - last_visit_day[h] < revisit_days or knows_no_see[h]:
                continue
            if uses_shared_insight and chose_other_channel[h]:
                continue
            if accepted_today[h]:
                continue
            picks[n_picks] = h
            if coached_on_engagement:
                pick_score[n_picks] = pick_value[h] * (seen_visits[h] + 1.0) / (seen_visits[h] + failed_visits[h] + 2.0)
            n_picks += 1
        if coached_on_engagement:
            for k in range(min(n_dismissed, n_picks)):
                best = k
                for j in range(k + 1, n_picks):
                    if pick_score[j] > pick_score[best]:
                        best = j
                if best != k:
                    picks[k], picks[best] = picks[best], picks[k]
                    pick_score[k], pick_score[best] = pick_score[best], pick_score[k]
        n_picks = min(n_dismissed, n_picks)
        for s in range(slots):
            if accept[s]:
                accepted_today[sugg[s]] = False
        # The day: visits in slot order until the working minutes run out.
        used_picks = 0
        elapsed = 0.0
        for s in range(slots):
            if accept[s]:
                h = sugg[s]
            elif dismissed[s] or (fills_free_slots and sugg[s] < 0):
                h = picks[used_picks] if used_picks < n_picks else -1
                used_picks += 1
            else:
                h = -1
            visit[s] = h
            if h < 0:
                minutes[s] = 0.0
                finish[s] = elapsed
                executed[s] = False
                met[s] = False
                ask[s] = False
                theme[s] = 0
                continue
            if accept[s]:
                theme[s] = sugg_theme[s]
            else:
                # Own picks carry the rep's own message: what she believes comes next, shaped by what she knows.
                belief = max(rep_progress[h], view_progress[h]) if uses_shared_insight else rep_progress[h]
                theme[s] = next_theme(belief, need_relevance[h] if knows_need[h] else ones)
            ask[s] = accept[s] and sugg_ask[s]
            met[s] = u[r, s, 1] < availability[archetype[h]]
            travel = travel_minutes * math.exp(0.3 * (u[r, s, 2] - 0.5))
            if met[s]:
                minutes[s] = travel + visit_minutes + (question_minutes if ask[s] else 0.0)
            else:
                minutes[s] = travel + 5.0
            elapsed += minutes[s]
            finish[s] = elapsed
            executed[s] = elapsed <= working_minutes
        # A suggestion accepted but not reached today stays in the queue for tomorrow.
        consumed = slots
        for s in range(slots):
            if accept[s] and not executed[s]:
                consumed = s
                break
        consumed = min(consumed, max(0, queue_len - pointer[r]))
        pointer[r] += consumed
        good = bad = 0
        for s in range(slots):
            if dismissed[s] and s < consumed:
                dismissed_total += 1
            if accept[s] and executed[s]:
                accepted_total += 1
                if met[s]:
                    good += 1
                else:
                    bad += 1
        if good + bad > 0:
            trust[r] += trust_rate * (good / (good + bad) - trust[r])
        # What the rep learns on her visits.
        for s in range(slots):
            if not executed[s]:
                continue
            h = visit[s]
            last_visit_day[h] = day
            if met[s]:
                if theme[s] == rep_progress[h]:
                    rep_progress[h] = theme[s] + 1
                if u[r, s, 3] < learn_rate:
                    knows_need[h] = True
                seen_visits[h] += 1
            else:
                failed_visits[h] += 1
        for s in range(slots):
            if not executed[s]:
                continue
            h = visit[s]
            # Two failed calls and never a meeting: the rep concludes the HCP does not see reps.
            if not met[s] and failed_visits[h] >= 2 and seen_visits[h] == 0:
                knows_no_see[h] = True
            ex_hcp[n_ex] = h
            ex_theme[n_ex] = theme[s]
            ex_origin[n_ex] = 0 if accept[s] else 1
            ex_ask[n_ex] = ask[s]
            ex_met[n_ex] = 1 if met[s] else 0
            ex_time[n_ex] = day + day_start_hours / 24.0 + (finish[s] - minutes[s]) / 1440.0
            n_ex += 1
            if ask[s] and met[s]:
                answered[n_answered] = h
                n_answered += 1
            if records_knowledge and met[s] and knows_need[h]:
                noted[n_noted] = h
                n_noted += 1
        if records_knowledge:
            for s in range(min(consumed, slots)):
                if dismissed[s] and knows_no_see[sugg[s]]:
                    no_see[n_no_see] = sugg[s]
                    n_no_see += 1
    return (ex_hcp[:n_ex], ex_theme[:n_ex], ex_origin[:n_ex], ex_ask[:n_ex], ex_met[:n_ex], ex_time[:n_ex],
            answered[:n_answered], noted[:n_noted], no_see[:n_no_see], dismissed_total, accepted_total)


@njit(cache=True)
def book_touches(channel, engaged, cost_usd, conflict, out_of_sequence, unsubscribed, cost_total, delivered_total,
                 engaged_total):  # fmt: skip
    """Add delivered touches to the ledger's per-channel totals; returns (conflicts, out of sequence, unsubscribes)."""
    n_conflict = n_out_of_sequence = n_unsub = 0
    for i in range(channel.size):
        c = channel[i]
        cost_total[c] += cost_usd[i]
        delivered_total[c] += 1.0
        if engaged[i]:
            engaged_total[c] += 1.0
        n_conflict += conflict[i]
        n_out_of_sequence += out_of_sequence[i]
        n_unsub += unsubscribed[i]
    return n_conflict, n_out_of_sequence, n_unsub


@njit(cache=True)
def portal_visitors(u, portal_rate, adoption, unaware_factor):
    """HCPs who visit the website today: a digital-affinity rate, lower before they are aware of the brand."""
    out = np.empty(u.size, dtype=np.int64)
    k = 0
    for i in range(u.size):
        rate = portal_rate[i] * (1.0 if adoption[i] >= 1 else unaware_factor)
        if u[i] < rate:
            out[k] = i
            k += 1
    return out[:k]


@njit(cache=True)
def choose_themes(progress, relevance):
    """``choose_theme`` for every HCP (see oce_sim.world.field.choose_theme)."""
    n = progress.size
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = next_theme(np.int64(progress[i]), relevance[i])
    return out


@njit(cache=True)
def segment_features(segment, n_segments, rx_share, last_touch_day, now, stale_days, email_consent, need_known,
                     progress, n_themes, engaged, delivered):  # fmt: skip
    """Per-segment means of the observation's segment features, ``[n_segments, 8]`` (see SEGMENT_FEATURES)."""
    n, n_channels = last_touch_day.shape
    sums = np.zeros((n_segments, 8))
    for i in range(n):
        s = segment[i]
        last_any = last_touch_day[i, 0]
        engaged_i = 0.0
        delivered_i = 0.0
        for c in range(n_channels):
            last_any = max(last_any, last_touch_day[i, c])
            engaged_i += engaged[i, c]
            delivered_i += delivered[i, c]
        sums[s, 0] += 1.0
        sums[s, 1] += min(1.0, rx_share[i] / 0.5)
        sums[s, 2] += min(stale_days, now - last_touch_day[i, 0]) / stale_days
        sums[s, 3] += min(stale_days, now - last_any) / stale_days
        sums[s, 4] += 1.0 if email_consent[i] else 0.0
        sums[s, 5] += 1.0 if need_known[i] else 0.0
        sums[s, 6] += progress[i] / n_themes
        sums[s, 7] += engaged_i / max(1.0, delivered_i)
    out = np.empty((n_segments, 8))
    for s in range(n_segments):
        count = sums[s, 0]
        out[s, 0] = count / n
        for f in range(1, 8):
            out[s, f] = sums[s, f] / max(1.0, count)
    return out


@njit(cache=True)
def segment_eligibility(segment, n_segments, email_consent, remote_consent, rep, no_see, need_known):
    """Per segment: customers, email opt-ins, remote opt-ins, reachable by a rep, needs unknown (counts)."""
    counts = np.zeros((n_segments, 5), dtype=np.int64)
    for i in range(segment.size):
        s = segment[i]
        counts[s, 0] += 1
        counts[s, 1] += email_consent[i]
        counts[s, 2] += remote_consent[i]
        counts[s, 3] += rep[i] >= 0 and not no_see[i]
        counts[s, 4] += not need_known[i]
    return counts


@njit(cache=True)
def plan_touches(
    play, theme, day, value, rep, n_reps, per_rep, last_touch_day, crm_last_call_day, no_see, preferred_channel,
    email_consent,
    remote_consent, need_known, sent_days, own_send_day, play_cadence_days, is_rep_play, sends_email,
    rep_ask_play, remote_play, webinar_play, rep_visit_cap, email_cap, remote_cap, email_cadence_days,
    remote_capacity,
):  # fmt: skip
    """The executor's epoch plan from one play per customer (see ``oce_sim.world.dispatch.plan_epoch``)."""
    n = play.size
    # Rep suggestions: due customers of rep plays, ranked by value x overdue, per rep.
    cand = np.empty(n, dtype=np.int64)
    priority = np.empty(n)
    n_cand = 0
    for i in range(n):
        p = play[i]
        if not is_rep_play[p] or rep[i] < 0 or no_see[i] or value[i] <= 0:
            continue
        cadence = play_cadence_days[p]
        # The CRM knows its own calls at once (at every stage); the view may know a later one (none yet: calls
        # are the CRM's), so the cadence counts from the later of the two.
        since = day - max(last_touch_day[i, _REP_VISIT], crm_last_call_day[i])
        if not since >= cadence:
            continue
        # The CRM knows its own calls and keeps within the per-HCP visit cap.
        if sends_in_last_30_days(sent_days, i, _REP_VISIT, day) >= rep_visit_cap:
            continue
        overdue = min(3.0, since / (cadence if np.isfinite(cadence) else 1.0))
        prefers_other = preferred_channel[i] >= 0 and preferred_channel[i] != _REP_VISIT
        cand[n_cand] = i
        priority[n_cand] = -(value[i] * overdue * (0.5 if prefers_other else 1.0))
        n_cand += 1
    order = stable_order(priority[:n_cand], priority[:n_cand])
    queue_hcp = np.full((n_reps, per_rep), -1, dtype=np.int64)
    queue_theme = np.zeros((n_reps, per_rep), dtype=np.int64)
    queue_ask = np.zeros((n_reps, per_rep), dtype=np.bool_)
    filled = np.zeros(n_reps, dtype=np.int64)
    suggested = np.zeros(n, dtype=np.bool_)
    for k in range(n_cand):
        i = cand[order[k]]
        r = rep[i]
        if filled[r] < per_rep:
            queue_hcp[r, filled[r]] = i
            filled[r] += 1
            suggested[i] = True
    for r in range(n_reps):
        for j in range(per_rep):
            i = queue_hcp[r, j]
            safe = max(i, 0)
            queue_theme[r, j] = theme[safe]
            queue_ask[r, j] = i >= 0 and play[safe] == rep_ask_play and not need_known[safe]
    # Non-personal channels skip customers the field visits this epoch (no stacking of stakeholders); cadence
    # counts from the executor's own send days, which it knows exactly.
    email_hcp = np.empty(n, dtype=np.int64)
    remote_cand = np.empty(n, dtype=np.int64)
    remote_priority = np.empty(n)
    webinar_hcp = np.empty(n, dtype=np.int64)
    n_email = n_remote = n_webinar = 0
    for i in range(n):
        p = play[i]
        if p == webinar_play and email_consent[i]:
            webinar_hcp[n_webinar] = i
            n_webinar += 1
        if suggested[i]:
            continue
        if sends_email[p] and email_consent[i] and day - own_send_day[i, _EMAIL] >= email_cadence_days:
            if sends_in_last_30_days(sent_days, i, _EMAIL, day) < email_cap:
                email_hcp[n_email] = i
                n_email += 1
        if p == remote_play and remote_consent[i] and day - own_send_day[i, _REMOTE_DETAIL] >= play_cadence_days[p]:
            if sends_in_last_30_days(sent_days, i, _REMOTE_DETAIL, day) < remote_cap:
                remote_cand[n_remote] = i
                remote_priority[n_remote] = -(value[i] * (1.5 if preferred_channel[i] == _REMOTE_DETAIL else 1.0))
                n_remote += 1
    remote_order = stable_order(remote_priority[:n_remote], remote_priority[:n_remote])
    n_take = min(n_remote, remote_capacity)
    remote_hcp = np.empty(n_take, dtype=np.int64)
    for k in range(n_take):
        remote_hcp[k] = remote_cand[remote_order[k]]
    return queue_hcp, queue_theme, queue_ask, email_hcp[:n_email], remote_hcp, webinar_hcp[:n_webinar]


@njit(cache=True)
def new_need_reports(noted_hcp, touch_hcp, touch_channel, portal_channel, portal_reveals, need_known, n_hcps):
    """HCPs whose needs get recorded today, sorted and unique: those noted by reps (answers, notes, declarations)
    and, when ``portal_reveals``, portal visitors whose need the view does not know yet."""
    marked = np.zeros(n_hcps, dtype=np.bool_)
    for i in range(noted_hcp.size):
        marked[noted_hcp[i]] = True
    if portal_reveals:
        for i in range(touch_hcp.size):
            h = touch_hcp[i]
            if touch_channel[i] == portal_channel and not need_known[h]:
                marked[h] = True
    found = np.empty(n_hcps, dtype=np.int64)
    k = 0
    for h in range(n_hcps):
        if marked[h]:
            found[k] = h
            k += 1
    return found[:k]


@njit(cache=True)
def noisy_need_shares(need, hcp, noise):
    """Recorded needs: the true need shares plus recording noise, floored at 0.001 and renormalised."""
    out = np.empty((hcp.size, need.shape[1]))
    for k in range(hcp.size):
        total = 0.0
        for t in range(need.shape[1]):
            value = max(need[hcp[k], t] + noise[k, t], 1e-3)
            out[k, t] = value
            total += value
        for t in range(need.shape[1]):
            out[k, t] /= max(1e-9, total)
    return out


@njit(cache=True)
def need_reports_rows(noted, noted_offsets, touch_hcp, touch_channel, touch_offsets, portal_channel, portal_reveals,
                      need_known):
    """Every territory's :func:`new_need_reports` on its rows of the flat arrays: one flat array of HCPs and its
    offsets per territory."""
    n, n_hcps = need_known.shape
    offsets = np.zeros(n + 1, dtype=np.int64)
    out = np.empty(noted.size + touch_hcp.size, dtype=np.int64)  # at most one report per note or touch
    k = 0
    for t in range(n):
        a, b = touch_offsets[t], touch_offsets[t + 1]
        found = new_need_reports(noted[noted_offsets[t]:noted_offsets[t + 1]], touch_hcp[a:b], touch_channel[a:b],
                                 portal_channel, portal_reveals, need_known[t], n_hcps)
        copy_into(out, k, found)
        k += found.size
        offsets[t + 1] = k
    return out[:k], offsets


@njit(cache=True)
def noisy_need_rows(need, hcp, offsets, noise):
    """Every territory's :func:`noisy_need_shares` on its rows (``need``: the territories' true shares)."""
    out = np.empty((hcp.size, need.shape[2]))
    for t in range(offsets.size - 1):
        a, b = offsets[t], offsets[t + 1]
        if b > a:
            copy_rows(out[a:b], noisy_need_shares(need[t], hcp[a:b], noise[a:b]))
    return out


@njit(cache=True)
def publish_rx(row, rx, noise, u_present, missing_share):
    """Write one day's syndicated Rx into the view's ring row: noisy, with lost rows; zero stays zero.
    ``noise`` and ``u_present`` hold one draw per HCP with a prescription, in HCP order."""
    k = 0
    for i in range(rx.size):
        if rx[i] > 0:
            row[i] = rx[i] * noise[k] if u_present[k] >= missing_share else 0.0
            k += 1
        else:
            row[i] = 0.0


@njit(cache=True)
def poisson_draws(u, lam):
    """``poisson_inverse_cdf`` elementwise (the compiled twin of ``simulation.poisson_from_uniform``)."""
    out = np.empty(u.size, dtype=np.int32)
    for i in range(u.size):
        out[i] = poisson_inverse_cdf(u[i], lam[i])
    return out


@njit(cache=True)
def take_day(day, size, days, hcp, channel, theme, origin, question, hint, time):
    """Take the queued touches of ``day`` out of the first ``size`` rows of a touch queue's columns.

    Returns them as new arrays, in the order they were queued, and the number of rows left: the other rows
    move up in place, keeping their order.
    """
    count = 0
    for i in range(size):
        if days[i] == day:
            count += 1
    out_hcp = np.empty(count, dtype=hcp.dtype)
    out_channel = np.empty(count, dtype=channel.dtype)
    out_theme = np.empty(count, dtype=theme.dtype)
    out_origin = np.empty(count, dtype=origin.dtype)
    out_question = np.empty(count, dtype=question.dtype)
    out_hint = np.empty(count, dtype=hint.dtype)
    out_time = np.empty(count, dtype=time.dtype)
    k = 0
    kept = 0
    for i in range(size):
        if days[i] == day:
            out_hcp[k] = hcp[i]
            out_channel[k] = channel[i]
            out_theme[k] = theme[i]
            out_origin[k] = origin[i]
            out_question[k] = question[i]
            out_hint[k] = hint[i]
            out_time[k] = time[i]
            k += 1
        else:
            if kept != i:
                days[kept] = days[i]
                hcp[kept] = hcp[i]
                channel[kept] = channel[i]
                theme[kept] = theme[i]
                origin[kept] = origin[i]
                question[kept] = question[i]
                hint[kept] = hint[i]
                time[kept] = time[i]
            kept += 1
    return out_hcp, out_channel, out_theme, out_origin, out_question, out_hint, out_time, kept


@njit(cache=True)
def intervene_on_queue(size, days, hcp, channel, theme, origin, question, hint, time, customers, follow_up, first_day,
                       last_day, email, remote):  # fmt: skip
    """A stage-3 rep's interventions on a touch queue's first ``size`` rows: the emails due to ``customers`` (a mask
    over HCPs) on ``first_day``..``last_day`` take the theme ``follow_up[hcp]``, and the remote details due to them
    then are dropped, the other rows moving up in place in their order.  Returns the emails re-themed, the remote
    details dropped and the number of rows left (``TouchQueue.pending``, ``retheme`` and ``cancel`` in one pass)."""
    rethemed = 0
    kept = 0
    for i in range(size):
        due = customers[hcp[i]] and first_day <= days[i] <= last_day
        if due and channel[i] == email:
            theme[i] = follow_up[hcp[i]]
            rethemed += 1
        elif due and channel[i] == remote:
            continue
        if kept != i:
            days[kept] = days[i]
            hcp[kept] = hcp[i]
            channel[kept] = channel[i]
            theme[kept] = theme[i]
            origin[kept] = origin[i]
            question[kept] = question[i]
            hint[kept] = hint[i]
            time[kept] = time[i]
        kept += 1
    return rethemed, size - kept, kept


@njit(cache=True)
def last_send_day(sent_days, channel):
    """``sent_days[:, channel, :].max(axis=1)`` as float64 (days are never NaN): NumPy's strided reduction over a
    few ring slots per HCP cost about as much as the rest of an epoch's plan."""
    n, ring = sent_days.shape[0], sent_days.shape[2]
    out = np.empty(n)
    for h in range(n):
        last = sent_days[h, channel, 0]
        for slot in range(1, ring):
            last = max(last, sent_days[h, channel, slot])
        out[h] = last
    return out


@njit(cache=True)
def relative_need(need):
    """``need / np.maximum(1e-9, need.max(axis=1, keepdims=True))``: each theme's need relative to the HCP's top one."""
    n, n_themes = need.shape
    out = np.empty((n, n_themes))
    for i in range(n):
        top = need[i, 0]
        for t in range(1, n_themes):
            top = max(top, need[i, t])
        scale = max(1e-9, top)
        for t in range(n_themes):
            out[i, t] = need[i, t] / scale
    return out


@njit(cache=True)
def observed_share(rx_ring, class_rx_per_day, working_days):
    """``rx_ring.sum(axis=0) / np.maximum(1e-9, class_rx_per_day * working_days)``, the float32 sum over the ring's
    days taken in NumPy's order (day by day)."""
    n_days, n = rx_ring.shape
    out = np.empty(n)
    for i in range(n):
        total = rx_ring[0, i]
        for d in range(1, n_days):
            total += rx_ring[d, i]
        out[i] = total / max(1e-9, class_rx_per_day[i] * working_days)
    return out


@njit(cache=True)
def believed_stages(share, trialing_below):
    """0 non-prescriber (no observed share), 1 trialing (below ``trialing_below``), 2 adopter, per HCP."""
    out = np.empty(share.size, dtype=np.int64)
    for i in range(share.size):
        out[i] = 0 if share[i] <= 0.0 else (1 if share[i] < trialing_below else 2)
    return out


@njit(cache=True)
def play_mask(counts, controllable, play_needs):
    """``[n_segments, n_plays]``: a play is allowed on a segment if it is controllable, the segment has customers
    (hold always) and it has customers the play can reach: ``play_needs[play]`` is one of the ``NEEDS_*`` codes
    below, tested on ``counts`` (``segment_eligibility``)."""
    n_segments, n_plays = counts.shape[0], controllable.size
    mask = np.empty((n_segments, n_plays), dtype=np.bool_)
    for s in range(n_segments):
        present, email_ok, remote_ok = counts[s, 0] > 0, counts[s, 1] > 0, counts[s, 2] > 0
        reachable, unknown_need = counts[s, 3] > 0, counts[s, 4] > 0
        for play in range(n_plays):
            need = play_needs[play]
            if need == NEEDS_NOTHING:
                ok = True
            elif need == NEEDS_REP:
                ok = reachable
            elif need == NEEDS_REP_AND_UNKNOWN_NEED:
                ok = reachable and unknown_need
            elif need == NEEDS_REMOTE_OPT_IN:
                ok = remote_ok
            elif need == NEEDS_EMAIL_OPT_IN:
                ok = email_ok
            else:  # NEEDS_REP_OR_EMAIL_OPT_IN
                ok = reachable or email_ok
            mask[s, play] = controllable[play] and (play == 0 or present) and ok
    return mask


# ----------------------------------------------------------------------------------------------------------------
# A batch's phases: one call over all territories.  Each territory's arrays are row t of a (N, ...) parent; each
# loop body is the single-territory kernel above on those rows, so territory t of a batch is, bit for bit, the
# territory a batch of one would be.


@njit(cache=True)
def take_day_rows(day, size, days, hcp, channel, theme, origin, question, hint, time):
    """``take_day`` for every territory's queue row: the day's touches as flat columns (territory by territory, in
    the order they were queued) with ``offsets`` (N + 1) into them; ``size`` is updated in place."""
    n_rows = size.size
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    for t in range(n_rows):
        count = 0
        for i in range(size[t]):
            if days[t, i] == day:
                count += 1
        offsets[t + 1] = offsets[t] + count
    total = offsets[n_rows]
    out_hcp = np.empty(total, dtype=hcp.dtype)
    out_channel = np.empty(total, dtype=channel.dtype)
    out_theme = np.empty(total, dtype=theme.dtype)
    out_origin = np.empty(total, dtype=origin.dtype)
    out_question = np.empty(total, dtype=question.dtype)
    out_hint = np.empty(total, dtype=hint.dtype)
    out_time = np.empty(total, dtype=time.dtype)
    for t in range(n_rows):
        if offsets[t + 1] == offsets[t]:
            continue
        taken = take_day(day, size[t], days[t], hcp[t], channel[t], theme[t], origin[t], question[t], hint[t],
                         time[t])
        a = offsets[t]
        copy_into(out_hcp, a, taken[0])
        copy_into(out_channel, a, taken[1])
        copy_into(out_theme, a, taken[2])
        copy_into(out_origin, a, taken[3])
        copy_into(out_question, a, taken[4])
        copy_into(out_hint, a, taken[5])
        copy_into(out_time, a, taken[6])
        size[t] = taken[7]
    return offsets, out_hcp, out_channel, out_theme, out_origin, out_question, out_hint, out_time


@njit(cache=True)
def delivery_order(hcp, time):
    """``np.lexsort((time, hcp))``: by HCP, then time, ties in queue order."""
    return stable_order(hcp, time)


@njit(cache=True)
def deliver_rows(
    active, offsets, hcp, channel, theme, origin, question, hint, time, u, day,
    email_consent, remote_consent, sent_days, sent_pointer, contact_load, confusion, goodwill, progress,
    last_stakeholder_day, last_stakeholder_theme, ever_delivered,
    channel_fit, need_relevance, tolerance, visit_cost,
    caps, base_engagement, channel_effect, unit_cost, source_of_channel, contact_weight, params,
    cost_total, delivered_total, engaged_total, hcp_cost,
):  # fmt: skip
    """``deliver_touches`` for every ``active`` territory's touches of the day (rows ``offsets[t]:offsets[t+1]`` of
    the flat columns, ``u`` alike), then booked into its ledger rows (``book_touches``) and, when ``hcp_cost`` has
    columns, into each HCP's cost.  Returns the delivered touches as flat columns with their ``offsets``, the
    numbers blocked (consent, cap) and the counts (conflicts, out of sequence, unsubscribes) per territory."""
    n_rows = active.size
    total = offsets[n_rows]
    out_offsets = np.zeros(n_rows + 1, dtype=np.int64)
    o_hcp = np.empty(total, dtype=hcp.dtype)
    o_channel = np.empty(total, dtype=channel.dtype)
    o_theme = np.empty(total, dtype=theme.dtype)
    o_origin = np.empty(total, dtype=origin.dtype)
    o_question = np.empty(total, dtype=question.dtype)
    o_engaged = np.empty(total, dtype=np.bool_)
    o_conflict = np.empty(total, dtype=np.bool_)
    o_ahead = np.empty(total, dtype=np.bool_)
    o_unsub = np.empty(total, dtype=np.bool_)
    o_impact = np.empty(total)
    o_cost = np.empty(total)
    blocked = np.zeros((n_rows, 2), dtype=np.int64)
    counts = np.zeros((n_rows, 3), dtype=np.int64)
    per_hcp_cost = hcp_cost.shape[1] > 0
    k = 0
    for t in range(n_rows):
        out_offsets[t] = k
        a, b = offsets[t], offsets[t + 1]
        if not active[t] or a == b:
            continue
        order = delivery_order(hcp[a:b], time[a:b])
        res = deliver_touches(
            order, hcp[a:b], channel[a:b], theme[a:b], origin[a:b], question[a:b], hint[a:b], u[a:b], day,
            email_consent[t], remote_consent[t], sent_days[t], sent_pointer[t], contact_load[t], confusion[t],
            goodwill[t], progress[t], last_stakeholder_day[t], last_stakeholder_theme[t], ever_delivered[t],
            channel_fit[t], need_relevance[t], tolerance[t], visit_cost[t],
            caps, base_engagement, channel_effect, unit_cost, source_of_channel, contact_weight, params,
        )  # fmt: skip
        m = res[0].size
        copy_into(o_hcp, k, res[0])
        copy_into(o_channel, k, res[1])
        copy_into(o_theme, k, res[2])
        copy_into(o_origin, k, res[3])
        copy_into(o_question, k, res[4])
        copy_into(o_engaged, k, res[5])
        copy_into(o_conflict, k, res[6])
        copy_into(o_ahead, k, res[7])
        copy_into(o_unsub, k, res[8])
        copy_into(o_impact, k, res[9])
        copy_into(o_cost, k, res[10])
        blocked[t, 0] = res[11]
        blocked[t, 1] = res[12]
        c0, c1, c2 = book_touches(res[1], res[5], res[10], res[6], res[7], res[8], cost_total[t], delivered_total[t],
                                  engaged_total[t])
        counts[t, 0] = c0
        counts[t, 1] = c1
        counts[t, 2] = c2
        if per_hcp_cost:
            for i in range(m):
                hcp_cost[t, res[0][i]] += res[10][i]
        k += m
    out_offsets[n_rows] = k
    return (out_offsets, o_hcp[:k], o_channel[:k], o_theme[:k], o_origin[:k], o_question[:k], o_engaged[:k],
            o_conflict[:k], o_ahead[:k], o_unsub[:k], o_impact[:k], o_cost[:k], blocked, counts)


@njit(cache=True)
def daily_rows(
    active, working, u_rx, u_refill, u_transition, adoption, goodwill, confusion, contact_load, patients,
    account_access, account, class_rx_per_day, brand_share, access_factor, kol_offsets, kol_edge_kol,
    kol_edge_follower, up_base, up_slope, up_peer, down_base, down_damp, params, rx_out, nrx_out, expected_out,
    hcp_margin, margin_per_rx,
):  # fmt: skip
    """``daily_update`` for every ``active`` territory (its KOL edges: ``kol_offsets[t]:kol_offsets[t+1]`` of the
    flat edge arrays).  With columns in ``expected_out``, each HCP's expected TRx goes there and, times
    ``margin_per_rx``, into ``hcp_margin``.  Returns the expected TRx, drawn TRx and drawn NRx totals per territory."""
    n_rows = active.size
    expected = np.zeros(n_rows)
    rx_total = np.zeros(n_rows, dtype=np.int64)
    nrx_total = np.zeros(n_rows, dtype=np.int64)
    per_hcp = expected_out.shape[1] > 0
    no_values = np.empty(0)
    for t in range(n_rows):
        if not active[t]:
            continue
        a, b = kol_offsets[t], kol_offsets[t + 1]
        e, r, m = daily_update(
            working, u_rx[t], u_refill[t], u_transition[t], adoption[t], goodwill[t], confusion[t], contact_load[t],
            patients[t], account_access[t], account[t], class_rx_per_day[t], brand_share, access_factor,
            kol_edge_kol[a:b], kol_edge_follower[a:b], up_base, up_slope, up_peer, down_base, down_damp, params,
            rx_out[t], nrx_out[t], expected_out[t] if per_hcp else no_values,
        )  # fmt: skip
        expected[t] = e
        rx_total[t] = r
        nrx_total[t] = m
        if per_hcp and working:
            row = expected_out[t]
            for i in range(row.size):
                hcp_margin[t, i] += row[i] * margin_per_rx
    return expected, rx_total, nrx_total


@njit(cache=True)
def customer_value_rows(active, class_rx_per_day, access_factor, account_access, account, kol_offsets, kol_edge_kol,
                        kol_edge_follower, kol_weight, out):
    """Each active territory's public customer value, into its row of ``out``: class volume x formulary access,
    plus ``kol_weight`` x the value a mapped KOL sways (his followers' summed in edge order; 0 when KOLs are not
    mapped).  The same operations in the same order as the NumPy expression it replaced, so the same numbers."""
    n, n_hcps = out.shape
    swayed = np.zeros(n_hcps)
    for t in range(n):
        if not active[t]:
            continue
        row = out[t]
        for i in range(n_hcps):
            row[i] = class_rx_per_day[t, i] * access_factor[account_access[t, account[t, i]]]
        if kol_weight > 0.0:
            swayed[:] = 0.0
            for e in range(kol_offsets[t], kol_offsets[t + 1]):
                swayed[kol_edge_kol[e]] += row[kol_edge_follower[e]]
            for i in range(n_hcps):
                row[i] = row[i] + kol_weight * swayed[i]


@njit(cache=True)
def portal_rows(u, portal_rate, adoption, unaware_factor, top_need, day, noon, size, days, hcp, channel, theme, origin,
                question, hint, time, website, customer_origin):  # fmt: skip
    """``portal_visitors`` for every territory, each visit pushed onto its territory's queue row (channel
    ``website``, the theme it needs most, at noon, engaged).  Returns False, pushing nothing, when some row lacks
    the room (the caller grows the queues and calls again)."""
    n_rows = size.size
    capacity = days.shape[1]
    visitors = []
    for t in range(n_rows):
        found = portal_visitors(u[t], portal_rate[t], adoption[t], unaware_factor)
        if size[t] + found.size > capacity:
            return False
        visitors.append(found)
    for t in range(n_rows):
        found = visitors[t]
        s = size[t]
        for j in range(found.size):
            i = s + j
            h = found[j]
            days[t, i] = day
            hcp[t, i] = h
            channel[t, i] = website
            theme[t, i] = top_need[t, h]
            origin[t, i] = customer_origin
            question[t, i] = False
            hint[t, i] = 1
            time[t, i] = noon
        size[t] = s + found.size
    return True


@njit(cache=True)
def push_rows(t, hcp_in, channel_in, theme_in, origin_in, question_in, hint_in, time_in, size, days, hcp, channel,
              theme, origin, question, hint, time):  # fmt: skip
    """Append touches to territory ``t``'s queue row (the caller made room); each touch's day is its time's."""
    s = size[t]
    for j in range(hcp_in.size):
        i = s + j
        days[t, i] = np.int64(np.floor(time_in[j]))
        hcp[t, i] = hcp_in[j]
        channel[t, i] = channel_in
        theme[t, i] = theme_in[j]
        origin[t, i] = origin_in[j]
        question[t, i] = question_in[j]
        hint[t, i] = hint_in[j]
        time[t, i] = time_in[j]
    size[t] = s + hcp_in.size


@njit(cache=True)
def field_rows(
    day, u, queue_hcp, queue_theme, queue_ask, pointer, trust, knows_no_see, knows_need, last_visit_day,
    rep_progress, failed_visits, seen_visits, own_order, view_progress, uses_shared_insight, records_knowledge,
    need_relevance, availability, archetype, params, fills_free_slots, coached_on_engagement, chose_other_channel,
    pick_value, intervenes, recent_days, n_themes, rep_visit, email, remote,
    size, days, hcp, channel, theme, origin, question, hint, time,
):  # fmt: skip
    """Every territory's field day (``field_day`` on its rows; suggestion queues padded with -1 to one width):
    the executed visits are queued, and with ``intervenes`` (sales 3) the rep then re-sequences the emails and
    stops the remote details pending for the customers she met over the next ``recent_days``.  Returns, per
    territory, (dismissed, accepted, re-sequenced + stopped) and the answered, noted and no-see HCPs as flat arrays
    with offsets."""
    n_rows = u.shape[0]
    n_max = u.shape[1] * u.shape[2]
    counts = np.zeros((n_rows, 3), dtype=np.int64)
    answered = np.empty(n_rows * n_max, dtype=np.int64)
    noted = np.empty(n_rows * n_max, dtype=np.int64)
    no_see = np.empty(n_rows * n_max, dtype=np.int64)
    offsets = np.zeros((3, n_rows + 1), dtype=np.int64)
    for t in range(n_rows):
        res = field_day(
            day, u[t], queue_hcp[t], queue_theme[t], queue_ask[t], pointer[t], trust[t], knows_no_see[t],
            knows_need[t], last_visit_day[t], rep_progress[t], failed_visits[t], seen_visits[t], own_order[t],
            view_progress[t], uses_shared_insight, records_knowledge, need_relevance[t], availability, archetype[t],
            params, fills_free_slots[t], coached_on_engagement, chose_other_channel[t], pick_value[t],
        )  # fmt: skip
        v_hcp, v_theme, v_origin, v_ask, v_met, v_time = res[0], res[1], res[2], res[3], res[4], res[5]
        push_rows(t, v_hcp, rep_visit, v_theme, v_origin, v_ask, v_met, v_time, size, days, hcp, channel, theme,
                  origin, question, hint, time)
        counts[t, 0] = res[9]
        counts[t, 1] = res[10]
        for k, found in enumerate((res[6], res[7], res[8])):
            a = offsets[k, t]
            out = answered if k == 0 else (noted if k == 1 else no_see)
            copy_into(out, a, found)
            offsets[k, t + 1] = a + found.size
        if intervenes:
            n_hcps = view_progress.shape[1]
            customers = np.zeros(n_hcps, dtype=np.bool_)
            follow_up = np.zeros(n_hcps, dtype=np.int64)
            any_met = False
            for j in range(v_hcp.size):
                if v_met[j] == 1:
                    any_met = True
                    customers[v_hcp[j]] = True
                    follow_up[v_hcp[j]] = min(np.int64(v_theme[j]) + 1, n_themes - 1)
            if any_met and size[t] > 0:
                rethemed, stopped, kept = intervene_on_queue(
                    size[t], days[t], hcp[t], channel[t], theme[t], origin[t], question[t], hint[t], time[t], customers,
                    follow_up, day, day + recent_days, email, remote)
                size[t] = kept
                counts[t, 2] = rethemed + stopped
    return counts, answered, noted, no_see, offsets


@njit(cache=True)
def absorb_rows(
    day, offsets, hcp, channel, theme, origin, engaged, unsubscribed, u_keep, covered, missing_share,
    last_touch_day, delivered, engaged_count, progress, email_consent, remote_consent,
    rx, noise, u_present, written_offsets, rx_ring, published_rx,
):  # fmt: skip
    """Every territory's view takes in its record of ``day`` (``absorb_touches`` and ``publish_rx`` on its rows; the
    touches, ``u_keep``, ``noise`` and ``u_present`` as flat arrays with offsets).  Returns the suggested visits
    recorded per territory."""
    n_rows = rx.shape[0]
    suggested = np.zeros(n_rows, dtype=np.int64)
    window = rx_ring.shape[1]
    slot_index = day % window
    for t in range(n_rows):
        a, b = offsets[t], offsets[t + 1]
        suggested[t] = absorb_touches(
            float(day), hcp[a:b], channel[a:b], theme[a:b], origin[a:b], engaged[a:b], unsubscribed[a:b], u_keep[a:b],
            covered, missing_share, last_touch_day[t], delivered[t], engaged_count[t], progress[t], email_consent[t],
            remote_consent[t],
        )  # fmt: skip
        c, d = written_offsets[t], written_offsets[t + 1]
        slot = rx_ring[t, slot_index]
        publish_rx(slot, rx[t], noise[c:d], u_present[c:d], missing_share)
        if day >= 0:
            row = published_rx[t]
            for i in range(row.size):
                row[i] += slot[i]
    return suggested


@njit(cache=True)
def segment_rows(potential_tier, rx_ring, class_rx_per_day, working_days, trialing_below, n_beliefs, share_out,
                 segment_out):
    """Every territory's observed brand share (:func:`observed_share`) and segment (potential tier x believed stage,
    :func:`believed_stages`) on its rows, into ``share_out`` and ``segment_out``."""
    for t in range(share_out.shape[0]):
        share = observed_share(rx_ring[t], class_rx_per_day[t], working_days[t])
        stage = believed_stages(share, trialing_below)
        for i in range(share.size):
            share_out[t, i] = share[i]
            segment_out[t, i] = np.int64(potential_tier[t, i]) * n_beliefs + stage[i]


@njit(cache=True)
def action_mask_rows(segment, n_segments, email_consent, remote_consent, rep, no_see, need_known, controllable,
                     play_needs, out):
    """Every territory's ``[n_segments, n_plays]`` action mask (:func:`segment_eligibility`, :func:`play_mask`) on
    its rows, into ``out``."""
    for t in range(segment.shape[0]):
        counts = segment_eligibility(segment[t], n_segments, email_consent[t], remote_consent[t], rep[t], no_see[t],
                                     need_known[t])
        copy_rows(out[t], play_mask(counts, controllable, play_needs))


@njit(cache=True)
def segment_features_rows(segment, n_segments, rx_share, last_touch_day, now, stale_days, email_consent, need_known,
                          progress, n_themes, engaged, delivered, out):  # fmt: skip
    """Every territory's :func:`segment_features` on its rows, into ``out`` ``(N, n_segments, 8)``."""
    for t in range(segment.shape[0]):
        copy_rows(out[t], segment_features(segment[t], n_segments, rx_share[t], last_touch_day[t], now, stale_days,
                                           email_consent[t], need_known[t], progress[t], n_themes, engaged[t],
                                           delivered[t]))


@njit(cache=True)
def plan_rows(
    active, plays, segment, day, value, progress, need, rep, n_reps, per_rep, last_touch_day, sent_days, no_see,
    preferred_channel, email_consent, remote_consent, need_known, own_send_day, play_cadence_days, is_rep_play,
    sends_email, rep_ask_play, remote_play, webinar_play, rep_visit_cap, email_cap, remote_cap, email_cadence_days,
    remote_capacity, queue_hcp, queue_theme, queue_ask,
):  # fmt: skip
    """Every active territory's epoch plan on its rows (``oce_sim.world.dispatch.plan_epoch``): the plays per segment
    become one play per customer, each customer's next theme (:func:`choose_themes` on :func:`relative_need`), the
    CRM's last call (:func:`last_send_day`) and :func:`plan_touches`.  Rep queues into ``queue_*`` ``(N, n_reps,
    per_rep)``; returns the email, remote and webinar customers (and the email and remote themes) as flat arrays with
    offsets per territory."""
    n, n_hcps = segment.shape
    email = np.empty(n * n_hcps, dtype=np.int64)
    email_theme = np.empty(n * n_hcps, dtype=np.int64)
    remote = np.empty(n * n_hcps, dtype=np.int64)
    remote_theme = np.empty(n * n_hcps, dtype=np.int64)
    webinar = np.empty(n * n_hcps, dtype=np.int64)
    offsets = np.zeros((3, n + 1), dtype=np.int64)
    for t in range(n):
        for k in range(3):
            offsets[k, t + 1] = offsets[k, t]
        if not active[t]:
            continue
        play = np.empty(n_hcps, dtype=np.int64)
        for i in range(n_hcps):
            play[i] = plays[t, segment[t, i]]
        theme = choose_themes(progress[t], relative_need(need[t]))
        crm_last_call_day = last_send_day(sent_days[t], _REP_VISIT)
        q_hcp, q_theme, q_ask, e, r, w = plan_touches(
            play, theme, day, value[t], rep[t], n_reps, per_rep, last_touch_day[t], crm_last_call_day, no_see[t],
            preferred_channel[t], email_consent[t], remote_consent[t], need_known[t], sent_days[t], own_send_day[t],
            play_cadence_days, is_rep_play, sends_email, rep_ask_play, remote_play, webinar_play, rep_visit_cap,
            email_cap, remote_cap, email_cadence_days, remote_capacity,
        )  # fmt: skip
        copy_rows(queue_hcp[t], q_hcp)
        copy_rows(queue_theme[t], q_theme)
        copy_rows(queue_ask[t], q_ask)
        k = offsets[0, t]
        for j in range(e.size):
            email[k + j] = e[j]
            email_theme[k + j] = theme[e[j]]
        offsets[0, t + 1] = k + e.size
        k = offsets[1, t]
        for j in range(r.size):
            remote[k + j] = r[j]
            remote_theme[k + j] = theme[r[j]]
        offsets[1, t + 1] = k + r.size
        k = offsets[2, t]
        copy_into(webinar, k, w)
        offsets[2, t + 1] = k + w.size
    return (email[:offsets[0, n]], email_theme[:offsets[0, n]], remote[:offsets[1, n]], remote_theme[:offsets[1, n]],
            webinar[:offsets[2, n]], offsets)
