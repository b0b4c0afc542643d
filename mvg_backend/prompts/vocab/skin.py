"""Skin lesions (dermoscopy / clinical photos): lesion type and the ABCD features."""

from __future__ import annotations

from . import Concept, DomainVocab

_LESION = r"(?:lesion|nevus|naevus|mole|melanoma|carcinoma|keratosis|macule|papule|plaque)"

CONCEPTS = (
    Concept("Melanoma",
            r"\bmelanoma(?:s)?(?: in situ)?\b|\blentigo maligna\b",
            ("an early melanoma in situ", "a small melanoma", "a melanoma", "a large invasive melanoma",
             "a large ulcerated nodular melanoma"),
            roi="lesion and its surrounding skin", default_severity=0.5,
            grades=((r"in situ|lentigo maligna\b(?! melanoma)", 0.2), (r"ulcerat|nodular|invasive|thick", 0.75))),
    Concept("Atypical nevus",
            r"\b(?:atypical|dysplastic|clark'?s?) (?:melanocytic )?(?:nevus|nevi|naevus|naevi|moles?)\b",
            ("a slightly atypical nevus", "an atypical nevus", "an atypical nevus with irregular pigmentation",
             "a markedly atypical nevus with irregular borders and uneven pigmentation",
             "a severely atypical nevus with irregular borders and color variegation"),
            roi="lesion"),
    Concept("Nevus",
            r"\b(?:benign |common |compound |junctional |intradermal |congenital |melanocytic )*"
            r"(?:nevus|nevi|naevus|naevi|moles?)\b",
            ("a small regular nevus", "a regular nevus", "a slightly larger nevus", "a large nevus",
             "a very large nevus"),
            roi="lesion",
            exclude=r"\b(?:atypical|dysplastic|clark'?s?) (?:melanocytic )?(?:nevus|nevi|naevus|naevi|mole)"),
    Concept("Basal cell carcinoma",
            r"\bbasal cell carcinoma\b|\bbcc\b|\bbasalioma\b|\brodent ulcer\b",
            ("a small pearly basal cell carcinoma", "a nodular basal cell carcinoma",
             "a nodular basal cell carcinoma with arborizing vessels", "an ulcerated basal cell carcinoma",
             "a large ulcerated basal cell carcinoma"),
            roi="lesion and its surrounding skin", grades=((r"ulcerat|rodent", 0.75), (r"superficial", 0.25))),
    Concept("Squamous cell carcinoma",
            r"\bsquamous cell carcinoma\b|\bscc\b|\bbowen'?s disease\b|\bkeratoacanthoma\b",
            ("a small squamous cell carcinoma in situ", "a scaly squamous cell carcinoma",
             "a hyperkeratotic squamous cell carcinoma", "an ulcerated squamous cell carcinoma",
             "a large ulcerated invasive squamous cell carcinoma"),
            roi="lesion and its surrounding skin", grades=((r"in situ|bowen", 0.2), (r"ulcerat|invasive", 0.75))),
    Concept("Seborrheic keratosis",
            r"\bseb+orr?h?o?eic keratos[ie]s\b|\bseborrh?oeic wart\b|\bsk\b",
            ("a small flat seborrheic keratosis", "a waxy seborrheic keratosis",
             "a raised stuck-on seborrheic keratosis", "a large verrucous seborrheic keratosis",
             "a very large verrucous seborrheic keratosis"),
            roi="lesion"),
    Concept("Actinic keratosis",
            r"\bactinic keratos[ie]s\b|\bsolar keratos[ie]s\b",
            ("a faint actinic keratosis", "a scaly actinic keratosis", "a thick actinic keratosis",
             "a hypertrophic actinic keratosis", "a large hypertrophic actinic keratosis"),
            roi="lesion"),
    Concept("Asymmetry", r"\basymmetr(?:y|ic|ical)\b",
            ("slight asymmetry",) * 2 + ("asymmetry",) * 3, roi="lesion", kind="feature"),
    Concept("Border irregularity",
            r"\birregular (?:borders?|margins?|edges?)\b|\bborder irregularit\w*|\bill-defined (?:borders?|margins?)\b|"
            r"\bnotched (?:borders?|margins?)\b|\bpoorly (?:defined|circumscribed)\b",
            ("slightly irregular borders",) * 2 + ("irregular borders",) * 3, roi="lesion", kind="feature"),
    Concept("Color variegation",
            r"\bcolou?r variegation\b|\bvariegated\b|\bmulti-?colou?red\b|\bmultiple colou?rs\b|"
            r"\b(?:uneven|irregular) (?:pigmentation|colou?r)\b|\bblue-?white veil\b",
            ("slightly uneven color",) * 2 + ("color variegation",) * 3, roi="lesion", kind="feature"),
    Concept("Large diameter",
            r"\b(?:diameter|size) (?:of |greater than |over |>\s?)?(?:[6-9]|[1-9]\d)(?:\.\d+)? ?mm\b|"
            r"\b(?:[6-9]|[1-9]\d)(?:\.\d+)? ?mm (?:in )?(?:diameter|across)\b|\b(?:[6-9]|[1-9]\d)(?:\.\d+)? ?mm "
            + _LESION + r"\b|\b(?:[1-9]\d?(?:\.\d+)?) ?cm\b",
            ("a diameter over 6 mm",) * 5, roi="lesion", kind="feature"),
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
