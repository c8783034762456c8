"""Datasets: the built-in splits and users' CSV/TSV/JSONL files, with clear errors."""

from __future__ import annotations

import hashlib
import json

import pytest

from edgebert.data import load_builtin, load_dataset
from edgebert.data.datasets import load_texts
from edgebert.errors import UsageError

LABELS = {"negative": 0, "positive": 1}


def test_builtin_splits_are_fixed_and_disjoint():
    names = ("train", "validation", "calibration", "test")
    splits = {s: load_builtin(s) for s in names}
    assert [len(splits[s]) for s in names] == [7070, 500, 500, 2000]
    for i, a in enumerate(names):  # pairwise disjoint, and no split repeats a text
        assert len(set(splits[a].texts)) == len(splits[a])
        for b in names[i + 1:]:
            assert not set(splits[a].texts) & set(splits[b].texts), (a, b)
    assert 0.4 < sum(splits["test"].labels) / 2000 < 0.6 and 0.4 < sum(splits["validation"].labels) / 500 < 0.6
    assert load_builtin("test").texts[:3] == splits["test"].texts[:3]  # deterministic
    # validation is carved from the stored train rows by a stable hash: the same 500 texts, in the same
    # (shuffled) order, on every machine; a changed selection changes this digest
    digest = hashlib.sha256("\n".join(splits["validation"].texts).encode("utf-8")).hexdigest()
    assert digest == "0d509cf27b0856594414274aa3fcabaf7e5079a71806634ca828efd0ef958392"
    assert splits["validation"].name == "builtin:rt-snippets/validation"
    with pytest.raises(ValueError, match="unknown split"):
        load_builtin("dev")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_user_dataset_formats_and_label_names(tmp_path, suffix):
    rows = [("a fine film", "positive"), ("awful", "0"), ("great fun", "1")]
    path = tmp_path / f"d{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps({"sentence": t, "y": y}) + "\n" for t, y in rows))
    else:
        sep = "," if suffix == ".csv" else "\t"
        path.write_text(f"sentence{sep}y\n" + "".join(f"{t}{sep}{y}\n" for t, y in rows))
    data = load_dataset(path, LABELS, text_column="sentence", label_column="y")
    assert data.texts == ("a fine film", "awful", "great fun") and data.labels == (1, 0, 1)
    assert data.subset(2).labels == (1, 0)


def test_dataset_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UsageError, match="empty"):
        load_dataset(empty, LABELS)
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("text\nhello\n")
    with pytest.raises(UsageError, match="no column 'label'.*--label-column"):
        load_dataset(unlabelled, LABELS)
    unknown = tmp_path / "k.jsonl"
    unknown.write_text(json.dumps({"text": "hi", "label": "neutral"}) + "\n")
    with pytest.raises(UsageError, match="label 'neutral' is not one the model knows"):
        load_dataset(unknown, LABELS)
    out_of_range = tmp_path / "r.csv"
    out_of_range.write_text("text,label\nhi,7\n")
    with pytest.raises(UsageError, match="label '7'"):
        load_dataset(out_of_range, LABELS)
    with pytest.raises(UsageError, match="unsupported dataset format"):
        (tmp_path / "x.parquet").write_text("x")
        load_dataset(tmp_path / "x.parquet", LABELS)
    with pytest.raises(UsageError, match="no such dataset file"):
        load_dataset(tmp_path / "nope.csv", LABELS)
    assert load_texts(unlabelled) == ["hello"]  # calibration needs no labels
