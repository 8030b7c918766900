"""How well an offering answers a lead: one score made of named factors a manager can read.

The scorer keeps every current offering in memory as arrays (one position per offering), so
a lead is scored against all of them at once with numpy: text relevance (BM25 over words and
the domain vocabulary's concepts; cosine of sentence embeddings when the semantic extra is
installed) and the structured factors (concepts met, technology and application overlap,
market of interest, regulatory readiness for the lead's market, maturity). The same code
ranks for the service and for bench/match_quality.py.

BM25 is written here rather than taken from a library: the ones on PyPI (rank-bm25, bm25s)
index a fixed corpus, and offerings change one at a time.
"""

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shared.programme import APPLICATION_AREAS

MODEL_VERSION = "hybrid-1"
VOCABULARY_FILE = Path(__file__).with_name("vocabulary.json")

# Weights of the factors (they sum to 1). Without embeddings the semantic weight goes to the
# lexical factor, so scores stay on the same scale.
WEIGHTS = {
    "text_lexical": 0.25, "text_semantic": 0.20, "need_concepts": 0.20,
    "technology_overlap": 0.10, "application_areas": 0.05, "market_of_interest": 0.05,
    "regulatory_readiness": 0.10, "maturity": 0.05,
}
BM25_K1, BM25_B = 1.2, 0.75
CONCEPT_BOOST = 2.0  # a concept term counts as this many words in BM25


class Embedder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


# --- words ---------------------------------------------------------------------------------

STOPWORDS = frozenset("""a an and are as at be before but by can for from has have in into is
it its of on or our that the their them they this to use used uses using want wants we
which who will with without would need needs needed all any more most so than then there
these those what when where while also such very other some each per via not no""".split())
WORD = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """A light English stemmer: plurals and common endings, enough to meet 'veins' and 'vein'."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "e"),
                         ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + keep
    return word


def words(text: str) -> list[str]:
    return [stem(w) for w in WORD.findall(text.lower().replace("-", " "))
            if w not in STOPWORDS and len(w) > 1]


# --- the domain vocabulary -----------------------------------------------------------------

@dataclass(frozen=True)
class Concept:
    """A need or a capability, with the ways clinicians, buyers and engineers say it."""

    name: str
    phrases: tuple[tuple[str, ...], ...]  # stemmed word sequences
    areas: frozenset[str]


class Vocabulary:
    """Concepts linking clinical and business language to photonics (vocabulary.json)."""

    def __init__(self, concepts: Iterable[Concept]) -> None:
        self.concepts = {c.name: c for c in concepts}
        self._by_first: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        for concept in self.concepts.values():
            for phrase in concept.phrases:
                self._by_first[phrase[0]].append((phrase, concept.name))

    @classmethod
    def load(cls, path: Path = VOCABULARY_FILE) -> "Vocabulary":
        data = json.loads(path.read_text())
        return cls(Concept(name=c["concept"], areas=frozenset(c.get("areas", [])),
                           phrases=tuple(tuple(words(p)) for p in c["phrases"] if words(p)))
                   for c in data["concepts"])

    def concepts_in(self, tokens: Sequence[str]) -> set[str]:
        """The concepts whose phrases occur in `tokens` (stemmed words, in order)."""
        found = set()
        for i, token in enumerate(tokens):
            for phrase, name in self._by_first.get(token, ()):
                if tuple(tokens[i:i + len(phrase)]) == phrase:
                    found.add(name)
        return found


# --- what is scored ------------------------------------------------------------------------

@dataclass(frozen=True)
class LeadText:
    id: str
    title: str
    target_market: str
    description: str = ""
    application_areas: tuple[str, ...] = ()
    technologies: tuple[str, ...] = ()
    min_trl: int | None = None
    requires_clearance: bool = False

    @property
    def text(self) -> str:
        return " . ".join([self.title, self.description, *self.technologies])


@dataclass(frozen=True)
class OfferingCard:
    id: str
    version: int
    name: str
    description: str
    company: str = ""
    cluster: str = ""
    technologies: tuple[str, ...] = ()
    application_areas: tuple[str, ...] = ()
    trl: int = 1
    market_stage: str = "prototype"
    clearances: dict[str, list[str]] = field(default_factory=dict)
    markets_of_interest: tuple[str, ...] = ()
    value_proposition: str = ""

    @property
    def text(self) -> str:
        return " . ".join([self.name, self.description, *self.technologies,
                           self.value_proposition])


@dataclass(frozen=True)
class MarketRoute:
    """What a market's regulatory route accepts: labels' prefixes ('CE', 'FDA 510(k)') and
    regions whose clearance it relies on ('EU')."""

    market: str
    accepted: tuple[str, ...] = ()

    def accepts(self, region: str, label: str) -> bool:
        return region == self.market or any(
            region == a or label.upper().startswith(a.upper()) for a in self.accepted)


def cleared_for(card: OfferingCard, route: MarketRoute) -> list[str]:
    """The offering's clearances that the market's route takes."""
    return [f"{label} ({region})" for region, labels in card.clearances.items()
            for label in labels if route.accepts(region, label)]


# --- the index -----------------------------------------------------------------------------

@dataclass
class Scored:
    """Every live offering's factor values for one lead (arrays over positions)."""

    lead: LeadText
    values: dict[str, np.ndarray]
    weights: dict[str, float]
    total: np.ndarray
    concepts: set[str]
    query: dict[str, float]


