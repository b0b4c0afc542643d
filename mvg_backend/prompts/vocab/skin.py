"""Skin lesions (dermoscopy / clinical photos): lesion type and the ABCD features.

A pigmented lesion (a nevus, or no type named) with positive ABCD features is an ``Atypical pigmented
lesion``: its features progress (growing diameter, then border irregularity, then colours, then asymmetry),
and it is never called a melanoma unless the report says melanoma.
"""

from __future__ import annotations

from . import E, I, M, Concept, DomainVocab

_LESION = r"(?:lesion|nevus|naevus|mole|melanoma|carcinoma|keratosis|macule|papule|plaque)"
# the lesion types that are pigmented: with positive ABCD features they are staged as an atypical pigmented lesion
PIGMENTED = ("Nevus", "Atypical nevus", "Atypical pigmented lesion")
FEATURE_ORDER = ("Large diameter", "Border irregularity", "Color variegation", "Asymmetry")  # how they progress

CONCEPTS = (
    Concept("Melanoma",
            r"\bmelanoma(?:s)?(?: in situ)?\b|\blentigo maligna\b",
            (M(0.2, "an early melanoma in situ"), I(0.375, "a thin melanoma with irregular pigmentation"),
             M(0.5, "a melanoma"), I(0.625, "an enlarging melanoma with irregular borders"),
             M(0.75, "a large invasive melanoma"), I(0.9, "a large nodular melanoma"),
             E(0.97, "a large ulcerated nodular melanoma")),
            roi="lesion and its surrounding skin", default_severity=0.5,
            grades=((r"in situ|lentigo maligna\b(?! melanoma)", 0.2), (r"ulcerat|nodular|invasive|thick", 0.75))),
    Concept("Atypical nevus",
            r"\b(?:atypical|dysplastic|clark'?s?) (?:melanocytic )?(?:nevus|nevi|naevus|naevi|moles?)\b",
            (M(0.1, "a slightly atypical nevus"), M(0.25, "an atypical nevus"),
             I(0.375, "an atypical nevus with slightly irregular pigmentation"),
             M(0.5, "an atypical nevus with irregular pigmentation"),
             I(0.625, "an atypical nevus with irregular pigmentation and slightly irregular borders"),
             M(0.75, "a markedly atypical nevus with irregular borders and uneven pigmentation"),
             I(0.9, "a severely atypical nevus with irregular borders and color variegation")),
            roi="lesion"),
    Concept("Nevus",
            r"\b(?:benign |common |compound |junctional |intradermal |congenital |melanocytic )*"
            r"(?:nevus|nevi|naevus|naevi|moles?)\b",
            (M(0.1, "a small regular nevus"), M(0.25, "a regular nevus"), I(0.375, "a slightly raised regular nevus"),
             M(0.5, "a slightly larger nevus"), I(0.625, "a larger raised nevus"), M(0.75, "a large nevus"),
             I(0.9, "a very large nevus")),
            roi="lesion",
            exclude=r"\b(?:atypical|dysplastic|clark'?s?) (?:melanocytic )?(?:nevus|nevi|naevus|naevi|mole)"),
    Concept("Basal cell carcinoma",
            r"\bbasal cell carcinoma\b|\bbcc\b|\bbasalioma\b|\brodent ulcer\b",
            (M(0.25, "a small pearly basal cell carcinoma"),
             I(0.375, "a pearly basal cell carcinoma with telangiectasia"),
             M(0.5, "a nodular basal cell carcinoma"),
             I(0.625, "a nodular basal cell carcinoma with arborizing vessels"),
             M(0.75, "an ulcerated basal cell carcinoma"), I(0.9, "a large ulcerated basal cell carcinoma"),
             E(0.97, "a large destructive ulcerated basal cell carcinoma")),
            roi="lesion and its surrounding skin", grades=((r"ulcerat|rodent", 0.75), (r"superficial", 0.25))),
    Concept("Squamous cell carcinoma",
            r"\bsquamous cell carcinoma\b|\bscc\b|\bbowen'?s disease\b|\bkeratoacanthoma\b",
            (M(0.2, "a small squamous cell carcinoma in situ"), I(0.375, "a scaly squamous cell carcinoma"),
             M(0.5, "a hyperkeratotic squamous cell carcinoma"),
             I(0.625, "a thick hyperkeratotic squamous cell carcinoma"),
             M(0.75, "an ulcerated squamous cell carcinoma"),
             E(0.97, "a large ulcerated invasive squamous cell carcinoma")),
            roi="lesion and its surrounding skin", grades=((r"in situ|bowen", 0.2), (r"ulcerat|invasive", 0.75))),
    Concept("Seborrheic keratosis",
            r"\bseb+orr?h?o?eic keratos[ie]s\b|\bseborrh?oeic wart\b|\bsk\b",
            (M(0.1, "a small flat seborrheic keratosis"), M(0.25, "a waxy seborrheic keratosis"),
             I(0.375, "a slightly raised waxy seborrheic keratosis"),
             M(0.5, "a raised stuck-on seborrheic keratosis"), I(0.625, "a thick stuck-on seborrheic keratosis"),
             M(0.75, "a large verrucous seborrheic keratosis"), I(0.9, "a very large verrucous seborrheic keratosis")),
            roi="lesion"),
    Concept("Actinic keratosis",
            r"\bactinic keratos[ie]s\b|\bsolar keratos[ie]s\b",
            (M(0.1, "a faint actinic keratosis"), M(0.25, "a scaly actinic keratosis"),
             I(0.375, "a rough scaly actinic keratosis"), M(0.5, "a thick actinic keratosis"),
             I(0.625, "a thick crusted actinic keratosis"), M(0.75, "a hypertrophic actinic keratosis"),
             I(0.9, "a large hypertrophic actinic keratosis")),
            roi="lesion"),
    Concept("Asymmetry", r"\basymmetr(?:y|ic|ical)\b",
            (M(0.25, "slight asymmetry"), M(0.5, "asymmetry"), M(0.75, "marked asymmetry")),
            roi="lesion", kind="feature", default_severity=0.5),
    Concept("Border irregularity",
            r"\birregular (?:borders?|margins?|edges?)\b|\bborder irregularit\w*|\bill-defined (?:borders?|margins?)\b|"
            r"\bnotched (?:borders?|margins?)\b|\bpoorly (?:defined|circumscribed)\b|\birregular(?:ly)? (?:shaped )?"
            r"(?:\d+(?:\.\d+)? ?mm )?(?:pigmented )?(?:lesion|macule|papule|nevus|naevus)\b",
            (M(0.25, "slightly irregular borders"), M(0.5, "irregular borders"), I(0.625, "irregular notched borders"),
             M(0.75, "markedly irregular notched borders")),
            roi="lesion", kind="feature", default_severity=0.5),
    Concept("Color variegation",
            r"\bcolou?r variegation\b|\bvariegated\b|\bmulti-?colou?red\b|\bmultiple colou?rs\b|"
            r"\b(?:uneven|irregular) (?:pigmentation|colou?r)\b|\bblue-?white veil\b",
            (M(0.25, "slightly uneven color"), M(0.5, "color variegation"),
             I(0.625, "color variegation with light and dark brown"),
             M(0.75, "color variegation with several shades of brown and black")),
            roi="lesion", kind="feature", default_severity=0.5),
    Concept("Large diameter",
            r"\b(?:diameter|size) (?:of |greater than |over |>\s?)?(?:[6-9]|[1-9]\d)(?:\.\d+)? ?mm\b|"
            r"\b(?:[6-9]|[1-9]\d)(?:\.\d+)? ?mm (?:in )?(?:diameter|across)\b|\b(?:[6-9]|[1-9]\d)(?:\.\d+)? ?mm "
            r"(?:\w+ ){0,2}" + _LESION + r"\b|\b(?:[1-9]\d?(?:\.\d+)?) ?cm\b",
            (M(0.5, "a diameter over 6 mm"), I(0.625, "a diameter of about 8 mm"), M(0.75, "a diameter over 10 mm"),
             I(0.9, "a diameter over 15 mm")),
            roi="lesion", kind="feature", default_severity=0.5),
    Concept("Atypical pigmented lesion",
            r"\batypical (?:pigmented|melanocytic) (?:skin )?lesions?\b",
            (M(0.1, "a slightly atypical pigmented lesion"), M(0.25, "an atypical pigmented lesion"),
             M(0.5, "an atypical pigmented lesion with irregular borders"),
             M(0.75, "an atypical pigmented lesion with irregular borders and color variegation")),
            roi="lesion and its surrounding skin", default_severity=0.25),
)

VOCAB = DomainVocab(
    domain="skin",
    modality="dermoscopy image",
    concepts=CONCEPTS,
    normal="a dermoscopy image of normal skin",
    negative="text, ruler, hair, watermark, blurry, low quality",
    example_finding="a melanoma with irregular borders and color variegation",
    locations=r"\b(?:back|trunk|chest|abdomen|face|cheek|nose|forehead|scalp|neck|shoulder|arm|forearm|hand|"
              r"leg|thigh|shin|foot|sole|palm|ear|lip)\b",
    styles={"mvg": "a {modality} of {findings}", "report": "{findings}.", "short": "{findings}"},
)
