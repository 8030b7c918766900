"""The match score as a manager reads it: plain-language needs find photonics offerings, every
factor is named and adds up to the score, clearances count only where the market takes them."""

from services.matching import scoring

VOCABULARY = scoring.Vocabulary.load()
ROUTES = scoring.routes_from(scoring.reference_profiles())


def card(offering_id: str, **fields) -> scoring.OfferingCard:
    data = {"id": offering_id, "name": offering_id, "description": "", "trl": 8} | fields
    return scoring.card_from(data)


VEIN_VIEWER = card(
    "vein-viewer", name="VeinSight NIR", trl=9, technologies=["near-infrared imaging"],
    description="Near-infrared illumination that maps superficial vasculature for "
    "venipuncture guidance.", application_areas=["diagnostics"],
    clearances={"EU": ["CE MDR class I"]}, markets_of_interest=["AU"])
LASER_WELDER = card(
    "laser-welder", name="Fibre laser welding head", technologies=["fiber laser"],
    description="Industrial laser welding of thin steel for the automotive industry: see "
    "the seam under the skin of the car body.", application_areas=["advanced_manufacturing"])
SKIN_SCANNER = card(
    "skin-scanner", name="Raman lesion scanner", trl=5, technologies=["raman spectroscopy"],
    description="Handheld Raman probe that classifies pigmented skin lesions.",
    application_areas=["diagnostics"], clearances={"JP": ["PMDA"]})


def index(*cards: scoring.OfferingCard) -> scoring.Index:
    built = scoring.Index(VOCABULARY, routes=ROUTES)
    for c in cards:
        built.put(c)
    return built


def lead(**fields) -> scoring.LeadText:
    return scoring.lead_from({"id": "lead", "target_market": "AU"} | fields)


def test_a_need_in_plain_words_finds_the_photonics_offering_over_one_sharing_its_words() -> None:
    offerings = index(VEIN_VIEWER, LASER_WELDER, SKIN_SCANNER)
    need = lead(title="Nurses cannot see veins under the skin of small children before a "
                      "blood draw")
    ranked = offerings.best(offerings.score(need), 3)
    assert [offering for offering, _ in ranked][0] == "vein-viewer"
    assert dict(ranked)["vein-viewer"] - dict(ranked)["laser-welder"] > 0.2


def test_every_factor_is_named_weighted_and_adds_up_to_the_score() -> None:
    offerings = index(VEIN_VIEWER, SKIN_SCANNER)
    scored = offerings.score(lead(title="Vein finder for paediatric wards", min_trl=8))
    factors = offerings.explain(scored, "vein-viewer")
    assert {f["name"] for f in factors} == set(scoring.WEIGHTS)
    assert abs(sum(f["contribution"] for f in factors)
               - dict(offerings.best(scored, 2))["vein-viewer"]) < 1e-3
    assert abs(sum(f["weight"] for f in factors) - 1) < 1e-6
    assert all(f["detail"] for f in factors)
    semantic = next(f for f in factors if f["name"] == "text_semantic")
    assert semantic["weight"] == 0 and "not installed" in semantic["detail"]
    assert offerings.model == f"{scoring.MODEL_VERSION} (lexical only)"


def test_a_clearance_counts_only_in_markets_whose_route_takes_it() -> None:
    offerings = index(VEIN_VIEWER, SKIN_SCANNER)

    def readiness(market: str, offering: str) -> float:
        scored = offerings.score(lead(title="Vein finder", target_market=market,
                                      requires_clearance=True))
        factor = next(f for f in offerings.explain(scored, offering)
                      if f["name"] == "regulatory_readiness")
        return factor["value"]

    assert readiness("AU", "vein-viewer") == 1.0  # TGA relies on CE certificates
    assert readiness("JP", "vein-viewer") == 0.0  # Japan needs PMDA / MHLW
    assert readiness("JP", "skin-scanner") == 1.0


