"""The study schema: every table a user can query with plain SQL, and its migrations.

Documented in docs/schema.md. A migration is a list of statements; ``MIGRATIONS[i]`` brings a study
from version ``i`` to ``i + 1``. Never edit a released migration: append a new one.
"""

from __future__ import annotations

V1 = [
    # key/value metadata: schema_version, created_at, rmtui_version, ...
    """CREATE TABLE IF NOT EXISTS study (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE SEQUENCE IF NOT EXISTS ingest_seq START 1""",
    """CREATE TABLE IF NOT EXISTS ingests (
        ingest_id INTEGER PRIMARY KEY,
        source VARCHAR, options VARCHAR, rmtui_version VARCHAR,
        started_at TIMESTAMP, finished_at TIMESTAMP,
        n_read INTEGER, n_added INTEGER, n_issues INTEGER, status VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS pairs (
        pair_id VARCHAR PRIMARY KEY,
        dataset VARCHAR, subset VARCHAR, split VARCHAR, source VARCHAR, source_row INTEGER,
        context VARCHAR,                -- the chosen side's context (the shared conversation)
        chosen_response VARCHAR, rejected_response VARCHAR,
        chosen_text VARCHAR, rejected_text VARCHAR,
        chosen_text_id VARCHAR, rejected_text_id VARCHAR,
        rejected_context VARCHAR,       -- differs from context in a handful of hh-rlhf rows
        context_differs BOOLEAN,
        identical BOOLEAN,
        heldout BOOLEAN,                -- NULL: unknown; TRUE: no RM of the study trained on it
        ingest_id INTEGER)""",
    """CREATE TABLE IF NOT EXISTS texts (
        pair_id VARCHAR, side VARCHAR, text_id VARCHAR,
        context VARCHAR, response VARCHAR, text VARCHAR,
        PRIMARY KEY (pair_id, side))""",
    """CREATE TABLE IF NOT EXISTS ingest_issues (
        ingest_id INTEGER, source VARCHAR, line INTEGER, kind VARCHAR, message VARCHAR,
        excerpt VARCHAR, fatal BOOLEAN)""",
    # scoring
    """CREATE TABLE IF NOT EXISTS models (
        model_id VARCHAR PRIMARY KEY,
        name VARCHAR, path_or_hub_id VARCHAR, revision VARCHAR, role VARCHAR,
        format VARCHAR, dtype VARCHAR, device VARCHAR, max_length INTEGER,
        padding_side VARCHAR, truncation_side VARCHAR, token_budget INTEGER,
        trust_remote_code BOOLEAN, settings VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS scores (
        model_id VARCHAR, text_id VARCHAR, reward DOUBLE, truncated BOOLEAN, n_tokens INTEGER,
        PRIMARY KEY (model_id, text_id))""",
    """CREATE TABLE IF NOT EXISTS score_runs (
        run_id VARCHAR, model_id VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP,
        n_scored INTEGER, n_skipped INTEGER, n_truncated INTEGER, texts_per_s DOUBLE,
        device VARCHAR, settings VARCHAR)""",
    # features
    """CREATE TABLE IF NOT EXISTS featurizers (
        featurizer VARCHAR PRIMARY KEY, version VARCHAR, config VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS feature_defs (
        featurizer VARCHAR, name VARCHAR, kind VARCHAR, role VARCHAR, proxy BOOLEAN,
        description VARCHAR, PRIMARY KEY (featurizer, name))""",
    """CREATE TABLE IF NOT EXISTS features (
        text_id VARCHAR, featurizer VARCHAR, name VARCHAR, value DOUBLE,
        PRIMARY KEY (text_id, featurizer, name))""",
    """CREATE TABLE IF NOT EXISTS label_failures (
        text_id VARCHAR, featurizer VARCHAR, reason VARCHAR, attempts INTEGER, updated_at TIMESTAMP,
        PRIMARY KEY (text_id, featurizer))""",
    """CREATE TABLE IF NOT EXISTS llm_calls (
        call_id VARCHAR, request_id VARCHAR, purpose VARCHAR, endpoint VARCHAR, model VARCHAR,
        text_id VARCHAR, attempt INTEGER, status VARCHAR, http_status INTEGER, latency_s DOUBLE,
        prompt_tokens INTEGER, completion_tokens INTEGER, error VARCHAR, created_at TIMESTAMP)""",
    # metrics
    """CREATE TABLE IF NOT EXISTS fits (
        fit_id VARCHAR PRIMARY KEY, kind VARCHAR, created_at TIMESTAMP, options VARCHAR,
        pre_model_id VARCHAR, post_model_id VARCHAR, se_type VARCHAR, n INTEGER, messages VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS imprint (
        fit_id VARCHAR, target VARCHAR, feature VARCHAR, estimate DOUBLE, se DOUBLE,
        ci_low DOUBLE, ci_high DOUBLE, p DOUBLE, p_bonferroni DOUBLE, p_bh DOUBLE, n INTEGER,
        se_type VARCHAR, vif DOUBLE, r2 DOUBLE)""",
    # any other regression a fit makes (theta on features, misalignment LPM/logit, ...)
    """CREATE TABLE IF NOT EXISTS coefficients (
        fit_id VARCHAR, analysis VARCHAR, target VARCHAR, term VARCHAR, estimate DOUBLE, se DOUBLE,
        ci_low DOUBLE, ci_high DOUBLE, p DOUBLE, p_bonferroni DOUBLE, p_bh DOUBLE, n INTEGER,
        se_type VARCHAR, r2 DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS pair_metrics (
        pair_id VARCHAR PRIMARY KEY, fit_id VARCHAR,
        reward_chosen_pre DOUBLE, reward_rejected_pre DOUBLE,
        reward_chosen_post DOUBLE, reward_rejected_post DOUBLE,
        margin_pre DOUBLE, margin_post DOUBLE,
        agree_pre INTEGER, agree_post INTEGER,   -- 1 agree, 0 disagree, NULL tie or unscored
        tie_pre BOOLEAN, tie_post BOOLEAN,
        regime VARCHAR, gamma VARCHAR, theta DOUBLE,
        same_target_labels BOOLEAN, near_identical BOOLEAN, labeler_sides_with_rm BOOLEAN,
        confusing BOOLEAN)""",
    # rewrites and robustness
    """CREATE TABLE IF NOT EXISTS rewrites (
        rewrite_id VARCHAR PRIMARY KEY, pair_id VARCHAR, side VARCHAR, rewriter VARCHAR,
        params VARCHAR, original_text_id VARCHAR, new_text_id VARCHAR,
        new_context VARCHAR, new_response VARCHAR, new_text VARCHAR,
        similarity DOUBLE, experiment VARCHAR, kept BOOLEAN, created_at TIMESTAMP,
        perturbation VARCHAR,           -- rule name, LLM target, or NULL (manual / plain LLM rewrite)
        meaning_changed BOOLEAN,        -- similarity below the threshold in force when stored
        notes VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS robustness (
        fit_id VARCHAR, outcome VARCHAR, term VARCHAR, estimate DOUBLE, se DOUBLE,
        ci_low DOUBLE, ci_high DOUBLE, p DOUBLE, n INTEGER, se_type VARCHAR)""",
    # mean reward change per perturbation, rewritten side and RM (rewrites with changed text only)
    """CREATE TABLE IF NOT EXISTS sensitivity (
        fit_id VARCHAR, perturbation VARCHAR, side VARCHAR, model_id VARCHAR, role VARCHAR,
        mean_change DOUBLE, ci_low DOUBLE, ci_high DOUBLE, n INTEGER)""",
    # triage
    """CREATE TABLE IF NOT EXISTS triage (
        pair_id VARCHAR, tag VARCHAR, note VARCHAR, updated_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS triage_log (
        seq BIGINT, pair_id VARCHAR, action VARCHAR, value VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS selection (pair_id VARCHAR PRIMARY KEY)""",
    # pipeline steps (rmtui run): what was done with which inputs
    """CREATE TABLE IF NOT EXISTS steps (
        step VARCHAR PRIMARY KEY, fingerprint VARCHAR, finished_at TIMESTAMP, seconds DOUBLE,
        summary VARCHAR)""",
]

