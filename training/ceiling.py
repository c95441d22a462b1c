"""How far a linear n-gram model gets on this corpus with no state limits (validation only).

    python -m training.ceiling [--data FILE]

Fits the same hashed word + char features and tf-idf as the shipped model, but on each
training author's whole text at once (sublinear tf-idf over the summed counts, l2), with
liblinear logistic regression at several C, and prints validation ROC-AUC and recall at
precision 0.95 as JSON. The service cannot score this way (it keeps no text), so this is an
upper reference for the shipped account score, not a model. Test authors are not touched.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.sparse as sp

from agegate import features as F
from training import evaluate as E
from training.data import iter_authors, label, split_authors


def pooled_counts(hasher: object, authors: list[dict]) -> tuple[sp.csr_matrix, np.ndarray]:
    """One row per author with posts: the hashed n-gram counts of all its posts summed."""
    rows, ys = [], []
    for a in authors:
        texts = [F.normalize_text(p.get("text") or "") for p in a["posts"]]
        if texts:
            rows.append(sp.csr_matrix(hasher.transform(texts).sum(axis=0)))  # type: ignore[attr-defined]
            ys.append(label(a))
    return sp.vstack(rows).tocsr(), np.asarray(ys)


def main() -> None:
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--C", default="10,100,300")
    args = ap.parse_args()
    parts = split_authors(list(iter_authors(args.data)))
    hasher = F.build_text_pipeline().named_steps["hash"]
    t0 = time.perf_counter()
    Htr, ytr = pooled_counts(hasher, parts["train"])
    Hva, yva = pooled_counts(hasher, parts["validation"])
    tfidf = TfidfTransformer(sublinear_tf=True).fit(Htr)
    Xtr, Xva = tfidf.transform(Htr), tfidf.transform(Hva)
    results = []
    for c in (float(x) for x in args.C.split(",")):
        clf = LogisticRegression(C=c, solver="liblinear").fit(Xtr, ytr)
        p = clf.decision_function(Xva)
        rec, _ = E.recall_at_precision(yva, p, E.PRECISION_TARGET)
        results.append(
            {"C": c, "roc_auc": round(float(roc_auc_score(yva, p)), 4),
             "recall_at_precision_0_95": round(rec, 4)}
        )
    print(json.dumps({"view": "validation authors, all sampled posts pooled",
                      "n": int(yva.size), "results": results,
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=2))


if __name__ == "__main__":
    main()
