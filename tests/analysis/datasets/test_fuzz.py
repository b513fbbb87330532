"""Property-based tests of every file reader and of the sanitizer (issue 19, item 13).

The properties are in tests/helpers/fuzz.py. CI runs a few hundred examples in all (profile
``rmtui-ci``; RMTUI_FUZZ_EXAMPLES=N scales every test); benchmarks/fuzz_readers.py runs tens of
thousands. (The hf: reader needs a datasets folder per example and is left to tests/analysis/datasets/test_readers.py.)
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import fuzz

N = int(os.environ.get("RMTUI_FUZZ_EXAMPLES", "60"))
settings.register_profile("rmtui-ci", max_examples=N, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                 HealthCheck.data_too_large])
settings.load_profile("rmtui-ci")


@given(st.lists(fuzz.jsonl_line, min_size=1, max_size=12), st.booleans())
def test_jsonl_good_records_once_bad_records_named(lines, gz):
    fuzz.check_jsonl(lines, gz=gz)


@given(st.binary(max_size=600), st.sampled_from([".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz",
                                                 ".tsv", ".parquet"]))
def test_random_bytes_under_every_reader(data, suffix):
    fuzz.check_random_file(data, suffix)


@given(st.lists(fuzz.good_record(), min_size=1, max_size=30), st.floats(0.0, 1.0))
def test_truncated_gz_keeps_what_came_before(records, cut):
    fuzz.check_truncated_gz(records, cut)


@settings(max_examples=max(10, N // 2))
@given(st.lists(fuzz.identifier, min_size=2, max_size=5, unique_by=str.lower),
       st.lists(fuzz.good_record(), max_size=6), st.sampled_from(["csv", "jsonl", "parquet"]))
def test_random_column_maps(names, records, fmt):
    fuzz.check_csv_map(names, records, fmt)


@settings(max_examples=max(5, N // 6))
@given(st.lists(fuzz.jsonl_line, min_size=1, max_size=10))
def test_ingest_stores_each_good_pair_once(lines):
    fuzz.check_ingest_once(lines)


@settings(max_examples=N * 3)
@given(fuzz.any_text)
def test_visible(s):
    fuzz.check_visible(s)


@given(fuzz.any_text)
def test_cli_console_never_passes_escapes(s):
    fuzz.check_console(s)