# datasets in their published shapes (analysis/datasets/shapes.py): who won and how, per pair. A human tie is
# stored with chosen = A, rejected = B and human_tie TRUE; agreement and regimes leave those out.
V2_HUMAN_LABELS = [
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS preference VARCHAR",        # a | b | tie | chosen (a chosen/rejected set)
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS human_tie BOOLEAN DEFAULT FALSE",
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS a_is_chosen BOOLEAN",       # orientation: chosen is the source's A
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS label_raw VARCHAR",         # the label value(s) as read
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS votes_a INTEGER",
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS votes_b INTEGER",
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS votes_tie INTEGER",
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS annotator_agreement DOUBLE",  # share of votes for the top class
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS human_margin DOUBLE",       # score difference / preference strength
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS dimension VARCHAR",         # better | safer | ... (label:DIM=...)
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS source_item VARCHAR",       # list items of an expanded row: '2>0'
]


# statistics: honest robustness columns, stored agreement with intervals, paired tests,
# baselines, the rewrite experiments' design, suspected label errors. Additive only.
V3_STATS = [
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS variant VARCHAR",  # at_risk | all_rewrites
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS events INTEGER",  # outcome events in the fit
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS n_flip INTEGER",  # rows with the flip
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS events_flip INTEGER",  # events among them
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS p_exact DOUBLE",  # Fisher, 2x2 of the flip
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS p_bonferroni DOUBLE",
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS p_bh DOUBLE",
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS p_method VARCHAR",
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS ci_method VARCHAR",
    "ALTER TABLE robustness ADD COLUMN IF NOT EXISTS status VARCHAR",  # ok | small cells | not estimable: why
    "ALTER TABLE imprint ADD COLUMN IF NOT EXISTS feature_sd DOUBLE",  # SD of the feature over the fitted rows
    "ALTER TABLE imprint ADD COLUMN IF NOT EXISTS estimate_per_sd DOUBLE",  # reward per SD of the feature
    "ALTER TABLE imprint ADD COLUMN IF NOT EXISTS ci_low_per_sd DOUBLE",
    "ALTER TABLE imprint ADD COLUMN IF NOT EXISTS ci_high_per_sd DOUBLE",
    "ALTER TABLE pair_metrics ADD COLUMN IF NOT EXISTS theta_centered DOUBLE",  # rewards minus each RM's study mean
    "ALTER TABLE pair_metrics ADD COLUMN IF NOT EXISTS suspect_score DOUBLE",  # evidence the human label is wrong
    # agreement / misalignment per RM and slice: agreement = agree / decided, misalignment = 1 - agreement
    """CREATE TABLE IF NOT EXISTS agreement_stats (
        fit_id VARCHAR, model_id VARCHAR, role VARCHAR, slice VARCHAR, value VARCHAR,
        n INTEGER, decided INTEGER, agree INTEGER, disagree INTEGER, tie INTEGER, unscored INTEGER,
        agreement DOUBLE, agreement_low DOUBLE, agreement_high DOUBLE,
        misalignment DOUBLE, misalignment_low DOUBLE, misalignment_high DOUBLE, interval VARCHAR)""",
    # regime shares with intervals per slice (share of decided pairs)
    """CREATE TABLE IF NOT EXISTS regime_stats (
        fit_id VARCHAR, slice VARCHAR, value VARCHAR, regime VARCHAR, n INTEGER, decided INTEGER,
        share DOUBLE, share_low DOUBLE, share_high DOUBLE, interval VARCHAR)""",
    # pre vs post on the same pairs: McNemar's exact test on (reversed, got_aligned)
    """CREATE TABLE IF NOT EXISTS paired_tests (
        fit_id VARCHAR, slice VARCHAR, value VARCHAR, n_both_decided INTEGER, reversed INTEGER,
        got_aligned INTEGER, agreement_pre DOUBLE, agreement_post DOUBLE, difference DOUBLE,
        diff_low DOUBLE, diff_high DOUBLE, p DOUBLE, test VARCHAR, interval VARCHAR)""",
    # what trivial rules get on the same pairs
    """CREATE TABLE IF NOT EXISTS baselines (
        fit_id VARCHAR, baseline VARCHAR, slice VARCHAR, value VARCHAR, n INTEGER, decided INTEGER,
        agree INTEGER, tie INTEGER, agreement DOUBLE, agreement_low DOUBLE, agreement_high DOUBLE,
        method VARCHAR)""",
    # how often the target labeler behind gamma agrees with the human label (gamma c vs r), per slice
    """CREATE TABLE IF NOT EXISTS labeler_agreement (
        fit_id VARCHAR, gamma_features VARCHAR, proxy BOOLEAN, slice VARCHAR, value VARCHAR, n INTEGER,
        c INTEGER, i INTEGER, r INTEGER, unlabelled INTEGER, agreement DOUBLE, agreement_low DOUBLE,
        agreement_high DOUBLE)""",
    # the design of each rewrite experiment, so it can be named and regenerated
    """CREATE TABLE IF NOT EXISTS rewrite_experiments (
        experiment VARCHAR PRIMARY KEY, rewriter VARCHAR, params VARCHAR, seed BIGINT, n_requested INTEGER,
        n_sampled INTEGER, sides VARCHAR, n_candidates INTEGER, frame VARCHAR, similarity_threshold DOUBLE,
        created_at TIMESTAMP)""",
]