class Index:
    """The current offerings, as arrays a lead is scored against in one pass."""

    def __init__(self, vocabulary: Vocabulary, *, embedder: Embedder | None = None,
                 routes: dict[str, MarketRoute] | None = None) -> None:
        self.vocabulary, self.embedder = vocabulary, embedder
        self.routes = routes or {}
        self.cards: list[OfferingCard | None] = []  # None: replaced or removed
        self.position: dict[str, int] = {}
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self._compiled: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lengths: list[float] = []
        self._concepts: list[frozenset[str]] = []
        self._tech_postings: dict[str, list[int]] = defaultdict(list)
        self._vectors: list[np.ndarray | None] = []
        self._matrix: np.ndarray | None = None
        self._arrays: dict[str, np.ndarray] | None = None

    @property
    def model(self) -> str:
        semantic = self.embedder.name if self.embedder else "lexical only"
        return f"{MODEL_VERSION} ({semantic})"

    def __len__(self) -> int:
        return len(self.position)

    def put(self, card: OfferingCard, vector: np.ndarray | None = None) -> None:
        """Add an offering or replace its earlier version."""
        self.remove(card.id)
        tokens = words(card.text)
        concepts = frozenset(self.vocabulary.concepts_in(tokens))
        counts = Counter(tokens)
        for tech in card.technologies:  # what it says it is counts twice
            counts.update(words(tech))
        counts.update({f"concept:{c}": CONCEPT_BOOST for c in concepts})
        i = len(self.cards)
        for term, tf in counts.items():
            self._postings[term].append((i, float(tf)))
            self._compiled.pop(term, None)
        self.cards.append(card)
        self.position[card.id] = i
        self._lengths.append(float(sum(counts.values())))
        self._concepts.append(concepts)
        for w in {w for t in card.technologies for w in words(t)}:
            self._tech_postings[w].append(i)
        self._vectors.append(vector)
        self._matrix = self._arrays = None

    def remove(self, offering_id: str) -> None:
        i = self.position.pop(offering_id, None)
        if i is not None:
            self.cards[i] = None
            self._arrays = None

    def embed(self, texts: list[str]) -> np.ndarray | None:
        return self.embedder.encode(texts) if self.embedder else None

    # The arrays a scoring pass reads, rebuilt after a change.
    def _structured(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            n = len(self.cards)
            alive = np.array([c is not None for c in self.cards], dtype=bool)
            trl = np.array([c.trl if c else 0 for c in self.cards], dtype=np.int8)
            areas = np.zeros((n, len(APPLICATION_AREAS)), dtype=bool)
            for i, card in enumerate(self.cards):
                for area in card.application_areas if card else ():
                    if area in APPLICATION_AREAS:
                        areas[i, APPLICATION_AREAS.index(area)] = True
            lengths = np.array(self._lengths, dtype=np.float32)
            self._arrays = {"alive": alive, "trl": trl, "areas": areas, "lengths": lengths}
        return self._arrays

    def _per_market(self, what: str, market: str) -> np.ndarray:
        """Which offerings have `market` among their markets of interest ("interest"), or hold
        a clearance its route takes ("cleared"); worked out once per market and change."""
        arrays = self._structured()
        key = f"{what}:{market}"
        if key not in arrays:
            route = self.routes.get(market, MarketRoute(market))
            test = ((lambda c: market in c.markets_of_interest) if what == "interest"
                    else (lambda c: bool(cleared_for(c, route))))
            arrays[key] = np.fromiter((bool(c) and test(c) for c in self.cards), bool,
                                      len(self.cards)).astype(np.float32)
        return arrays[key]

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        if term not in self._compiled:
            pairs = [(i, tf) for i, tf in self._postings.get(term, ()) if self.cards[i]]
            self._compiled[term] = (np.array([p[0] for p in pairs], dtype=np.int64),
                                    np.array([p[1] for p in pairs], dtype=np.float32))
        return self._compiled[term]

    def _holds(self, term: str, i: int) -> bool:
        positions, _ = self._posting(term)  # in ascending order, as they were added
        at = int(np.searchsorted(positions, i))
        return at < len(positions) and positions[at] == i

    def _semantic_matrix(self) -> np.ndarray | None:
        if self.embedder is None:
            return None
        if self._matrix is None:
            missing = [i for i, (c, v) in enumerate(zip(self.cards, self._vectors, strict=True))
                       if c is not None and v is None]
            if missing:
                vectors = self.embedder.encode([self.cards[i].text for i in missing])
                for i, vector in zip(missing, vectors, strict=True):
                    self._vectors[i] = vector
            zero = np.zeros(self.embedder.dimension, dtype=np.float32)
            self._matrix = np.stack([v if v is not None else zero for v in self._vectors]) \
                if self._vectors else np.zeros((0, self.embedder.dimension), np.float32)
        return self._matrix

    def vector_of(self, offering_id: str) -> np.ndarray | None:
        self._semantic_matrix()
        i = self.position.get(offering_id)
        return None if i is None else self._vectors[i]

    def score(self, lead: LeadText, *, lead_vector: np.ndarray | None = None) -> Scored:
        """Every factor of every live offering for `lead`, and the weighted total."""
        arrays = self._structured()
        n = len(self.cards)
        tokens = words(lead.text)
        concepts = self.vocabulary.concepts_in(tokens)
        query: dict[str, float] = dict(Counter(tokens))
        for tech in lead.technologies:
            for w in words(tech):
                query[w] = query.get(w, 0) + 1
        for concept in concepts:
            query[f"concept:{concept}"] = CONCEPT_BOOST
        values: dict[str, np.ndarray] = {}

        # BM25 over words and concepts; 1.0 once half the query's ideal weight is met.
        live = max(int(arrays["alive"].sum()), 1)
        avg_length = float(arrays["lengths"][arrays["alive"]].mean()) if n and live else 1.0
        norm = BM25_K1 * (1 - BM25_B + BM25_B * arrays["lengths"] / avg_length)
        raw = np.zeros(n, dtype=np.float32)
        ideal = 0.0
        concept_hits = np.zeros(n, dtype=np.float32)
        for term, weight in query.items():
            positions, tf = self._posting(term)
            idf = math.log(1 + (live - len(positions) + 0.5) / (len(positions) + 0.5))
            ideal += weight * idf
            if len(positions):
                raw[positions] += weight * idf * tf * (BM25_K1 + 1) / (tf + norm[positions])
                if term.startswith("concept:"):
                    concept_hits[positions] += 1
        values["text_lexical"] = np.minimum(1.0, raw / (0.5 * ideal)) if ideal else raw

        matrix = self._semantic_matrix()
        if matrix is not None and len(matrix):
            vector = lead_vector if lead_vector is not None else self.embed([lead.text])[0]
            values["text_semantic"] = np.clip((matrix @ vector - 0.15) / 0.5, 0, 1)

        values["need_concepts"] = (concept_hits / len(concepts) if concepts
                                   else np.zeros(n, dtype=np.float32))
        lead_techs = {w for t in lead.technologies for w in words(t)}
        if lead_techs:
            overlap = np.zeros(n, dtype=np.float32)
            for w in lead_techs:
                overlap[self._tech_postings.get(w, [])] += 1
            values["technology_overlap"] = overlap / len(lead_techs)
        else:  # nothing asked for: the concepts stand in
            values["technology_overlap"] = values["need_concepts"]
        lead_areas = [APPLICATION_AREAS.index(a) for a in lead.application_areas
                      if a in APPLICATION_AREAS]
        lead_areas += [APPLICATION_AREAS.index(a) for c in concepts
                       for a in self.vocabulary.concepts[c].areas if a in APPLICATION_AREAS]
        values["application_areas"] = (arrays["areas"][:, sorted(set(lead_areas))].any(axis=1)
                                       .astype(np.float32) if lead_areas
                                       else np.full(n, 0.5, dtype=np.float32))
        values["market_of_interest"] = self._per_market("interest", lead.target_market)
        cleared = self._per_market("cleared", lead.target_market)
        values["regulatory_readiness"] = cleared if lead.requires_clearance else 0.4 + 0.6 * cleared
        trl = arrays["trl"].astype(np.float32)
        if lead.min_trl:
            values["maturity"] = np.clip(1 - (lead.min_trl - trl) / 3, 0, 1)
        else:
            values["maturity"] = np.clip((trl - 1) / 8, 0, 1)

        weights = dict(WEIGHTS)
        if "text_semantic" not in values:
            weights["text_lexical"] += weights.pop("text_semantic")
        total = sum(values[name] * weight for name, weight in weights.items())
        total = np.where(arrays["alive"], total, -1.0)
        return Scored(lead=lead, values=values, weights=weights, total=total,
                      concepts=concepts, query=query)

    def best(self, scored: Scored, k: int, *, threshold: float = 0.0) -> list[tuple[str, float]]:
        """The `k` best live offerings at or above `threshold`, best first (ties by id)."""
        total = scored.total
        if not len(total):
            return []
        k = min(k, len(total))
        top = np.argpartition(-total, k - 1)[:k]
        ranked = sorted((-float(total[i]), self.cards[i].id, i) for i in top
                         if self.cards[i] is not None and total[i] >= threshold)
        return [(offering_id, -negative) for negative, offering_id, _ in ranked]

    def explain(self, scored: Scored, offering_id: str) -> list[dict[str, Any]]:
        """The factors of one offering's score: name, value, weight, contribution, detail."""
        i = self.position[offering_id]
        card = self.cards[i]
        assert card is not None
        lead = scored.lead
        shared_words = sorted(t for t in scored.query if not t.startswith("concept:")
                              and self._holds(t, i))[:8]
        met = sorted(scored.concepts & self._concepts[i])
        route = self.routes.get(lead.target_market, MarketRoute(lead.target_market))
        cleared = cleared_for(card, route)
        details = {
            "text_lexical": f"shared words: {', '.join(shared_words) or 'none'}",
            "text_semantic": f"meaning compared by {self.embedder.name}" if self.embedder
            else "semantic model not installed",
            "need_concepts": (f"needs met: {', '.join(met)}" if met else
                              f"needs recognised: {', '.join(sorted(scored.concepts)) or 'none'}"
                              ", none met"),
            "technology_overlap": ", ".join(sorted(card.technologies)) or "no technologies",
            "application_areas": ", ".join(card.application_areas) or "no areas given",
            "market_of_interest": f"{lead.target_market} "
            f"{'is' if lead.target_market in card.markets_of_interest else 'is not'} "
            "among its markets of interest",
            "regulatory_readiness": (f"accepted in {lead.target_market}: {', '.join(cleared)}"
                                     if cleared else f"no clearance {lead.target_market} takes"
                                     + (" (the lead requires one)" if lead.requires_clearance
                                        else "")),
            "maturity": f"TRL {card.trl}" + (f", lead needs {lead.min_trl}" if lead.min_trl
                                             else ""),
        }
        factors = []
        for name in WEIGHTS:
            used = scored.weights.get(name, 0.0)
            value = float(scored.values[name][i]) if name in scored.values else 0.0
            factors.append({"name": name, "value": round(value, 4), "weight": round(used, 4),
                            "contribution": round(value * used, 4), "detail": details[name]})
        return factors


# --- building an index from plain data (the service's rows, or bench/match_quality.py) ------

MARKET_PROFILES_FILE = Path(__file__).with_name("market_profiles.json")


def reference_profiles() -> list[dict[str, Any]]:
    """The documented reference table the market profiles are seeded from."""
    return json.loads(MARKET_PROFILES_FILE.read_text())["markets"]


def routes_from(profiles: Iterable[dict[str, Any]]) -> dict[str, MarketRoute]:
    return {p["market"]: MarketRoute(p["market"], tuple(p.get("accepted_clearances", ())))
            for p in profiles}


def card_from(data: dict[str, Any]) -> OfferingCard:
    """An offering as the data set format (and the API) give it."""
    return OfferingCard(
        id=str(data["id"]), version=int(data.get("version", 1)), name=data["name"],
        description=data.get("description", ""),
        company=data.get("company") or data.get("company_name", ""),
        cluster=data.get("cluster", ""), technologies=tuple(data.get("technologies", ())),
        application_areas=tuple(data.get("application_areas", ())), trl=int(data["trl"]),
        market_stage=data.get("market_stage", "prototype"),
        clearances={k: list(v) for k, v in (data.get("clearances") or {}).items()},
        markets_of_interest=tuple(data.get("markets_of_interest", ())),
        value_proposition=data.get("value_proposition", ""))


def lead_from(data: dict[str, Any]) -> LeadText:
    constraints = data.get("constraints") or {}
    return LeadText(
        id=str(data["id"]), title=data["title"], description=data.get("description") or "",
        target_market=data["target_market"],
        application_areas=tuple(data.get("application_areas", ())),
        technologies=tuple(data.get("technologies", ())),
        min_trl=data.get("min_trl", constraints.get("min_trl")),
        requires_clearance=bool(data.get("requires_clearance",
                                         constraints.get("requires_clearance", False))))
