"""Could the chat sets teach a chat model? A reference, not a model (no state, no service path).

    python -m training.chat_reference [--nps FILE] [--nus FILE]

The account model cannot rank NPS Chat posters much better than the age lexicon alone, because
its text models learned blog posts and Reddit comments (see the model card). The obvious remedy
is to learn chat from chat. The only labelled chat this project has is the two development sets
(``../shared/data/chat/``), so this fits a character n-gram model (char_wb 2-4-grams, sublinear
tf-idf, logistic regression) on whole senders' text and reports, as JSON:

- NUS SMS, 16-20 against 26 and over, out of fold (5 folds by sender, stratified);
- the same model fitted on all NUS senders of those ranges, scored on NPS Chat dev posters of 5+
  lines (teens' room against all other rooms, and against the 20s room): a transfer from one chat
  medium to another, with no NPS poster in training.

It is a reference because the sets are what the project measures on: their README says not to
tune on them, and a model that learns a few hundred people learns them, not chat.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from training import domains as D

C_VALUES = (0.1, 1.0, 10.0)
FOLDS = 5
SEED = 0


def _model(c: float) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2),
        LogisticRegression(C=c, max_iter=2000))


def out_of_fold(texts: Sequence[str], y: np.ndarray, c: float, folds: int = FOLDS,
                seed: int = SEED) -> np.ndarray:
    """Each person's decision from a model fitted on the other folds only (one text a person)."""
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros(len(texts))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    for train, test in split:
        m = _model(c).fit([texts[i] for i in train], y[train])
        oof[test] = m.decision_function([texts[i] for i in test])
    return oof


def reference(nps: list[dict[str, Any]], nus: list[dict[str, Any]],
              c_values: Sequence[float] = C_VALUES) -> list[dict[str, Any]]:
    senders = [r for r in nus if D.nus_lower_age(r.get("age_range") or "") is not None]
    age = np.asarray([D.nus_lower_age(r["age_range"]) for r in senders])
    ranked = (age < 21) | (age >= 26)
    texts = ["\n".join(r["messages"]) for r, k in zip(senders, ranked, strict=True) if k]
    y = age[ranked] < 21
    posters = [r for r in nps if len(r["posts"]) >= D.NPS_MIN_LINES]
    yp = np.asarray([bool(r["label_minor"]) for r in posters])
    pair = np.isin([str(r["room"]) for r in posters], ["teens", "20s"])
    rows = []
    for c in c_values:
        s = _model(c).fit(texts, y).decision_function(["\n".join(r["posts"]) for r in posters])
        rows.append({
            "C": c,
            "nus_16_20_vs_26_plus_out_of_fold": D.roc_auc(y, out_of_fold(texts, y, c)),
            "nps_all_rooms_from_nus": D.roc_auc(yp, s),
            "nps_teens_vs_20s_from_nus": D.roc_auc(yp[pair], s[pair]),
        })
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
            for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nps", default=None)
    ap.add_argument("--nus", default=None)
    args = ap.parse_args()
    print(json.dumps({"model": "char_wb 2-4-grams, sublinear tf-idf, logistic regression",
                      "results": reference(D.load_nps(args.nps), D.load_nus(args.nus))},
                     indent=2))


if __name__ == "__main__":
    main()
