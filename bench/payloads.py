"""Realistic lead bodies for the benchmarks: varied wording, as scouts write them.

Every body is its own lead: title and description are drawn from the programme's vocabulary
(devices, techniques, clinical uses, buyers, markets), so two leads share the common words of
the trade, not their whole text; by the platform's own rule (most words in common) a body that
differed only by a number would be a repeat of the one before, which no scout sends 10,000
times. Seeded, so every run posts the same sequence.
"""

import json
import random
from collections import defaultdict

from services.scouting.domain import lead_alike_words, lead_title_keys, similar_words

DEVICES = ["probe", "endoscope", "microscope", "camera", "laser", "sensor", "spectrometer",
           "catheter", "light source", "fibre bundle", "imaging head", "scanner", "analyser",
           "wearable patch", "lens module", "illuminator", "detector", "dermatoscope",
           "ophthalmoscope", "biopsy needle", "photoacoustic array", "OCT engine"]
TECHNIQUES = ["Raman", "OCT", "hyperspectral", "fluorescence", "photoacoustic", "confocal",
              "multiphoton", "near-infrared", "terahertz", "diffuse optical", "laser speckle",
              "polarisation", "holographic", "time-resolved", "ultrafast", "LED", "quantum dot",
              "lidar", "interferometric", "structured light", "thermal", "UV-C"]
USES = ["margin detection in breast surgery", "early glaucoma screening", "skin cancer triage",
        "dental caries detection", "wound healing monitoring", "sepsis screening",
        "blood glucose monitoring", "retinal imaging", "tumour ablation", "cartilage repair",
        "bacterial infection testing", "neonatal jaundice checks", "burn depth assessment",
        "colorectal polyp detection", "cervical screening", "oral cancer screening",
        "vascular access", "photodynamic therapy", "tissue oxygenation", "hearing diagnostics",
        "cell culture quality control", "implant surface inspection", "sleep apnoea monitoring",
        "stroke rehabilitation", "liver fibrosis staging", "prostate biopsy guidance"]
BUYERS = ["university hospitals", "ENT clinics", "dental chains", "dermatology practices",
          "eye clinics", "veterinary hospitals", "contract manufacturers", "home care providers",
          "rural health centres", "biobanks", "sports medicine clinics", "private labs",
          "military medical services", "teaching hospitals", "device OEMs", "pharma QC labs"]
MARKETS = {  # market: its country and where its scouts meet buyers
    "CA": ("CA", ["Toronto", "Montreal", "Vancouver"]), "US-EAST": ("US", ["Boston", "New York"]),
    "US-WEST": ("US", ["San Diego", "San Jose", "Seattle"]), "IL": ("IL", ["Tel Aviv", "Haifa"]),
    "KR": ("KR", ["Seoul", "Busan", "Daejeon"]), "JP": ("JP", ["Osaka", "Tokyo", "Kobe"]),
    "SG": ("SG", ["Singapore"]), "MY": ("MY", ["Kuala Lumpur", "Penang"]),
    "AU": ("AU", ["Sydney", "Melbourne", "Brisbane"]), "NZ": ("NZ", ["Auckland", "Wellington"]),
}
NEEDS = ["a handheld version under 1 kg", "CE and FDA cleared parts", "a price below 20,000 EUR",
         "results within five minutes", "single-use sterile tips", "battery operation all day",
         "integration with their PACS", "training for nurses", "a local service partner",
         "a pilot before any tender", "automated reporting", "operation without a darkroom",
         "a smaller footprint", "cloud-free data handling", "reimbursement evidence",
         "a distributor who stocks spares"]
VERBS = ["want", "are looking for", "ask for", "need", "would pilot", "are tendering for",
         "plan to buy", "seek a partner for"]
WHY = ["because current systems are too slow", "after a failed local pilot",
       "as their supplier left the market", "to cut waiting lists", "for a new research wing",
       "under a national screening programme", "to replace imported kit",
       "ahead of new regulations"]
KINDS = ["market_need", "distributor_candidate", "partner_candidate", "intermediary",
         "event_opportunity"]
AREAS = ["diagnostics", "interventional_imaging", "therapy", "sensing", "digital_health",
         "regenerative_medicine", "biomaterials", "advanced_manufacturing"]
ORGANISATIONS = ["Optics", "Photonics", "Medical", "Lasers", "Imaging", "Biotech", "Devices",
                 "Instruments", "Health", "Scientific"]


def lead(rng: random.Random, n: int) -> dict:
    """One lead as a scout would type it; `n` makes its counterpart its own."""
    device, technique, use = rng.choice(DEVICES), rng.choice(TECHNIQUES), rng.choice(USES)
    market = rng.choice(list(MARKETS))
    country, places = MARKETS[market]
    buyer, place = rng.choice(BUYERS), rng.choice(places)
    return {
        "kind": rng.choice(KINDS),
        "title": f"{technique} {device} for {use}",
        "description": (f"{buyer[0].upper()}{buyer[1:]} in {place} {rng.choice(VERBS)} a "
                        f"{technique} {device} for {use}, with {rng.choice(NEEDS)} and "
                        f"{rng.choice(NEEDS)}, {rng.choice(WHY)}. Budget about "
                        f"{rng.randint(2, 90) * 5}k EUR; met at visit {n}."),
        "target_market": market,
        "application_areas": rng.sample(AREAS, rng.randint(1, 2)),
        "technologies": [technique, device],
        "urgency": rng.choice(["low", "medium", "high"]),
        "counterpart": {"name": f"{place} {rng.choice(ORGANISATIONS)} {n}", "country": country},
    }


def bodies(count: int, *, seed: int = 7) -> list[bytes]:
    """`count` leads as JSON request bodies, none a repeat of another by the platform's rule
    (the few draws that would be are skipped), so every POST of a run is saved."""
    rng = random.Random(seed)
    # Wordings by title key, as domain.titles_alike finds them: whole, and shorter by one.
    wholes: dict[int, list[list[str]]] = defaultdict(list)
    shorters: dict[int, list[list[str]]] = defaultdict(list)
    out: list[bytes] = []
    while len(out) < count:
        body = lead(rng, len(out))
        words = lead_alike_words(title=body["title"], description=body["description"],
                                 counterpart_name=body["counterpart"]["name"])
        keys = lead_title_keys(cluster="", market=body["target_market"], title=body["title"])
        alike = [*wholes[keys.whole], *shorters[keys.whole],
                 *(other for key in keys.shorter for other in wholes[key])]
        if not any(similar_words(words, other) for other in alike):
            wholes[keys.whole].append(words)
            for key in keys.shorter:
                shorters[key].append(words)
            out.append(json.dumps(body).encode())
    return out
