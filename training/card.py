"""Render model/MODEL_CARD.md from the card dict written by training (no hand-typed numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agegate import features as F
from agegate import model as M
from agegate.model import NO_ADJUSTMENT, RULES
from training.evaluate import PREVALENCES
from training.train import LEXICON_COEF, YOUNG_ADULT_SHIFT

LICENCE_DATA = (
    "Trained on the Blog Authorship Corpus (Schler, Koppel, Argamon, Pennebaker, 2006), whose "
    'authors state it "may be freely used for non-commercial research purposes", and on Reddit '
    "comments from five communities (collected for the Text-Based-Age project by V. Venkatesh, "
    "University of Pittsburgh; the comments are Reddit users' text under Reddit's terms, "
    "research use only). This model inherits those restrictions: research, non-commercial use."
)
LICENCE_LEXICON = (
    "It also uses the age lexicon of M. Sap, G. Park, J. Eichstaedt, M. Kern, D. Stillwell, "
    "M. Kosinski, L. Ungar and H. A. Schwartz, \"Developing Age and Gender Predictive Lexica "
    "over Social Media\", EMNLP 2014 (World Well-Being Project, wwbp.org), licensed under "
    "Creative Commons Attribution-NonCommercial-ShareAlike 3.0. A model that uses it inherits "
    "its terms: credit (this paragraph), non-commercial use only, and derivatives shared "
    "under the same licence. `agegate train --no-lexicon` builds a model that never reads "
    "the lexicon file, for operators who need other terms (the data terms above still apply "
    "unless they retrain on their own labelled data with `--data`/`--reddit`)."
)
LICENCE_CHAT = (
    "Evaluation only (no model parameter was fitted on them): the NPS Chat Corpus, Release 1.0 "
    "(Forsyth, Lin and Martell, Naval Postgraduate School, 2008, as distributed with NLTK's "
    'data), "distributed solely for non-commercial, non-profit educational and research use"; '
    "and the NUS SMS Corpus (T. Chen and M.-Y. Kan, \"Creating a Live, Public Short Message "
    "Service Corpus: The NUS SMS Corpus\", Language Resources and Evaluation 47(2), 2013), "
    "cited here for every figure reported on it."
)
LICENCE_NO_LEXICON = (
    "This model was built with `--no-lexicon`: it does not contain or use the Sap et al. "
    "(2014) age lexicon, so the lexicon's CC BY-NC-SA 3.0 terms do not apply to it."
)


def _fmt(v: Any) -> str:
    return "—" if v is None else str(v)


def _metrics_rows(name: str, m: dict[str, Any]) -> str:
    return (f"| {name} | {m.get('n')} | {m.get('positives')} | {_fmt(m.get('roc_auc'))} | "
            f"{_fmt(m.get('pr_auc'))} | {_fmt(m.get('recall_at_precision_0_95'))} | "
            f"{_fmt(m.get('brier'))} |")


METRICS_HEAD = [
    "| view | n | under 18 | ROC-AUC | PR-AUC | recall @ precision 0.95 | Brier |",
    "|---|---|---|---|---|---|---|",
]


def _prevalence_table(views: dict[str, dict[str, Any]], threshold: float) -> list[str]:
    lines = [
        f"Score shifted to the prevalence, flagged at the default threshold {threshold}. Recall "
        "and the adults' flag rate are measured on each class of the test set, then mixed at "
        "the prevalence (no resampling).",
        "",
        "| view | prevalence | precision | recall | adults flagged | accounts flagged |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in views.items():
        for pi in PREVALENCES:
            row = m.get("prevalence", {}).get(str(pi))
            if row:
                lines.append(f"| {name} | {pi:.0%} | {_fmt(row['precision'])} | "
                             f"{row['recall']} | {row['adult_flag_rate']} | {row['flag_rate']} |")
    return lines


def _calibration(views: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, m in views.items():
        lines += [f"**{name}** (score shifted to this view's share of minors, "
                  f"{m['positives'] / max(m['n'], 1):.0%})", "",
                  "| score bin | n | mean predicted | observed under-18 rate |",
                  "|---|---|---|---|"]
        for row in m.get("calibration", []):
            lines.append(
                f"| {row['bin']} | {row['n']} | {row['mean_predicted']} | {row['observed_rate']} |"
            )
        lines.append("")
    return lines


def _contrib_table(contrib: dict[str, dict[str, float]]) -> list[str]:
    views = list(contrib)
    lines = ["| feature | " + " | ".join(views) + " |", "|---|" + "---|" * len(views)]
    for f in F.ACCOUNT_FEATURES:
        lines.append(f"| `{f}` | " + " | ".join(_fmt(contrib[v].get(f)) for v in views) + " |")
    return lines


WEAK_COEF = 0.05


def _weak(coef: dict[str, float]) -> str:
    weak = [f"`{f}`" for f, c in coef.items() if abs(c) < WEAK_COEF]
    if not weak:
        return ""
    return (f"Learned near-zero weights (|coefficient| < {WEAK_COEF}), so these features barely "
            f"move the score: {', '.join(weak)}. On the texts the account model learned from, "
            "they added little beyond the n-gram models.")


def render(card: dict[str, Any]) -> str:
    ev = card.get("evaluation", {})
    blog = ev.get("blog", {})
    reddit = ev.get("reddit", {})
    threshold = M.DEFAULT_REVIEW_THRESHOLD
    rules = [f"| `{r.name}` | {r.per_event:+.1f} | {r.cap:+.1f} | {r.reason} |" for r in RULES]
    no_adj = [f"| `{k}` | 0 | {v} |" for k, v in NO_ADJUSTMENT.items()]
    sizes = card["split_sizes"]
    lex = card.get("lexicon")
    blog_names = {"single_post": "blog single post", "snippet_3": "blog 3 posts",
                  "account": "blog account (all sampled posts, up to 12)",
                  "lines_40": "blog account cut into 40 chat lines"}
    lines = [
        "# Model card: agegate age classifier",
        "",
        "<!-- Generated by training/card.py from card.json. Do not edit by hand: retrain. -->",
        "",
        f"- Version: `{card['version']}`",
        f"- Artifact: `{card['artifact']}` ({card['size_bytes'] / 1e6:.1f} MB), "
        f"sha256 `{card['sha256']}`",
        f"- scikit-learn: `{card['sklearn_version']}` (the loader refuses any other version)",
        f"- Training time: {card.get('train_seconds')} s to fit the shipped model and the "
        "two cross-community models it is evaluated with (`agegate train`, end to end); "
        f"{card.get('total_seconds')} s with the evaluation below (on a 2-core machine).",
        f"- Age lexicon: {'used (' + str(lex['terms']) + ' terms)' if lex else 'not used'}",
        "",
        "## Licence and credits",
        "",
        LICENCE_DATA,
        "",
        LICENCE_LEXICON if lex else LICENCE_NO_LEXICON,
        "",
        LICENCE_CHAT,
        "",
        "## What the score means",
        "",
        "`score` is the probability that the account holder is under 18 **on the operator's "
        "platform**: the learned log-odds are calibrated to the share of minors in the account "
        f"model's training views ({card['prevalence_train']:.1%}) and shifted exactly by "
        "`logit(AGEGATE_MINOR_PREVALENCE) - logit(training share)` (Bayes' rule for a change "
        "of prior; default prevalence 2%). Platform rules (below) add their log-odds after "
        "the shift. An account without text scores the prevalence (plus rules).",
        "",
        f"- `flagged` (a review case): score >= `AGEGATE_REVIEW_THRESHOLD` (default "
        f"{threshold}: at least an even chance on the platform).",
        f"- Bands: `high` = flagged; `medium` = score >= {M.MEDIUM_FRACTION} x the review "
        f"threshold ({M.MEDIUM_FRACTION * threshold} by default); `low` below that.",
        "- The shift is exact only if the platform's prevalence is right and the model's "
        "training calibration carries over; the calibration tables below show how it holds "
        "on held-out blog authors.",
        "",
        "## How a score is made",
        "",
        "**Learned** (label: blog author `age < 18`; Reddit: teen community vs young-adult "
        "community):",
        "",
        "1. Message model: hashed word 1-2-grams (one-letter words and runs of punctuation "
        "such as `!!!` or `:)` count as tokens) and case-sensitive char_wb 3-4-grams (2^20 "
        "columns each), sublinear tf-idf, l2 per message, logistic regression by SGD. Trained "
        "on blog posts, on blog posts cut into chat-line pieces (sentences, "
        f"{CHUNKS}) and on Reddit comments: rows {card.get('text_rows')}. Text is normalised "
        f"first (links become `urlLink`, cut at {F.MAX_TEXT_CHARS} characters).",
        "2. Account text model: logistic regression by SGD on an account's text pooled (sum "
        "of its messages' tf-idf vectors before the l2 step, L1-normalised), trained on whole "
        "training blog authors and on stand-in accounts of 20 comments of one Reddit "
        f"community ({card.get('account_text_accounts')} pooled accounts). Its decision is a "
        "ratio of two sums over messages, so the state keeps those two numbers. The account "
        f"model sees it shrunk by mass / (mass + {F.ACCOUNT_TEXT_HALF_MASS:,.0f}).",
        "3. Age lexicon (Sap et al. 2014): the account's predicted age deviation "
        "`sum(weight * count) / (words + "
        f"{F.LEXICON_PRIOR_WORDS:.0f})` over lower-cased tokens (shrunk towards the "
        "lexicon's intercept for few words); the state keeps the two sums, never words.",
        "4. Account model: logistic regression on "
        + ", ".join(f"`{f}`" for f in F.ACCOUNT_FEATURES)
        + ". **The message model's mean decision is weighed by the account's words per "
        f"message**, wpm / (wpm + {F.MEAN_HALF_WORDS_PER_MESSAGE:g}) (a chat line of 4 words "
        "counts 0.44, a text message of 10 words 0.67, a Reddit comment 0.8-0.9, a blog post "
        "0.98): learned on blog posts and Reddit comments, it ranks chat-room posters below a "
        "coin, while the lexicon still ranks them (see *How it was chosen*); the training "
        "views hold no accounts of chat lines, so this factor is fixed, not fitted. Fitted on "
        "texts the text models never saw: blog authors of buckets 70-77 "
        "(views of 1, 2-3, 4-8 and all posts, and of 1, 5, 15 and 40 chat lines) and Reddit "
        "threads held apart from text training (stand-in accounts of 1, 3, 10 and 30 "
        "comments). Each kind of view weighs the same in total, split evenly between minors "
        "and adults, so no kind brings its own share of minors in as a prior (the training "
        f"prevalence is then 0.5): views {card.get('account_train_views')}. "
        f"**The lexicon's weight is fixed** at {LEXICON_COEF} (standardised), not fitted: "
        "fitted on blogs and Reddit it got 0.03, because topic n-grams win there, and the "
        "score on chat was close to a coin; the other weights are fitted around it. "
        f"**The intercept is then moved by {YOUNG_ADULT_SHIFT}** log-odds so that the "
        "defaults spare young adults (see *How it was chosen*); `agegate recalibrate` moves "
        "it with the platform's verdicts. "
        f"Coefficients (standardised features): {card.get('account_coef')}.",
        "5. Activity: the state still counts the account's active days (weekend, June-August, "
        "20 Dec-3 Jan), but they are **no longer scored**: the shares only won on blogs, whose "
        "posting days say nothing about a chat platform's members. Posting rate is not a "
        "feature either, and message length enters only as the weight of the message model's "
        "mean (step 4). The amount of text enters as log(1 + words), not as a message count.",
        "",
        *choice_section(card),
        "",
        "**Assumed** (no labelled data; stated log-odds added after the prevalence shift; "
        "defined in `agegate/model.py` `RULES`):",
        "",
        "| rule | per event | cap | reason |",
        "|---|---|---|---|",
        *rules,
        "",
        "Signals with no adjustment:",
        "",
        "| signal | log-odds | reason |",
        "|---|---|---|",
        *no_adj,
        "",
        "## Explanations (`top_signals`)",
        "",
        f"- `text:<n-gram>`: one of {card.get('vocab_size')} named word n-grams (used in at "
        "least 15 training documents, on a strongly minor-indicative column, and readable: a "
        "single token such as `u` or `!!!`, or two words; never a piece of a contraction or a "
        "word paired with punctuation). It is named only "
        "if a message of the account contained exactly that n-gram (checked at scoring time "
        "against the message's own tokens); the state keeps at most "
        f"{M.TOP_K} (vocabulary id, contribution) pairs, never text. Char n-grams and the "
        "pooled account text count in the score but are not named.",
        f"- `{M.LEXICON_REASON}`: the lexicon feature's contribution.",
        "- platform rules by rule name.",
        "",
        "## State",
        "",
        "Per account: message count, the sum of message decisions, the account text model's "
        "two sums, the lexicon's two sums, the top-k vocabulary ids, four activity counters "
        "and the last active day, and the platform counters — a bounded JSON object of a few "
        "hundred bytes, no text. A state written by another model version keeps its platform "
        "counters but its text part is reset (its sums are on another model's scale and its "
        "vocabulary ids index another vocabulary): **after a retrain that changes the text "
        "models, accounts' text evidence "
        "starts again from the next message**; re-score accounts that matter by replaying "
        "their recent messages if the platform keeps them.",
        "",
        "What a state was scored by is its text model (`text_version` in card.json; a full "
        "retrain makes a new one unless its text models come out identical to those of the "
        "model it replaces, whose text version it then keeps; this version's is "
        f"`{card.get('text_version') or card['version']}`): the service resets "
        "(and counts, `agegate_account_state_resets_total`) every state of another text model "
        "before it scores it, never scoring old sums on a new scale. `agegate recalibrate` "
        "refits only the account model over the same text model, so a recalibrated version "
        "keeps every stored state valid.",
        "",
        "## Data and split",
        "",
        f"- Blog file `{card['data']['file']}`, split by author with "
        f"`{card['data']['split_key']}` buckets {card['data']['split_buckets']}.",
        "- Blog authors per split: "
        + ", ".join(f"{k} {v['authors']} ({v['under_18']} under 18)" for k, v in sizes.items())
        + f"; account-model (stack) authors: {card.get('stack_authors')}.",
        f"- Reddit file `{card['data']['reddit']}`: community groups "
        f"{card['data']['reddit_groups']}; threads in buckets of "
        f"{card['data']['reddit_stack']} feed the account model, the rest the text models.",
        "- Choices were made on validation blog authors and on the development direction "
        "A->B (train on group A, test on group B); blog test authors and the B->A direction are "
        "scored only to write this card.",
        "",
        "## What was measured on what",
        "",
        f"Blog figures: **held-out blog test authors** ({ev.get('split')} split), scored with "
        "the shipped model through its own state path (`AgeModel.update`/`score`'s fold). "
        "Reddit figures: **two models fitted by the same code with Reddit from one group of "
        "communities only** (the shipped model has seen all five communities), each scored on "
        "every comment of the other group. Reddit accounts are stand-ins: 10 comments of one "
        "community by (almost certainly) different people; topics differ by community, which "
        "makes them easier than real accounts. NPS Chat dev and NUS SMS figures: the shipped "
        "model, through the service's state path at the defaults. No figure here is measured "
        "on the project's kept-back chat set.",
        "",
        *domain_section(ev, card.get("no_lexicon")),
        "### Blog test authors",
        "",
        *METRICS_HEAD,
        *[_metrics_rows(blog_names.get(k, k), m) for k, m in blog.items()],
        "",
        "Teens (13-17) vs people aged 23-29 only:",
        "",
        *METRICS_HEAD,
        *[_metrics_rows(blog_names.get(k, k), m.get("teens_vs_23_29", {}))
          for k, m in blog.items()],
        "",
        "By gender:",
        "",
        *METRICS_HEAD,
        *[_metrics_rows(f"{blog_names.get(k, k)}, {g}", gm)
          for k, m in blog.items() for g, gm in m.get("by_gender", {}).items()],
        "",
        "Single posts by length:",
        "",
        *METRICS_HEAD,
        *[_metrics_rows(band, bm)
          for band, bm in blog.get("single_post", {}).get("by_length", {}).items()],
        "",
        "### Reddit across communities (teen communities vs young-adult communities)",
        "",
        *METRICS_HEAD,
        *[_metrics_rows(f"{d} ({'+'.join(r['train_communities'])} -> "
                        f"{'+'.join(r['test_communities'])}), {v}", r[v])
          for d, r in reddit.items() for v in ("single", "account_10")],
        "",
        "### Precision, recall and flag rate at platform prevalences",
        "",
        *_prevalence_table(
            {**{blog_names[k]: blog[k] for k in ("account", "lines_40") if k in blog},
             **{f"Reddit {d} 10-comment accounts": r["account_10"] for d, r in reddit.items()}},
            threshold),
        "",
        "### Calibration",
        "",
        *_calibration({blog_names[k]: blog[k] for k in ("single_post", "account", "lines_40")
                       if k in blog}),
        "### Each account feature's contribution, blog views vs chat views",
        "",
        "Mean |coefficient x standardised feature| (log-odds) per view. Blog views use the "
        "shipped model on test authors; Reddit columns use the cross-community models on the "
        "other group.",
        "",
        *_contrib_table(ev.get("mean_abs_contribution", {})),
        "",
        "## Limitations",
        "",
        "- Blogs are from 2004 and earlier; Reddit labels are the community, not the writer "
        "(teen communities include 18-19 year olds, and some adults). Neither is the "
        "platform's chat: check the review queue's precision on reviewed cases and set "
        "`AGEGATE_MINOR_PREVALENCE` from the platform's own figures.",
        "- The blog corpus has no 18-22 year olds; only Reddit covers them, by community.",
        "- The chat-medium sets are small (NPS Chat dev: 98 records of 5+ lines, 13 from the "
        "teens' room, labelled by room, not by person; NUS SMS: 185 senders, age ranges): "
        "read their intervals, not their points.",
        "- The state keeps no text, so the same message sent again counts as new evidence.",
        "- Few words are weak evidence whatever the score; the prevalence shift keeps a "
        "single message from flagging an account except in extreme cases.",
        "- A score is a prompt for human review, not proof of age.",
        "",
    ]
    return "\n".join(lines)


def choice_section(card: dict[str, Any]) -> list[str]:
    """How the account model was chosen: the candidates' figures as training measured them
    (training/selection.py) on the card's own sets, and the history behind them."""
    rows = card.get("selection") or []
    cols = [("blog", "blog ROC"), ("blog_recall_2pct", "blog recall @2%"),
            ("blog_precision_2pct", "blog precision @2%"), ("reddit_A->B", "Reddit A->B"),
            ("reddit_B->A", "Reddit B->A"), ("nps_all_rooms", "NPS all rooms"),
            ("nps_teens_vs_20s", "NPS teens vs 20s"), ("nus_16_20_vs_26_plus", "NUS 16-20 vs 26+"),
            ("nus_21_plus_flagged", "NUS 21+ flagged")]
    lines = [
        "### How it was chosen (issue 19: by the worst domain)",
        "",
        "Candidates differ only in the account model (the text models are the same). Each is "
        "fitted on the same training states as the shipped account model (and as each "
        "cross-community model, for the Reddit columns) and scored by `agegate train`'s "
        "evaluation on the same states as the figures below: blog test authors' whole "
        "accounts, Reddit 10-comment accounts of the other group, NPS Chat dev (5+ lines) and "
        "NUS SMS through the service's state path. ROC-AUC, and precision, recall and flag "
        "share at the defaults (2%, 0.5):",
        "",
    ]
    if rows:
        lines += ["| account model | " + " | ".join(c for _, c in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for r in rows:
            name = f"**{r['name']}**" if "(shipped)" in r["name"] else r["name"]
            lines.append(f"| {name} | " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + " |")
    else:
        lines.append("(Not measured in this run: the candidates are compared by `agegate "
                     "train`.)")
    lines += [
        "",
        "The chat rows fall to the message model's mean: learned on blog posts and Reddit "
        "comments, its mean over chat lines of a few words ranks NPS posters below a coin "
        "(validation-time measurement: 0.47 all rooms, 0.40 teens vs 20s; the lexicon alone "
        "0.80 / 0.68), while on Reddit it ranks best (0.98-1.00). Weighing it by the words per "
        "message keeps it where messages are long and quiets it on chat lines. Weighing at 4, "
        "6 or 8 words instead of 5 gave the same figures on validation (within 0.005); also "
        "weighing the pooled account-text decision, adding words per message as a feature, a "
        "lexicon weight of -1.25 or -1.5 with it, or fitting the account model on blogs or on "
        "Reddit alone were no better on the worst chat row and closer to the Reddit floor; "
        "with the weighed mean, the lexicon's shrinkage prior at 0, 5, 10, 50 or 100 words "
        f"(shipped: {F.LEXICON_PRIOR_WORDS:g}) and its weight from -1.0 to -2.0 put the worst "
        "chat row at 0.654-0.692 in the offline comparison, within the noise of 13 teens' "
        "records, and none raised it by 0.03. "
        "Before this, the lexicon's weight was chosen among fitted (0.03: chat at 0.51 / 0.42), "
        "-0.5, -1.0, -1.5 and -2.0: -1.0 is the largest that keeps the Reddit floor (0.95) in "
        "both directions. Learning chat from the chat sets themselves was no way out either "
        "(`python -m training.chat_reference`, a reference, not shipped): a character n-gram "
        "model fitted on NUS senders ranks NUS 16-20 against 26+ at 0.68-0.74 out of fold "
        "(5 folds by sender, C 0.1-10), below this model's 0.86, and, fitted on all of them, "
        "NPS dev posters at 0.61-0.68 (teens vs 20s 0.57-0.61): a few hundred people teach "
        "those people, not chat.",
        "",
        "**Where the threshold lands: sparing young adults over blog recall.** The intercept "
        f"is moved by {YOUNG_ADULT_SHIFT} log-odds: on validation, moves of 0 / -0.25 / -0.4 / "
        "-0.5 / -1.0 flag 4.3% / 3.6% / 2.9% / 2.9% / 2.9% of NUS senders aged 21+ and give "
        "blog recall at 2% of 0.560 / 0.543 / 0.532 / 0.522 / 0.485. The shipped move keeps "
        "NUS 21+ at 3% or less with 0.1 log-odds to spare and gives up less blog recall than "
        "the previous model's -1.0; the blog recall target (0.6) is still given up for it. "
        "This one number was chosen on NUS, so the NUS 21+ figure below is not independent of "
        "it; the project's kept-back check is.",
    ]
    return lines


def _status(t: dict[str, Any]) -> str:
    if t.get("met") is None:
        return "not measured"
    return "met" if t["met"] else "**NOT met**"


def _interval(t: dict[str, Any]) -> str:
    lo, hi = t.get("interval") or (None, None)
    return "—" if lo is None else f"{lo} – {hi}"


def domain_section(ev: dict[str, Any], no_lexicon: dict[str, Any] | None) -> list[str]:
    """Every domain's row with its bootstrap interval, where the default threshold lands on the
    chat sets, and the same rows for the model built without the lexicon."""
    rows = ev.get("domains", {})
    lines = [
        "### Every domain, with bootstrap 90% intervals (the issue's targets)",
        "",
        "Chat-medium sets are scored **as the service scores them**: each line is one "
        "`message` signal folded into the account's text-free state (`AgeModel.update`, one "
        "signal per call), and the score and flag come from `AgeModel.score` on that state at "
        "the defaults (`AGEGATE_MINOR_PREVALENCE` 0.02, `AGEGATE_REVIEW_THRESHOLD` 0.5). "
        "Intervals resample people (blog authors, NPS posters, NUS senders; Reddit stand-in "
        "accounts have no authors, so accounts) 1,000 times. Met / NOT met is decided on the "
        "point estimate. No weight was fitted on the NPS and NUS sets; they were used to measure "
        "and to choose between a few candidates (the lexicon's weight among five values, "
        "whether and how to weigh the message model's mean by the words per message, and the "
        "intercept shift among five, the latter by the NUS 21+ row itself: see *How it was "
        "chosen*), so their figures are not fully independent of the choice.",
        "",
        "| measure | target | this model | 90% interval | | without the lexicon | 90% interval |",
        "|---|---|---|---|---|---|---|",
    ]
    nolex = {t["key"]: t for t in (no_lexicon or {}).get("targets", [])}
    for t in ev.get("targets", []):
        n = nolex.get(t["key"], {})
        name, target = t["target"].rsplit(" ", 2)[0], " ".join(t["target"].rsplit(" ", 2)[1:])
        value = _fmt(t["value"]) if t.get("met") is not None else (t.get("note") or "—")
        lines.append(f"| {name} | {target} | {value} | {_interval(t)} | {_status(t)} | "
                     f"{_fmt(n.get('value'))} | {_interval(n) if n else '—'} |")
    lines += ["", "Where the default threshold lands on the chat sets (accounts flagged at the "
              "defaults, this model):", ""]
    by_room = rows.get("nps_flagged_by_room") or {}
    if by_room:
        lines += ["| NPS Chat dev room (5+ lines) | records | flagged |", "|---|---|---|",
                  *[f"| {k} | {v['records']} | {v['flagged']} |" for k, v in by_room.items()],
                  ""]
    by_age = rows.get("nus_flagged_by_age") or {}
    if by_age:
        lines += ["| NUS SMS age range | senders | flagged |", "|---|---|---|",
                  *[f"| {k} | {v['senders']} | {v['flagged']} |" for k, v in by_age.items()],
                  ""]
    for key, what in (("nus_21_plus_flagged", "NUS senders aged 21+ flagged (every one an "
                       "adult: a false flag)"),
                      ("nus_16_20_flagged", "NUS senders aged 16-20 flagged (the range "
                       "straddles 18)"),
                      ("nps_teens_room_flagged", "NPS posters of the teens' room flagged"),
                      ("nps_other_rooms_flagged", "NPS posters of the other rooms flagged")):
        r = rows.get(key)
        if r:
            lines.append(f"- {what}: {r['value']} ({r['flagged']} of {r['n']}; 90% interval "
                         f"{_interval(r)})")
    ya = ev.get("young_adults") or {}
    for name, r in ya.items():
        lines.append(f"- Reddit {name} young-adult communities' 10-comment stand-in accounts "
                     f"flagged at the defaults (cross-community model): {r['value']} "
                     f"({r['flagged']} of {r['n']}; 90% interval {_interval(r)})")
    lines.append("")
    return lines


CHUNKS = "very short ones joined, long ones cut near 200 characters; 2 random pieces per post"


def write_card(card: dict[str, Any], path: Path) -> None:
    path.write_text(render(card), encoding="utf-8")
