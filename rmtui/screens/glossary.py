"""The glossary: every word and column of the app in plain words, with the formula where there is one.

One key from every screen (``i``, or ``f2`` where a text box takes letters), and ``g`` from the help.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# (term, where it shows, plain words, formula or None). Order: from the data up to the fit.
GLOSSARY: list[tuple[str, str, str, str | None]] = [
    ("pair", "pair", "One prompt (the conversation so far) with two responses: the one a human labeler "
     "preferred (chosen) and the other (rejected).", None),
    ("RM", "pre, post", "Reward model: a model that gives a response a score, its reward r. The pre-D RM is "
     "the model before training on the dataset D, the post-D RM after.", None),
    ("margin", "m.pre, m.post", "How much more the RM rewards the chosen response than the rejected one. "
     "Above 0: the RM agrees with the human; below 0: it prefers the rejected response.",
     "margin = r(chosen) − r(rejected)"),
    ("tie", "tie", "A margin of 0 (within the fit's tolerance): the RM does not prefer either side. Ties are "
     "counted on their own, never as agreement.", None),
    ("agreement", "regimes screen", "The share of decided pairs on which the RM agrees with the human: RM "
     "ties and pairs the humans called a tie are left out and counted beside, never folded in.",
     "agreement = agree / decided = agree / (agree + disagree)"),
    ("regime", "regime", "What training on D did to a pair, from whether the pre-D and the post-D RM agree "
     "with the human:", None),
    ("  stayed aligned", "stayed", "Both RMs agree with the human (pre ✓, post ✓).", None),
    ("  got aligned", "got al.", "The pre-D RM disagreed, the post-D RM agrees: training fixed it (✗ → ✓).", None),
    ("  resists alignment", "resists", "Both RMs prefer the rejected response: training on D did not fix it "
     "(✗, ✗). The list opens on these.", None),
    ("  reversed", "reversed", "The pre-D RM agreed, the post-D RM does not: training broke it (✓ → ✗).", None),
    ("  unscored", "unscored", "A pair without the rewards a regime needs (score it with both RMs, then fit).",
     None),
    ("misalignment", "mis%", "The share of scored pairs on which the post-D RM prefers the rejected response "
     "(resists alignment + reversed).", "mis% = (resists + reversed) / scored pairs × 100"),
    ("γ gamma", "γ", "What an LM labeler prefers, from the target labels (harmless, helpful) of the two "
     "responses: c = it agrees with the human, i = indifferent (same labels), r = it prefers the rejected "
     "response, none = no target labels in the study.",
     "s(t) = 2·harmless(t) + helpful(t);  γ = c if s(chosen) > s(rejected), i if equal, r if less"),
    ("θ theta", "θ", "How the rewards of the pair turned from the pre-D to the post-D RM, as an angle in "
     "degrees (0: the same direction).",
     "u = (pre r(chosen), pre r(rejected)), v = (post r(chosen), post r(rejected)); θ = signed angle u → v"),
    ("held-out", "held / in", "held: the pair was held out of the post-D RM's training (a fair test); in: "
     "it was in the training data; -: not known.", None),
    ("feature", "feature", "A measured property of a text: length, sentiment, refusal, eloquence … "
     "Target features (harmless, helpful; bold) are the labels γ compares.", None),
    ("proxy ~", "~name", "A feature computed by an offline stand-in (a heuristic or a small model) for one "
     "that needs an LLM labeler: read it with care.", None),
    ("imprint", "coefficient screen", "How much reward each feature earns: a linear regression of the "
     "reward on the features, one row per text (chosen and rejected together), for the pre-D RM, the "
     "post-D RM and their difference (shift).",
     "r(t) = b0 + Σ_k b_k · x_k(t) + e;  coef = b_k;  shift: the same for r_post − r_pre"),
    ("n", "n", "The number of texts in the regression: two per pair (so 4,800 for 2,400 pairs).", None),
    ("SE cluster", "SE", "Standard errors clustered by pair: the two texts of a pair are not independent, so "
     "the uncertainty is computed pair by pair.", None),
    ("95% CI", "95% CI", "The interval that holds the true coefficient with 95 % confidence.",
     "coef ± 1.96 · SE"),
    ("p adj, sig", "p adj, sig", "The chance of an effect this large with no real effect, multiplied by the "
     "number of coefficients tested (Bonferroni). *** < .001, ** < .01, * < .05, ns: not significant.",
     "p adj = min(1, p × number of tests)"),
    ("R²", "R²", "The share of the reward's variance the features explain (0 to 1).", None),
    ("similarity", "sim", "How many words two texts share, from 0 (none) to 1 (the same words).", None),
    ("flip", "FLIPS", "A rewrite flips a pair for an RM when the margin changes sign: the RM now prefers the "
     "other response.", None),
    ("triage", "●, tags", "Selected ●, tags, notes: your triage, saved in the study at once: a selection (s, gs for the "
     "whole filter), tags (1-4, T) and a note (n). U undoes the last change.", None),
]


def glossary_table(width: int = 80) -> Table:
    t = Table(box=None, padding=(0, 1), show_header=False, expand=True)
    t.add_column("term", style="bold cyan", no_wrap=True, width=19)
    t.add_column("meaning", ratio=1)
    for term, shown, words, formula in GLOSSARY:
        cell = Text(words)
        if shown and shown.strip() != term.strip():
            cell.append(f"  [{shown}]", style="dim")
        if formula:
            cell.append("\n")
            cell.append(formula, style="italic yellow")
        t.add_row(term, cell)
    return t


# the list's columns in words, for the status line when a column has the focus
COLUMN_MEANING = {
    "pair_id": "pair: the pair's id (enter opens it)",
    "subset": "subset: the part of the dataset",
    "split": "split: the dataset split (train, test)",
    "margin_pre": "m.pre: pre-D RM's r(chosen) − r(rejected)",
    "margin_post": "m.post: post-D RM's r(chosen) − r(rejected)",
    "regime": "regime: what training on D did to the pair",
    "gamma": "γ: LM labeler's preference (c agrees, i same, r disagrees)",
    "theta": "θ: angle from pre-D to post-D rewards (degrees)",
    "heldout": "held: held out of post-D training, or in it",
    "tags": "tags: your tags (1-4, T)",
    "prompt": "prompt: the last human turn ([n]: of n; ‹ the first)",
}


class GlossaryScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,i,f2", "close", "Close", id="glossary.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(Text.assemble(("Glossary", "bold"), ("  ↑↓ PgUp PgDn scroll · escape closes", "dim")),
                         id="help-title")
            yield Static(glossary_table(self.app.size.width), id="glossary-table")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
