"""Match quality: rank every offering for every lead through the service's scorer, and, given
graded judgements, report nDCG@5 and recall@10 of the hybrid, lexical-only and
semantic-only rankings.

    .venv/bin/python bench/match_quality.py --data tests/data/matching --out rankings.json

DIR/offerings.json and DIR/leads.json are lists in the data-set format (tests/data/matching/
README.md); DIR/qrels.json, when present, is {lead_id: {offering_id: grade 1-3}}. Writes
{lead_id: [offering ids, best first]} (the hybrid ranking) to --out. The semantic rankings
need the semantic extra (pip install '.[semantic]'); without it they are reported as null.
Ends with one JSON line: ndcg5_hybrid, ndcg5_lexical, ndcg5_semantic, recall10_hybrid (and
more).
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from services.matching import scoring  # noqa: E402
from services.matching.embeddings import load_embedder  # noqa: E402


def ndcg(ranked: list[str], grades: dict[str, int], k: int) -> float:
    gain = sum((2 ** grades.get(o, 0) - 1) / math.log2(i + 2) for i, o in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    best = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return gain / best if best else 0.0


def recall(ranked: list[str], grades: dict[str, int], k: int) -> float:
    relevant = {o for o, g in grades.items() if g >= 2}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def rankings(index: scoring.Index, leads: list[scoring.LeadText], *,
             by: str | None = None) -> dict[str, list[str]]:
    """Every offering for every lead, best first: by the total, or by one factor (`by`)."""
    ids = [card.id if card else "" for card in index.cards]
    ranked = {}
    for lead in leads:
        scored = index.score(lead)
        values = scored.total if by is None else np.where(
            scored.total >= 0, scored.values[by], -1.0)
        order = sorted(range(len(ids)), key=lambda i: (-float(values[i]), ids[i]))
        ranked[lead.id] = [ids[i] for i in order if index.cards[i] is not None]
    return ranked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    offerings = json.loads((args.data / "offerings.json").read_text())
    leads = [scoring.lead_from(lead) for lead in json.loads((args.data / "leads.json").read_text())]
    vocabulary = scoring.Vocabulary.load()
    routes = scoring.routes_from(scoring.reference_profiles())
    embedder = load_embedder()
    began = time.perf_counter()
    hybrid = scoring.Index(vocabulary, embedder=embedder, routes=routes)
    lexical = scoring.Index(vocabulary, routes=routes)
    for data in offerings:
        hybrid.put(scoring.card_from(data))
        lexical.put(scoring.card_from(data))
    runs = {"hybrid": rankings(hybrid, leads), "lexical": rankings(lexical, leads)}
    runs["semantic"] = rankings(hybrid, leads, by="text_semantic") if embedder else None
    elapsed = time.perf_counter() - began
    args.out.write_text(json.dumps(runs["hybrid"], indent=1))
    print(f"{len(leads)} leads x {len(offerings)} offerings ranked in {elapsed:.1f} s by "
          f"{hybrid.model}; hybrid ranking written to {args.out}")
    qrels_file = args.data / "qrels.json"
    if not qrels_file.exists():
        return
    qrels = json.loads(qrels_file.read_text())
    figures: dict[str, float | None] = {}
    for name, ranked in runs.items():
        for metric, k, measure in (("ndcg5", 5, ndcg), ("recall10", 10, recall)):
            figures[f"{metric}_{name}"] = None if ranked is None else round(sum(
                measure(ranked[lead.id], qrels.get(lead.id, {}), k) for lead in leads)
                / len(leads), 4)
    for name in runs:
        print(f"{name:9} nDCG@5 {figures[f'ndcg5_{name}']}  recall@10 "
              f"{figures[f'recall10_{name}']}")
    figures["model"] = hybrid.model
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
