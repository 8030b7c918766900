"""Matching speed and memory: one new lead scored against 10,000 and 100,000 offerings, a full
re-match of 1,000 leads x 10,000 offerings, embedding throughput, peak RSS at 100,000.

    .venv/bin/python bench/matching.py            # full run
    .venv/bin/python bench/matching.py --quick    # 2,000 / 20,000 offerings, 200 leads

Offerings and leads are generated from the domain vocabulary (bench.payloads-style: varied
words, every offering distinct). The scorer is the service's (services/matching/scoring.py),
with the semantic model when the extra is installed; embeddings are computed once (as the
service caches them) before latencies are measured, and the lead's own embedding is part of
each measured score. The raw baseline, measured in the same run, is numpy's dot product of
one vector with the offerings' matrix (the floor of any dense scorer). Ends with one JSON
line: p99_ms_10k, p99_ms_100k, rematch_1k_x_10k_s, embed_texts_per_s, peak_rss_mb_100k.
"""

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path
from statistics import quantiles

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from services.matching import scoring  # noqa: E402
from services.matching.embeddings import load_embedder  # noqa: E402
from shared.programme import APPLICATION_AREAS, MARKETS  # noqa: E402

VOCABULARY = scoring.Vocabulary.load()
PHRASES = [p for c in VOCABULARY.concepts.values() for p in c.phrases]
FILLER = ("compact handheld system for clinics with validated software and service network "
          "high resolution real time low cost robust calibrated portable").split()


def text(rng: random.Random, words: int) -> str:
    parts = [" ".join(rng.choice(PHRASES)) for _ in range(3)]
    return " ".join(parts + rng.sample(FILLER, k=min(words, len(FILLER))))


def offering(rng: random.Random, i: int) -> scoring.OfferingCard:
    markets = list(MARKETS)
    return scoring.OfferingCard(
        id=f"off-{i}", version=1, name=f"Offering {i} " + " ".join(rng.choice(PHRASES)),
        description=text(rng, 12), technologies=tuple(" ".join(rng.choice(PHRASES))
                                                      for _ in range(3)),
        application_areas=tuple(rng.sample(APPLICATION_AREAS, 2)), trl=rng.randint(3, 9),
        clearances={"EU": ["CE MDR class IIa"]} if rng.random() < 0.5 else {},
        markets_of_interest=tuple(rng.sample(markets, 3)))


def lead(rng: random.Random, i: int) -> scoring.LeadText:
    return scoring.LeadText(id=f"lead-{i}", title=text(rng, 4), description=text(rng, 10),
                            target_market=rng.choice(list(MARKETS)),
                            min_trl=rng.choice([None, 6, 8]),
                            requires_clearance=rng.random() < 0.3)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(n: int, embedder) -> tuple[scoring.Index, float]:  # noqa: ANN001
    rng = random.Random(n)
    index = scoring.Index(VOCABULARY, embedder=embedder,
                          routes=scoring.routes_from(scoring.reference_profiles()))
    began = time.perf_counter()
    for i in range(n):
        index.put(offering(rng, i))
    index.score(lead(rng, -1))  # compiles the arrays and embeds every offering once
    return index, time.perf_counter() - began


def latencies(index: scoring.Index, count: int) -> tuple[float, float, float]:
    rng = random.Random(7)
    times, baseline = [], []
    matrix = np.random.default_rng(1).random((len(index), 384), dtype=np.float32)
    for i in range(count):
        one = lead(rng, i)
        began = time.perf_counter()
        scored = index.score(one)
        best = index.best(scored, 10)
        for offering_id, _ in best[:3]:
            index.explain(scored, offering_id)
        times.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        np.argpartition(-(matrix @ matrix[i % len(matrix)]), 10)[:10]
        baseline.append((time.perf_counter() - began) * 1000)
    cuts = quantiles(times, n=100)
    return cuts[49], cuts[98], quantiles(baseline, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    small, large, leads = (2_000, 20_000, 200) if args.quick else (10_000, 100_000, 1_000)
    embedder = load_embedder()
    print(f"scorer: {scoring.Index(VOCABULARY, embedder=embedder).model}")
    figures: dict[str, float | None] = {}
    if embedder:
        texts = [text(random.Random(i), 40) for i in range(512)]
        began = time.perf_counter()
        embedder.encode(texts)
        figures["embed_texts_per_s"] = round(len(texts) / (time.perf_counter() - began), 1)
        print(f"embedding: {figures['embed_texts_per_s']} texts/s")
    else:
        figures["embed_texts_per_s"] = None
    index, took = build(small, embedder)
    p50, p99, raw = latencies(index, 300)
    print(f"{small:>7} offerings: built in {took:.1f} s; one lead p50 {p50:.1f} ms, p99 "
          f"{p99:.1f} ms (raw dot-product top-10 p99 {raw:.2f} ms)")
    figures["p50_ms_10k"], figures["p99_ms_10k"] = round(p50, 1), round(p99, 1)
    rng = random.Random(3)
    batch = [lead(rng, i) for i in range(leads)]
    vectors = index.embed([one.text for one in batch])
    began = time.perf_counter()
    for i, one in enumerate(batch):
        scored = index.score(one, lead_vector=None if vectors is None else vectors[i])
        index.best(scored, 10, threshold=0.5)
    rematch = time.perf_counter() - began
    print(f"re-match {leads} leads x {small} offerings: {rematch:.1f} s")
    figures["rematch_1k_x_10k_s"] = round(rematch, 1)
    del index
    index, took = build(large, embedder)
    p50, p99, raw = latencies(index, 200)
    figures["p50_ms_100k"], figures["p99_ms_100k"] = round(p50, 1), round(p99, 1)
    figures["peak_rss_mb_100k"] = round(rss_mb())
    print(f"{large:>7} offerings: built in {took:.1f} s; one lead p50 {p50:.1f} ms, p99 "
          f"{p99:.1f} ms (raw p99 {raw:.2f} ms); peak RSS {figures['peak_rss_mb_100k']} MB")
    figures["offerings"] = [small, large]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
