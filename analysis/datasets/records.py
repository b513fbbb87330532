"""One record of a preference dataset as rmtui holds it: :class:`Pair` and :class:`Issue`, the
transcript rule (cut at the last ``"Assistant:"``), and :func:`row_to_pair`, which turns a record's
prompt/chosen/rejected values into a Pair. The file readers (``readers``) and the published shapes
(``shapes``) both build on it; it imports neither.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.errors import InputError
from analysis.hashing import pair_id as make_pair_id
from analysis.hashing import text_id as make_text_id

ASSISTANT = "Assistant:"
HUMAN = "Human:"
_TURN_RE = re.compile(r"(?:^|\n\n)(Human|Assistant|System):[ ]?")


@dataclass
class Pair:
    subset: str
    split: str
    source: str
    source_row: int  # 1-based line (JSONL), data row (CSV) or row index + 1 (Parquet/HF)
    dataset: str
    chosen_context: str
    chosen_response: str
    rejected_context: str
    rejected_response: str
    chosen_text: str
    rejected_text: str
    # from analysis.datasets.shapes: human-label columns of pairs (preference, votes_*, human_margin, ...) and
    # per-response attributes (name -> number) of the chosen and rejected texts
    extra: dict = field(default_factory=dict)
    chosen_attrs: dict = field(default_factory=dict)
    rejected_attrs: dict = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return self.chosen_text == self.rejected_text

    @property
    def context_differs(self) -> bool:
        return self.chosen_context != self.rejected_context

    @property
    def pair_id(self) -> str:
        return make_pair_id(self.subset, self.split, self.source_row, self.chosen_text, self.rejected_text)

    @property
    def chosen_text_id(self) -> str:
        return make_text_id(self.chosen_context, self.chosen_response)

    @property
    def rejected_text_id(self) -> str:
        return make_text_id(self.rejected_context, self.rejected_response)


@dataclass
class Issue:
    source: str
    line: int
    kind: str  # malformed_json | missing_field | empty_text | no_assistant | invalid_utf8 | identical | bad_value
    message: str
    excerpt: str = ""
    fatal: bool = True  # False: the pair was kept but flagged (identical chosen/rejected)

    def describe(self) -> str:
        return f"{self.source}:{self.line}: {self.kind}: {self.message}"


@dataclass
class ReadOptions:
    subset: str | None = None
    split: str | None = None
    fmt: str | None = None  # hh | jsonl | csv | parquet | hf ; None: from the name
    mapping: dict[str, str] = field(default_factory=dict)  # our name -> column name
    hf_split: str = "train"
    hf_data_dir: str | None = None
    limit: int | None = None
    shape: Any = None  # analysis.datasets.shapes.Shape: A/B + label, scores, lists, attributes (None: chosen/rejected)


class _RowError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


# ---------------------------------------------------------------------------------------------
# transcripts


def split_transcript(text: str) -> tuple[str, str]:
    """Split a transcript at its last ``"Assistant:"`` into (context, response).

    Raises ``_RowError('no_assistant')`` when there is no assistant turn.
    """
    idx = text.rfind(ASSISTANT)
    if idx < 0:
        raise _RowError("no_assistant", 'no "Assistant:" turn in the text')
    return text[:idx].rstrip(), text[idx + len(ASSISTANT) :].strip()


def join_transcript(context: str, response: str) -> str:
    """The inverse of :func:`split_transcript` in hh-rlhf's layout."""
    return f"{context}\n\n{ASSISTANT} {response}"


def transcript_to_messages(context: str, response: str | None = None) -> list[dict[str, str]]:
    """Turn an hh-rlhf style transcript into chat messages (for chat-template scoring)."""
    text = context if response is None else join_transcript(context, response)
    parts = _TURN_RE.split(text)
    messages: list[dict[str, str]] = []
    # parts: [preamble, role, content, role, content, ...]
    preamble = parts[0].strip()
    if preamble:
        messages.append({"role": "user", "content": preamble})
    role_map = {"Human": "user", "Assistant": "assistant", "System": "system"}
    for i in range(1, len(parts) - 1, 2):
        messages.append({"role": role_map[parts[i]], "content": parts[i + 1].strip()})
    return messages


def messages_to_transcript(messages: list[dict[str, Any]], where: str = "") -> str:
    names = {"user": HUMAN, "human": HUMAN, "assistant": ASSISTANT, "gpt": ASSISTANT, "system": "System:"}
    out = []
    for m in messages:
        if not isinstance(m, dict) or "content" not in m:
            raise _RowError("bad_value", f"{where}chat message without 'content': {str(m)[:80]}")
        role = str(m.get("role", m.get("from", ""))).lower()
        if role not in names:
            raise _RowError("bad_value", f"{where}unknown chat role {role!r}")
        content = m["content"]
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        out.append(f"\n\n{names[role]} {content.strip()}")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# naming