# a scoring run killed before it finished is marked 'interrupted' (store/jobs.py); finished runs say
# 'done'. NULL: a run of an older rmtui (finished_at tells).
V4_RUN_STATUS = [
    """ALTER TABLE score_runs ADD COLUMN IF NOT EXISTS status VARCHAR""",
]

# reliability (issue 25): why a scoring run is not 'done' ('failed': the reason; 'interrupted'); the
# degenerate terms a fit met (numpy/statsmodels warnings), one line each
V5_RUN_REASON_FIT_WARNINGS = [
    """ALTER TABLE score_runs ADD COLUMN IF NOT EXISTS reason VARCHAR""",
    """CREATE TABLE IF NOT EXISTS fit_warnings (
        fit_id VARCHAR, analysis VARCHAR, target VARCHAR, term VARCHAR, category VARCHAR, message VARCHAR,
        n INTEGER)""",
]

# repeated judgments of one item (the same prompt and the same two responses, in either order) become
# one pair with their votes: the pair counts its records, the ingest how many it merged and how many
# of those items the records disagreed on (analysis/datasets/repeats.py).
V6_INGEST_MERGES = [
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS n_records INTEGER",      # records judging this pair (NULL: 1)
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS merged_rows VARCHAR",    # their source rows, '3,17,42' (NULL: source_row)
    "ALTER TABLE pairs ADD COLUMN IF NOT EXISTS records_disagree BOOLEAN",  # the records' own labels differ
    "ALTER TABLE ingests ADD COLUMN IF NOT EXISTS n_merged INTEGER",     # records folded into an earlier pair
    "ALTER TABLE ingests ADD COLUMN IF NOT EXISTS n_repeated_items INTEGER",  # pairs judged by several records
    "ALTER TABLE ingests ADD COLUMN IF NOT EXISTS n_conflicting INTEGER",    # of those, records disagreeing
    "ALTER TABLE ingests ADD COLUMN IF NOT EXISTS n_replaced INTEGER",   # pairs of the source replaced (--replace)
]

# issue 24: human ties counted beside agreement (never in its denominator); how many texts each score
# run cut at the model's maximum length (n_truncated was there; the length and the share are new).
V7_QUOTABLE = [
    "ALTER TABLE agreement_stats ADD COLUMN IF NOT EXISTS human_tie INTEGER",  # pairs the humans tied: left out
    "ALTER TABLE score_runs ADD COLUMN IF NOT EXISTS max_length INTEGER",
    "ALTER TABLE score_runs ADD COLUMN IF NOT EXISTS truncated_share DOUBLE",  # n_truncated / n_scored
    "ALTER TABLE paired_tests ADD COLUMN IF NOT EXISTS p_bh DOUBLE",  # BH across the subsets' tests
]

MIGRATIONS: list[list[str]] = [V1, V2_HUMAN_LABELS, V3_STATS, V4_RUN_STATUS, V5_RUN_REASON_FIT_WARNINGS,
                               V6_INGEST_MERGES, V7_QUOTABLE]
SCHEMA_VERSION = len(MIGRATIONS)
