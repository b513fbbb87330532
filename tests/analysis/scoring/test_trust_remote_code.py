"""trust_remote_code is consent for one command, never stored as such (issue 19, item 3).

A real local model folder that ships its own code (``configuration_x.py``/``modeling_x.py`` named in
``auto_map``, built from the tiny BERT RM of tests/helpers/tiny_rm.py) appends a line to a marker file
whenever Python imports it: the marker is the proof that the folder's code ran, or did not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from analysis.errors import ModelError
from analysis.store import open_study
from analysis.datasets.synth import make_synthetic_study

from ...helpers.cli import run_cli
from ...helpers.tiny_rm import make_tiny_rm

ROOT = Path(__file__).resolve().parents[3]


def make_custom_code_rm(dest: Path, marker: Path) -> Path:
    """The tiny BERT RM re-labelled as model type ``x_rm`` whose classes live in the folder itself."""
    make_tiny_rm(dest, seed=3)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["model_type"] = "x_rm"
    cfg["architectures"] = ["XForSequenceClassification"]
    cfg["auto_map"] = {"AutoConfig": "configuration_x.XConfig",
                       "AutoModelForSequenceClassification": "modeling_x.XForSequenceClassification"}
    (dest / "config.json").write_text(json.dumps(cfg, indent=2))
    ran = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')  # proof that this folder's code ran\n"
    (dest / "configuration_x.py").write_text(ran + textwrap.dedent("""
        from transformers import BertConfig


        class XConfig(BertConfig):
            model_type = "x_rm"
    """))
    (dest / "modeling_x.py").write_text(ran + textwrap.dedent("""
        from transformers import BertForSequenceClassification

        from .configuration_x import XConfig


        class XForSequenceClassification(BertForSequenceClassification):
            config_class = XConfig
    """))
    return dest


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RMTUI_TRUST_REMOTE_CODE"}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_MODULES_CACHE=str(tmp_path / "hf-modules"), COLUMNS="200", **extra)
    return env


def rmtui(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmtui", *args], capture_output=True, text=True,
                          env=_env(tmp_path, **env), timeout=600, cwd=tmp_path)


@pytest.fixture(scope="module")
def trusted_study(tmp_path_factory, tiny_rm_dir_b):
    """A study whose pre model was scored with --trust-remote-code (and a plain post model)."""
    tmp = tmp_path_factory.mktemp("trust")
    marker = tmp / "code-ran.txt"
    folder = make_custom_code_rm(tmp / "x-rm", marker)
    study = tmp / "study.duckdb"
    make_synthetic_study(study, 12, seed=1, with_models=False)
    # without the flag the folder is refused and its code does not run (in this process: nothing of the
    # folder is imported here; the run with the flag is a subprocess, so its code never lands in this one)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RMTUI_TRUST_REMOTE_CODE", raising=False)
        r = run_cli("score", "-s", study, "-m", folder, "--role", "pre", "--device", "cpu")
        assert r.code == 1 and not marker.exists(), r.all
        no_flag_message = r.all.strip()
        r = rmtui(tmp, "score", "-s", str(study), "-m", str(folder), "--role", "pre", "--device", "cpu",
                  "--name", "x-rm", "--trust-remote-code")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "configuration_x" in marker.read_text() and "modeling_x" in marker.read_text()  # consented: it ran
        r = run_cli("score", "-s", study, "-m", tiny_rm_dir_b, "--role", "post", "--device", "cpu")
        assert r.code == 0, r.all
    marker.unlink()
    return tmp, study, marker, no_flag_message


def test_score_without_the_flag_names_the_flag_in_one_line(trusted_study):
    *_, message = trusted_study
    assert "--trust-remote-code" in message and "RMTUI_TRUST_REMOTE_CODE" in message
    assert len(message.splitlines()) == 1 and "Traceback" not in message


def test_the_study_records_that_the_model_needed_trust(trusted_study):
    _tmp, study, _marker, _ = trusted_study
    with open_study(study, read_only=True) as st:
        rows = st.df("SELECT name, trust_remote_code FROM models ORDER BY name")
    assert dict(zip(rows["name"], rows["trust_remote_code"].astype(bool))) == {"x-rm": True, "tiny-rm-1": False}


def test_rewrite_without_the_flag_refuses_and_runs_no_code(trusted_study):
    tmp, study, marker, _ = trusted_study
    r = rmtui(tmp, "rewrite", "-s", str(study), "--n", "2", "--no-fit")
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 1, out
    assert not marker.exists(), "the model folder's code ran without --trust-remote-code"
    assert "x-rm" in out and "--trust-remote-code" in out and "RMTUI_TRUST_REMOTE_CODE" in out
    assert "Traceback" not in out


def test_app_rescore_without_consent_refuses_and_with_it_loads(trusted_study):
    tmp, study, marker, _ = trusted_study
    from rmtui.services import StudyService

    svc = StudyService(study)
    try:
        with pytest.raises(ModelError) as e:  # the app's rescore loads the study's models this way
            svc.rewriter.models()
        assert "x-rm" in e.value.message and "--trust-remote-code" in e.value.message
        assert not marker.exists(), "the app ran the model folder's code without being given the flag"
    finally:
        svc.close()
    # consent given to this command (the environment variable; `rmtui explore --trust-remote-code` is
    # the same argument): the models load, the folder's code runs, the rewards land under the same id
    code = textwrap.dedent(f"""
        from analysis.scoring import load_study_models
        from analysis.store import open_study
        with open_study({str(study)!r}, read_only=True) as st:
            ms = load_study_models(st, device="cpu")
            print(sorted(m.name for m in ms))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=_env(tmp, RMTUI_TRUST_REMOTE_CODE="1"), timeout=600, cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert "x-rm" in r.stdout and "modeling_x" in marker.read_text()
