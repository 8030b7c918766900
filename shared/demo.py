"""Demo data: keys for the programme's people and a handful of realistic leads, sent through
the real API so a newcomer sees events flow at once. Loaded once; the keys stay in the data
folder."""

import json
from pathlib import Path

import httpx

from shared.keys import create_key
from shared.settings import Settings

DEMO_KEYS = (  # (name, role, cluster)
    ("scout-tokyo", "scout", "LITEK"),
    ("scout-montreal", "scout", "MEDICEN"),
    ("scout-tel-aviv", "scout", "BIOCAT"),
    ("partner-litek", "partner", "LITEK"),
    ("manager-litek", "manager", "LITEK"),
    ("ops", "ops", None),
    ("admin", "admin", None),
)

DEMO_LEADS = (  # (scout, lead)
    ("scout-tokyo", {
        "kind": "market_need", "title": "Handheld OCT probe for ENT outpatient clinics",
        "description": "Osaka ENT clinics look for a handheld OCT probe under 1 kg with PMDA "
                       "clearance path; current devices are cart-based.",
        "target_market": "JP", "application_areas": ["diagnostics"],
        "technologies": ["optical coherence tomography", "fibre probes"]}),
    ("scout-tokyo", {
        "kind": "distributor_candidate", "title": "Surgical laser distributor, Kansai region",
        "description": "Mid-size distributor of surgical lasers seeks European ultrafast "
                       "laser sources for ophthalmology.",
        "target_market": "JP", "application_areas": ["therapy"],
        "technologies": ["ultrafast lasers"],
        "counterpart": {"name": "Kansai Surgical Supply K.K.",
                        "website": "https://kansai-surgical.example.jp", "country": "JP"},
        "counterpart_contact": {"name": "Kenji Mori", "email": "k.mori@kansai-surgical.example.jp"},
        "urgency": "high", "source": "mission", "source_date": "2026-10-14"}),
    ("scout-montreal", {
        "kind": "partner_candidate", "title": "Hospital innovation unit wants NIR imaging pilot",
        "description": "A Montreal university hospital seeks a partner for a fluorescence-guided "
                       "surgery pilot (ICG, NIR-II).",
        "target_market": "CA", "application_areas": ["interventional_imaging"],
        "technologies": ["NIR fluorescence imaging", "ICG"]}),
    ("scout-montreal", {
        "kind": "event_opportunity", "title": "Photonics North 2027 B2B matchmaking",
        "description": "Matchmaking session for European photonics SMEs; booth share possible.",
        "target_market": "CA", "application_areas": ["sensing", "diagnostics"],
        "technologies": []}),
    ("scout-tel-aviv", {
        "kind": "intermediary", "title": "Regulatory consultancy for AMAR registrations",
        "description": "Tel Aviv consultancy offering AMAR registration support for Class II "
                       "optical devices.",
        "target_market": "IL", "application_areas": ["digital_health"],
        "technologies": ["regulatory"],
        "counterpart": {"name": "Shfela RegAffairs Ltd", "country": "IL"},
        "source": "referral"}),
    ("scout-tel-aviv", {
        "kind": "market_need", "title": "Raman spectroscopy for intra-operative margin checks",
        "description": "Breast-surgery departments want sub-minute tissue margin assessment.",
        "target_market": "IL", "application_areas": ["diagnostics", "sensing"],
        "technologies": ["Raman spectroscopy"]}),
)


async def load_demo(settings: Settings, *, data_dir: Path, scouting_url: str) -> dict[str, str]:
    """Create the demo keys and leads once; later starts reuse the saved keys."""
    saved = data_dir / "demo-keys.json"
    if saved.exists():
        return json.loads(saved.read_text())
    keys = {}
    for name, role, cluster in DEMO_KEYS:
        _, keys[name] = await create_key(settings, role=role, cluster=cluster, name=name)
    async with httpx.AsyncClient(base_url=scouting_url, timeout=10) as client:
        for scout, lead in DEMO_LEADS:
            answer = await client.post("/v1/leads", json=lead,
                                       headers={"Authorization": f"Bearer {keys[scout]}"})
            answer.raise_for_status()
    saved.write_text(json.dumps(keys, indent=2))
    saved.chmod(0o600)
    env = "".join(f"export GVN_{n.upper().replace('-', '_')}_KEY={t}\n" for n, t in keys.items())
    (data_dir / "demo-keys.env").write_text(env)
    (data_dir / "demo-keys.env").chmod(0o600)
    return keys