_SPLITS = ("train", "test", "validation", "valid", "dev", "eval")


def subset_split_from_name(path: str | Path) -> tuple[str, str]:
    """``harmless-base-test.jsonl.gz`` -> (``harmless-base``, ``test``); unknown split -> ``unknown``."""
    name = Path(str(path)).name
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".parquet", ".tsv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for sp in _SPLITS:
        for sep in ("-", "_", "."):
            if name.endswith(sep + sp):
                return name[: -len(sp) - 1] or name, sp
        if name == sp:
            parent = Path(str(path)).parent.name or "default"
            return parent, sp
    return name, "unknown"


_CHAT_ROLES = ("user", "human", "assistant", "gpt", "system")


def _is_chat(parsed: Any) -> bool:
    """A list of chat messages: every item a dict with text ``content`` and a known role."""
    return isinstance(parsed, list) and bool(parsed) and all(
        isinstance(m, dict) and isinstance(m.get("content"), str)
        and str(m.get("role", m.get("from", ""))).lower() in _CHAT_ROLES for m in parsed)


def _as_side(value: Any, where: str, name: str) -> str:
    """One side's text. A list (JSON/Parquet) is chat messages; a string stays the text it is, unless
    it is wholly a JSON list of chat messages (a CSV cannot hold lists); a number or a boolean becomes
    its text (``3``, ``true``); anything else is a bad row naming the file's own column."""
    if value is None or (isinstance(value, float) and value != value):
        raise _RowError("missing_field", f"{where}field {name!r} is missing or null")
    if isinstance(value, list):
        return messages_to_transcript(value, where)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            try:
                parsed = json.loads(stripped)
            except (ValueError, RecursionError):
                return value
            if _is_chat(parsed):
                return messages_to_transcript(parsed, where)
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        return _as_side(value.tolist(), where, name)
    raise _RowError("bad_value", f"{where}field {name!r} holds a {type(value).__name__}, expected text or chat messages")


def row_to_pair(row: dict[str, Any], *, source: str, line: int, subset: str, split: str, dataset: str,
                mapping: dict[str, str], names: dict[str, str] | None = None) -> Pair:
    """``names``: the file's own column of each side, for messages (the shapes pass a synthetic row)."""
    col = {k: mapping.get(k, k) for k in ("prompt", "chosen", "rejected", "subset", "split")}
    names = {**col, **(names or {})}
    for k in ("chosen", "rejected"):
        if col[k] not in row:
            raise _RowError("missing_field", f"field {names[k]!r} is missing")
    chosen = _as_side(row[col["chosen"]], "", names["chosen"])
    rejected = _as_side(row[col["rejected"]], "", names["rejected"])
    prompt_val = row.get(col["prompt"]) if col["prompt"] in row else None
    if col["subset"] in row and mapping.get("subset"):
        subset = str(row[col["subset"]])
    if col["split"] in row and mapping.get("split"):
        split = str(row[col["split"]])
    if prompt_val is not None and not (isinstance(prompt_val, float) and prompt_val != prompt_val):
        prompt = _as_side(prompt_val, "", names["prompt"])
        if not prompt.strip():
            raise _RowError("empty_text", f"field {names['prompt']!r} is empty")
        if ASSISTANT not in prompt and HUMAN not in prompt:
            context = f"\n\n{HUMAN} {prompt.strip()}"
        else:
            context = prompt.rstrip()
        # chosen/rejected may be bare responses or whole transcripts that repeat the prompt
        sides = []
        for name, val in (("chosen", chosen), ("rejected", rejected)):
            if val.lstrip().startswith(("Human:", "\n\nHuman:")) or (ASSISTANT in val and HUMAN in val):
                c, r = split_transcript(val)
            else:
                r = val.strip()
                if r.startswith(ASSISTANT):
                    r = r[len(ASSISTANT):].strip()
                c = context
            sides.append((c, r))
        (cc, cr), (rc, rr) = sides
    else:
        for name, val in (("chosen", chosen), ("rejected", rejected)):
            if not val.strip():
                raise _RowError("empty_text", f"the {name} text is empty")
        if col["prompt"] in row and ASSISTANT not in chosen and ASSISTANT not in rejected:
            # a null prompt beside bare responses (was reported as no_assistant)
            raise _RowError("missing_field", f"field {col['prompt']!r} is null and the responses are bare (no "
                                             "\"Assistant:\" turn), so the pair has no prompt: fill in the prompt "
                                             "or drop the row")
        cc, cr = split_transcript(chosen)
        rc, rr = split_transcript(rejected)
    return Pair(
        subset=subset, split=split, source=source, source_row=line, dataset=dataset,
        chosen_context=cc, chosen_response=cr, rejected_context=rc, rejected_response=rr,
        chosen_text=join_transcript(cc, cr), rejected_text=join_transcript(rc, rr),
    )
