"""The LASER-GO programme's own facts: its clusters, partner clusters abroad, target markets."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Cluster:
    code: str
    name: str
    country: str
    abroad: bool = False  # a partner cluster in a target market, not a consortium member


CLUSTERS: tuple[Cluster, ...] = (
    Cluster("LITEK", "Lithuanian Laser and Engineering Technology Cluster", "LT"),
    Cluster("SYSTEMATIC", "Systematic Paris Region (formerly OpticsValley)", "FR"),
    Cluster("HTS", "Human.technology Styria", "AT"),
    Cluster("PHOTONICSHUB", "Photonics Hub (Optence and Bayern Photonics)", "DE"),
    Cluster("BIOCAT", "BIOCAT, the BioRegion of Catalonia", "ES"),
    Cluster("MEDICEN", "MEDICEN Paris Region", "FR"),
    Cluster("OPTONIQUE", "Optonique", "CA", abroad=True),
    Cluster("MEDTEQ", "MEDTEQ+", "CA", abroad=True),
    Cluster("OVAZ", "OpticsValley Arizona", "US", abroad=True),
    Cluster("NYPHOTONICS", "New York Photonics", "US", abroad=True),
    Cluster("ISRAELPHOTONICS", "Israel Photonics", "IL", abroad=True),
    Cluster("KAPID", "Korea Association for Photonics Industry Development", "KR", abroad=True),
)

MARKETS = {
    "CA": "Canada", "US-EAST": "US East Coast", "US-WEST": "US West Coast", "IL": "Israel",
    "KR": "South Korea", "JP": "Japan", "SG": "Singapore", "MY": "Malaysia", "AU": "Australia",
    "NZ": "New Zealand",
}

# Health-photonics application areas: the one list leads and offerings are tagged with.
APPLICATION_AREAS = (
    "diagnostics", "interventional_imaging", "therapy", "sensing", "regenerative_medicine",
    "biomaterials", "digital_health", "advanced_manufacturing",
)