def test_an_offering_below_the_leads_least_trl_loses_its_maturity() -> None:
    offerings = index(VEIN_VIEWER, SKIN_SCANNER)
    scored = offerings.score(lead(title="Skin lesion classification", min_trl=8))
    maturity = {o: next(f["value"] for f in offerings.explain(scored, o)
                        if f["name"] == "maturity") for o in ("vein-viewer", "skin-scanner")}
    assert maturity == {"vein-viewer": 1.0, "skin-scanner": 0.0}


def test_a_new_version_replaces_the_old_one_and_a_removed_offering_is_not_ranked() -> None:
    offerings = index(VEIN_VIEWER, SKIN_SCANNER)
    need = lead(title="Vein finder for blood draws")
    offerings.put(scoring.card_from({
        "id": "skin-scanner", "version": 2, "name": "Raman vein mapper", "trl": 8,
        "description": "Now maps veins for blood draws."}))
    ranked = offerings.best(offerings.score(need), 5)
    assert sorted(o for o, _ in ranked) == ["skin-scanner", "vein-viewer"]
    offerings.remove("vein-viewer")
    assert [o for o, _ in offerings.best(offerings.score(need), 5)] == ["skin-scanner"]
    assert len(offerings) == 1


def test_the_vocabulary_recognises_needs_in_the_words_clinicians_use() -> None:
    found = VOCABULARY.concepts_in(scoring.words(
        "Dermatologists want to tell a harmless mole from melanoma"))
    assert "skin cancer screening" in found
    assert VOCABULARY.concepts_in(scoring.words("quarterly revenue figures")) == set()


def test_the_quality_command_ranks_every_offering_and_scores_the_rankings(tmp_path) -> None:
    import json
    import subprocess
    import sys

    offerings = [{"id": c.id, "company": "SME", "cluster": "LITEK", "name": c.name,
                  "description": c.description, "technologies": list(c.technologies),
                  "application_areas": list(c.application_areas), "trl": c.trl,
                  "market_stage": "on_market", "clearances": c.clearances,
                  "markets_of_interest": list(c.markets_of_interest)}
                 for c in (VEIN_VIEWER, LASER_WELDER, SKIN_SCANNER)]
    leads = [{"id": "veins", "kind": "market_need", "title": "See veins in children before a "
              "blood draw", "description": "", "target_market": "AU", "application_areas": [],
              "technologies": [], "constraints": {"requires_clearance": True}},
             {"id": "moles", "kind": "market_need", "title": "Tell a mole from melanoma",
              "description": "", "target_market": "JP", "application_areas": [],
              "technologies": [], "constraints": {}}]
    (tmp_path / "offerings.json").write_text(json.dumps(offerings))
    (tmp_path / "leads.json").write_text(json.dumps(leads))
    (tmp_path / "qrels.json").write_text(json.dumps(
        {"veins": {"vein-viewer": 3}, "moles": {"skin-scanner": 3}}))
    out = tmp_path / "rankings.json"
    run = subprocess.run([sys.executable, "bench/match_quality.py", "--data", str(tmp_path),
                          "--out", str(out)], capture_output=True, text=True, check=True)
    rankings = json.loads(out.read_text())
    assert rankings["veins"][0] == "vein-viewer" and rankings["moles"][0] == "skin-scanner"
    assert all(sorted(r) == ["laser-welder", "skin-scanner", "vein-viewer"]
               for r in rankings.values())
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["ndcg5_lexical"] == figures["ndcg5_hybrid"] == 1.0
    assert figures["recall10_hybrid"] == 1.0


def test_ndcg_and_recall_count_graded_relevance_by_rank() -> None:
    from bench.match_quality import ndcg, recall

    grades = {"a": 3, "b": 2, "c": 1}
    assert ndcg(["a", "b", "c"], grades, 5) == 1.0
    assert 0 < ndcg(["c", "b", "a"], grades, 5) < 1.0
    assert ndcg(["x", "y"], grades, 5) == 0.0
    assert recall(["b", "x"], grades, 10) == 0.5  # a and b are relevant (grade 2 or more)
