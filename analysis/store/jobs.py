"""Jobs that were killed: ``ingests.status = 'running'`` and ``score_runs.finished_at IS NULL`` forever.

A job that starts an ingest or a scoring run registers itself in the ``study`` key/value table
(``job.ingest.<id>`` / ``job.score.<run_id>`` = ``{"pid", "host"}``) and removes the key when it
finishes. When the study is next opened for writing, :func:`mark_interrupted` marks every row left
running whose job is gone (no key: an older rmtui or a key lost with a kill; or a key whose process
is not alive on this host) as ``interrupted``: ``ingests.status = 'interrupted'``,
``score_runs.status = 'interrupted'``. A job that is still running (another process sharing the study)
keeps its row. :func:`interrupted` lists them for ``rmtui summary``.
"""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the study is passed in; core calls mark_interrupted when it opens a file
    from analysis.store.core import Study

_PREFIX = "job."


def _key(kind: str, job_id: Any) -> str:
    return f"{_PREFIX}{kind}.{job_id}"


def register(cur, kind: str, job_id: Any) -> None:
    """Inside the transaction that inserts the job's row: this process runs it."""
    cur.execute("INSERT OR REPLACE INTO study VALUES (?, ?)",
                [_key(kind, job_id), json.dumps({"pid": os.getpid(), "host": socket.gethostname()})])


def unregister(cur, kind: str, job_id: Any) -> None:
    cur.execute("DELETE FROM study WHERE key = ?", [_key(kind, job_id)])


def _alive(info: str | None) -> bool:
    if not info:
        return False
    try:
        d = json.loads(info)
        pid, host = int(d["pid"]), d.get("host")
    except (ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname():
        return True  # another machine (a shared file system): cannot tell, leave it alone
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _left_running(con) -> tuple[list[int], list[str]]:
    keys = dict(con.execute("SELECT key, value FROM study WHERE key LIKE 'job.%'").fetchall())
    ingests = [r[0] for r in con.execute("SELECT ingest_id FROM ingests WHERE status = 'running'").fetchall()
               if not _alive(keys.get(_key("ingest", r[0])))]
    runs = [r[0] for r in con.execute(
        "SELECT run_id FROM score_runs WHERE finished_at IS NULL AND coalesce(status, 'running') = 'running'"
    ).fetchall() if not _alive(keys.get(_key("score", r[0])))]
    return ingests, runs


def mark_interrupted(study: Study) -> tuple[int, int]:
    """Mark the rows of killed jobs interrupted (called when a study is opened for writing)."""
    ingests, runs = _left_running(study.con)
    if not ingests and not runs:
        return 0, 0
    with study.transaction() as cur:
        for i in ingests:
            cur.execute("UPDATE ingests SET status = 'interrupted' WHERE ingest_id = ? AND status = 'running'", [i])
            unregister(cur, "ingest", i)
        for r in runs:
            cur.execute("UPDATE score_runs SET status = 'interrupted' WHERE run_id = ? AND finished_at IS NULL", [r])
            unregister(cur, "score", r)
    return len(ingests), len(runs)


def interrupted(study: Study) -> list[str]:
    """One line per interrupted ingest or scoring run (marked, or left running by a job that is gone)."""
    ingests, runs = _left_running(study.con)
    out = []
    for r in study.con.execute(
            "SELECT ingest_id, source, started_at, n_read FROM ingests WHERE status = 'interrupted' "
            f"OR ingest_id IN ({','.join(map(str, ingests)) or 'NULL'}) ORDER BY ingest_id").fetchall():
        out.append(f"ingest {r[0]} of {r[1]} started {r[2]:%Y-%m-%d %H:%M:%S} was interrupted; what it committed "
                   "is in the study, rerun the same ingest to finish it")
    for r in study.con.execute(
            "SELECT r.run_id, coalesce(m.name, r.model_id), r.started_at FROM score_runs r "
            "LEFT JOIN models m USING (model_id) WHERE r.status = 'interrupted' OR (r.finished_at IS NULL AND "
            "list_contains(?, r.run_id)) ORDER BY r.started_at", [runs]).fetchall():
        out.append(f"scoring run {r[0]} of {r[1]} started {r[2]:%Y-%m-%d %H:%M:%S} was interrupted; its "
                   "committed chunks are kept, rerun rmtui score to finish it")
    return out


def failed_runs(study: Study) -> list[str]:
    """One line per scoring run that ended ``failed`` and whose model has had no ``done`` run since:
    the model's scores are incomplete (the summary, report and app say so instead of using them silently)."""
    cols = {r[0] for r in study.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'score_runs'").fetchall()}
    if "reason" not in cols:
        return []
    out = []
    runs = study.con.execute(
        "SELECT r.run_id, coalesce(m.name, r.model_id), r.started_at, r.n_scored, r.reason, r.model_id "
        "FROM score_runs r LEFT JOIN models m USING (model_id) WHERE r.status = 'failed' AND NOT EXISTS ("
        "SELECT 1 FROM score_runs d WHERE d.model_id = r.model_id AND d.status = 'done' "
        "AND d.started_at >= r.started_at) ORDER BY r.started_at").fetchall()
    if not runs:  # the common case: no distinct count over every text (a quarter second at a million pairs)
        return out
    n_texts = int(study.con.execute("SELECT count(DISTINCT text_id) FROM texts").fetchone()[0])
    for r in runs:
        n_missing = n_texts - int(study.con.execute(
            "SELECT count(*) FROM scores WHERE model_id = ?", [r[5]]).fetchone()[0])
        missing = f"{max(n_missing, 0):,} texts have no score from it" if n_missing else "every text is scored"
        out.append(f"scoring run {r[0]} of {r[1]} started {r[2]:%Y-%m-%d %H:%M:%S} failed after {int(r[3] or 0):,} "
                   f"texts ({r[4] or 'no reason recorded'}); {missing}: rerun rmtui score to finish it")
    return out


def live_score_run(cur, model_id: str) -> tuple[str, dict, object] | None:
    """A scoring run of ``model_id`` that another process is running now (its job key names a live
    process): (run_id, {"pid", "host"}, started_at), else None. Inside the caller's transaction."""
    keys = dict(cur.execute("SELECT key, value FROM study WHERE key LIKE 'job.score.%'").fetchall())
    for run_id, started in cur.execute(
            "SELECT run_id, started_at FROM score_runs WHERE model_id = ? AND finished_at IS NULL "
            "AND coalesce(status, 'running') = 'running' ORDER BY started_at", [model_id]).fetchall():
        info = keys.get(_key("score", run_id))
        if not info or not _alive(info):
            continue
        try:
            d = json.loads(info)
        except ValueError:
            continue
        if int(d.get("pid", -1)) == os.getpid() and d.get("host") == socket.gethostname():
            continue  # this process (a run left open by an error in this process is not another's)
        return str(run_id), d, started
    return None
