"""The maturity matrix, declared once: what each (entity, level) gives in information and grants in authority.

Every stage-dependent behaviour of the simulation asks :func:`has` for a named *capability* instead of comparing
stage numbers, and ``docs/MODEL.md`` §4 is generated from :data:`MATRIX` (:func:`markdown_table`).  Each cell of
``shared/stage-matrix.md`` is either mapped to the capabilities that implement it or marked *not modelled* with
the reason.  A capability is information or authority, never an outcome multiplier: what a stage changes is who
knows what, when, and who may decide which touch.
"""

from __future__ import annotations

from dataclasses import dataclass

from oce_sim.config import ENTITIES, STAGE_NAMES, StageConfig


@dataclass(frozen=True)
class Capability:
    name: str
    entity: str
    level: int  # held from this level of the entity on
    kind: str  # "information" or "authority" or "process"
    mechanism: str  # where and how the simulation implements it


CAPABILITIES: tuple[Capability, ...] = (
    Capability("crm_knows_own_calls", "sales", 0, "information",
               "the CRM records every call at once (even Kendal records his calls), so the executor keeps each "
               "customer's visit cadence and cap from the exact call log (dispatch.plan_epoch)"),
    Capability("customer_reveals_need_on_portal", "customer", 1, "information",
               "a portal visit reveals the visitor's need to the view (Territories.need_reports): customers 'have to "
               "ask'"),
    Capability("account_stakeholders_mapped", "customer", 2, "information",
               "the view knows which customers are KOLs and how many followers each sways, so the executor ranks "
               "must-win stakeholders by their reach (World.customer_priority)"),
    Capability("customers_declare_preferences", "customer", 3, "information",
               "at day 0 a share of customers choose an experience package: need and preferred channel reach the "
               "view through the pipeline, and a rep who reads the CRM (sales 1 on) leaves customers who chose "
               "another channel off her own picks (World._customer_declarations, kernels.field_day)"),
    Capability("rep_uses_shared_insight", "sales", 1, "information",
               "the rep's own picks carry max(her memory, the view's progress): cross-channel insight in CRM "
               "(kernels.field_day)"),
    Capability("rep_coached_on_engagement", "sales", 1, "process",
               "coached to drive engagement, not only reach and frequency: the rep's own picks (the calls she "
               "chooses, padding included) go to the customers worth most to call, potential times the chance she "
               "meets them as her own call record tells it, instead of potential alone; a judgment call that needs "
               "no IT (kernels.field_day)"),
    Capability("acceptance_visible", "sales", 1, "information",
               "the orchestrator sees how often reps accept suggestions (observation feature)"),
    Capability("rep_records_knowledge", "sales", 2, "process",
               "reps record the needs of customers they met and know, and flag no-see customers when they dismiss "
               "(kernels.field_day)"),
    Capability("system_asks_questions", "sales", 2, "authority",
               "the rep_visit_ask play: the system prompts the rep with the questions it cannot answer "
               "(dispatch.controllable_plays)"),
    Capability("rep_intervenes_on_channels", "sales", 3, "authority",
               "after a met call the rep re-sequences the other channels' pending touches to her customer onto "
               "the message she just delivered (kernels.field_rows)"),
    Capability("rep_measured_on_outcome", "sales", 3, "information",
               "the rep is measured on outcome, not on a call quota: she still fills the time the plan leaves free "
               "(a level never takes an option away), but ranks those own picks by what the orchestrator knows each "
               "customer is worth (World.customer_priority: volume x access, KOL reach, tested response) times her "
               "chance to meet them, instead of potential alone (kernels.field_day)"),
    Capability("marketing_personalises_from_insight", "marketing", 1, "information",
               "the calendar keeps its dates and targets but picks each message from shared insight "
               "(World.marketing_theme)"),
    Capability("marketing_plans_with_field_records", "marketing", 2, "process",
               "marketing reads the field's call records: an email or inside-sales call to a customer the rep met "
               "in the last 14 days carries the message that follows hers (consistent, so reinforced rather than "
               "contradicting: World._follow_field_records)"),
    Capability("orchestrator_controls_marketing", "marketing", 3, "authority",
               "the calendar stops; remote detail, email, webinar invitations and rep+email plays are the "
               "orchestrator's (dispatch.controllable_plays, World.__init__)"),
    Capability("predictions_tested_for_efficacy", "it", 3, "process",
               "the executor withholds a random pipeline.holdout_share of the customers each epoch's plan targets; "
               "the view learns each (segment, channel)'s uplift, treated minus held out, from the Rx the pipeline "
               "publishes (so latency, gaps and noise limit it), and the executor acts on it: it ranks the field's "
               "customers by their segment's tested response to a visit and stops touches whose tested uplift is "
               "confidently below their cost (world/efficacy.py, World._test_efficacy); off by default "
               "(holdout_share 0): at one territory's scale the learning does not pay for its holdout"),
)
_BY_NAME = {c.name: c for c in CAPABILITIES}


def has(stage: StageConfig, capability: str) -> bool:
    """Whether an organisation at ``stage`` holds ``capability`` (by name, see :data:`CAPABILITIES`)."""
    cap = _BY_NAME[capability]
    return getattr(stage, cap.entity) >= cap.level


def pipeline_level_index(stage: StageConfig) -> int:
    """IT's level is the data pipeline's level (latency, coverage, quality: config.pipeline.levels)."""
    return stage.it


@dataclass(frozen=True)
class Cell:
    entity: str
    level: int
    paper: str  # the matrix cell, condensed (shared/stage-matrix.md)
    capabilities: tuple[str, ...]  # mapped to these mechanisms (held from this level on)
    not_modelled: str = ""  # the part of the cell left out, and why


MATRIX: tuple[Cell, ...] = (
    Cell("customer", 0, "receives what the company plans; no say in channel or timing", (),
         ""),
    Cell("customer", 1, "channel preferences known and respected; needs not anticipated: 'they have to ask'",
         ("customer_reveals_need_on_portal",),
         "channel preferences are learned only from declarations (level 3) and the field's records"),
    Cell("customer", 2, "needs learned through the field's questions and recorded; must-win stakeholders of an "
         "account mapped", ("account_stakeholders_mapped",),
         "needs learned through questions are the sales-2 capability; account roles beyond KOL influence (payer, "
         "pharmacist, administrator) are not modelled: the model has no such stakeholders"),
    Cell("customer", 3, "customers select orchestration experiences (experience packages)",
         ("customers_declare_preferences",),
         "packages by geography, therapy area and time of year: one territory, one brand, one year"),
    Cell("sales", 0, "manager's call plan, fixed alignments, reach and frequency; CRM a system of record; "
         "knowledge stays in the rep's head", ("crm_knows_own_calls",),
         "the fixed quarterly plan is the instruction heuristic's (agents/stage_heuristics.py), not a limit the "
         "environment imposes"),
    Cell("sales", 1, "cross-channel insights in CRM; judgment calls; coached on engagement",
         ("rep_uses_shared_insight", "rep_coached_on_engagement", "acceptance_visible"),
         "coaching changes whom the rep picks, not her effort or motivation (no rep motivation state)"),
    Cell("sales", 2, "records what she knows; answers the system's questions; must-win stakeholder framework",
         ("rep_records_knowledge", "system_asks_questions"), ""),
    Cell("sales", 3, "intervenes on other channels and colleagues' activities (stop, start, re-sequence); rates "
         "insights; other brands' reps' insights; measured on outcome", ("rep_intervenes_on_channels", "rep_measured_on_outcome"),
         "rating insights and other brands' reps: one brand; the outcome measure changes whom she calls in her free time, not her effort (no incentive model)"),
    Cell("marketing", 0, "own campaigns; insights not integrated, shared or acted on", (),
         ""),
    Cell("marketing", 1, "shares insights for personal and non-personal channels",
         ("marketing_personalises_from_insight",), ""),
    Cell("marketing", 2, "plans with what the field records; the mix provided jointly",
         ("marketing_plans_with_field_records",), ""),
    Cell("marketing", 3, "contributes to ranking and prioritising sales actions",
         ("orchestrator_controls_marketing",), ""),
    Cell("it", 0, "systems of record; batch loads; vertical silos", (),
         "pipeline level 0: monthly batches, 21-day latency, CRM calls only (config.pipeline.levels[0])"),
    Cell("it", 1, "prioritises insights by efficacy; weekly integrated data", (),
         "pipeline level 1: weekly batches and latency, every channel; prioritising by efficacy is not modelled"),
    Cell("it", 2, "prompts questions about unknown attributes; behavioural data in one place", (),
         "pipeline level 2: weekly batches, 4-day latency, less noise; the prompting is the sales-2 capability"),
    Cell("it", 3, "learns from interventions; near-real-time integration; predictions tested for efficacy",
         ("predictions_tested_for_efficacy",),
         "pipeline level 3: daily, 1-day latency; learning from the *instructions* sales and marketing give (rated "
         "insights) is not modelled: the system learns from the outcomes of the touches it and they make"),
)


def markdown_table() -> str:
    """The matrix as docs/MODEL.md §4 shows it: each cell's paper text, mechanisms, and what is not modelled."""
    lines = ["| entity | level | the white paper | mechanism | not modelled |", "|---|---|---|---|---|"]
    for cell in MATRIX:
        mechanisms = "; ".join(f"**{c}**: {_BY_NAME[c].mechanism}" for c in cell.capabilities) or "-"
        lines.append(f"| {cell.entity} | {cell.level} {STAGE_NAMES[cell.level]} | {cell.paper} | {mechanisms} | "
                     f"{cell.not_modelled or '-'} |")
    return "\n".join(lines)


assert {(c.entity, c.level) for c in MATRIX} == {(e, lv) for e in ENTITIES for lv in range(4)}
assert all(_BY_NAME[n].entity == cell.entity and _BY_NAME[n].level == cell.level
           for cell in MATRIX for n in cell.capabilities)
