"""Chest X-ray: the 14 ChestX-ray14 / NegBio observations (label names as in ChestX-ray14).

Each ladder follows the finding's natural history in radiology-report wording: effusion small -> moderate ->
large; pneumothorax small apical -> moderate -> large; atelectasis subsegmental/plate-like -> segmental ->
lobar collapse; edema interstitial -> alveolar. End-stage wording (massive cardiomegaly, tension
pneumothorax, whole-lung collapse, honeycombing) needs ``max_severity="end-stage"``.
"""

from __future__ import annotations

from . import E, I, M, Concept, DomainVocab

_HEART = r"(?:heart|cardiac|cardio-?mediastinal|cardiopericardial)(?: size| silhouette| shadow| contours?| border)?"

CONCEPTS = (
    Concept("Atelectasis",
            r"\batelecta\w*|\b(?:lobar|lung|lobe|segmental|subsegmental) collapse\b|"
            r"\bcollapse of the (?:\w+ ){0,3}(?:lobe|lung)\b|\bcollapsed (?:\w+ ){0,2}(?:lobe|lung)\b",
            (I(0.1, "minimal {side}{loc}atelectasis"), M(0.25, "{side}{loc}subsegmental plate-like atelectasis"),
             I(0.375, "{side}{loc}subsegmental atelectasis with mild volume loss"),
             M(0.5, "{side}{loc}segmental atelectasis"), I(0.625, "{side}{loc}segmental atelectasis with volume loss"),
             M(0.75, "{side}{lobe}collapse"), I(0.875, "{side}{lobe}collapse with mediastinal shift"),
             E(0.97, "complete {side}lung collapse")),
            roi="{side}{zone}lung", default_zone="lower",
            grades=((r"\bcomplete (?:\w+ ){0,3}collapse|\b(?:whole|entire) lung", 0.97),
                    (r"\blobar\b|\b(?:lobe|lung) collapse|\bcollapse of|\bcollapsed", 0.75),
                    (r"(?<!sub)\bsegmental\b", 0.5),
                    (r"\bsubsegmental\b|\bplate-?like\b|\bdiscoid\b|\blinear\b|\bstreaky\b", 0.25))),
    Concept("Cardiomegaly",
            rf"\bcardiomegaly\b|\b{_HEART}(?:\s+[\w/-]+){{0,5}}?\s+(?:enlarged|large|big|borderline)\b|"
            rf"\bborderline (?:enlarged )?{_HEART}\b|\b(?:enlarged|enlargement of the) (?:\w+ ){{0,2}}"
            r"(?:heart|cardiac silhouette|cardiac shadow)\b|\bcardiac enlargement\b|"
            r"\b(?:increase|increased|enlargement) (?:in|of) (?:the )?(?:heart|cardiac) (?:size|silhouette)\b",
            (M(0.15, "borderline cardiomegaly"), M(0.25, "mild cardiomegaly"),
             I(0.375, "mild to moderate cardiomegaly"), M(0.5, "moderate cardiomegaly"),
             I(0.625, "moderate to severe cardiomegaly"), M(0.75, "severe cardiomegaly"),
             I(0.875, "very severe cardiomegaly"), E(0.97, "massive cardiomegaly")),
            roi="heart and the adjacent lung fields", exclude=r"\b(?:hilar|lymph|aort\w*|mediastinum|mediastinal) ",
            default_severity=0.3),
    Concept("Effusion",
            r"\b(?:pleural )?effusions?\b|\bpleural fluid\b|\bhydro-?pneumothora(?:x|ces)\b|\bhydrothorax\b",
            (M(0.1, "a trace {side}pleural effusion"), M(0.25, "a small {side}pleural effusion"),
             I(0.375, "a small to moderate {side}pleural effusion"), M(0.5, "a moderate {side}pleural effusion"),
             I(0.625, "a moderate to large {side}pleural effusion"), M(0.75, "a large {side}pleural effusion"),
             I(0.9, "a very large {side}pleural effusion"),
             E(0.97, "a massive {side}pleural effusion with mediastinal shift")),
            roi="{side}lower lung (costophrenic angle)",
            exclude=r"\b(?:pericardial|joint|subpulmonic?\s+air|knee|pericardium)\s+(?:effusions?|fluid)\b"),
    Concept("Infiltration",
            r"\binfiltrat(?:e|es|ion|ions|ive)\b",
            (M(0.1, "a faint {side}{loc}infiltrate"), M(0.25, "a patchy {side}{loc}infiltrate"),
             I(0.375, "patchy {side}{loc}infiltrates"), M(0.5, "a moderate {side}{loc}infiltrate"),
             I(0.625, "confluent {side}{loc}infiltrates"), M(0.75, "an extensive {side}{loc}infiltrate"),
             E(0.97, "extensive diffuse bilateral infiltrates")),
            roi="{side}{zone}lung"),
    Concept("Mass",
            r"\bmass(?:es)?\b(?! effect)|\bmass-?like\b|\bmasslike\b",
            (M(0.25, "a small {side}{loc}lung mass"), I(0.375, "a lobulated {side}{loc}lung mass"),
             M(0.5, "a {side}{loc}lung mass"), I(0.625, "an enlarging {side}{loc}lung mass"),
             M(0.75, "a large {side}{loc}lung mass"), I(0.9, "a very large {side}{loc}lung mass"),
             E(0.97, "a huge {side}{loc}lung mass")),
            roi="{side}{zone}lung", exclude=r"\b(?:breast|thyroid|neck|abdominal|renal|liver|adrenal) mass"),
    Concept("Nodule",
            r"\b(?:micro)?nodules?\b",
            (M(0.1, "a tiny {side}{loc}pulmonary nodule"), M(0.25, "a small {side}{loc}pulmonary nodule"),
             I(0.375, "a small lobulated {side}{loc}pulmonary nodule"), M(0.5, "a {side}{loc}pulmonary nodule"),
             I(0.625, "an enlarging {side}{loc}pulmonary nodule"), M(0.75, "a large {side}{loc}pulmonary nodule"),
             I(0.9, "a large {side}{loc}pulmonary nodule with spiculated margins"),
             E(0.97, "multiple large {side}pulmonary nodules")),
            roi="{side}{zone}lung", exclude=r"\bnodular (?:thyroid|goiter)"),
    Concept("Pneumonia",
            r"\b(?:broncho)?pneumonias?\b|\bpneumonitis\b",
            (M(0.1, "early {side}{loc}pneumonia"), M(0.25, "mild {side}{loc}pneumonia"),
             I(0.375, "patchy {side}{loc}pneumonia"), M(0.5, "moderate {side}{loc}pneumonia"),
             I(0.625, "moderate to severe {side}{loc}pneumonia"), M(0.75, "severe {side}{loc}pneumonia"),
             I(0.9, "severe multilobar {side}pneumonia"), E(0.97, "severe bilateral multilobar pneumonia")),
            roi="{side}{zone}lung"),
    Concept("Pneumothorax",
            r"\b(?:hydro-?)?pneumothora(?:x|ces)\b|\bpneumothoraxes\b",
            (M(0.1, "a tiny {side}apical pneumothorax"), M(0.25, "a small {side}apical pneumothorax"),
             I(0.375, "a small {side}pneumothorax along the lateral chest wall"),
             M(0.5, "a moderate {side}pneumothorax"), I(0.625, "a moderate to large {side}pneumothorax"),
             M(0.75, "a large {side}pneumothorax"), I(0.9, "a very large {side}pneumothorax"),
             E(0.97, "a tension {side}pneumothorax")),
            roi="{side}upper lung (apex and periphery)", grades=((r"\btension\b", 0.97),)),
    Concept("Consolidation",
            r"\bconsolidat(?:ion|ions|ive|ed)\b",
            (M(0.1, "faint {side}{loc}consolidation"), M(0.25, "patchy {side}{loc}consolidation"),
             I(0.375, "patchy confluent {side}{loc}consolidation"), M(0.5, "{side}{loc}consolidation"),
             I(0.625, "confluent {side}{loc}consolidation"), M(0.75, "dense {side}{loc}consolidation"),
             I(0.9, "dense {side}{loc}consolidation with air bronchograms"),
             E(0.97, "dense {side}multilobar consolidation with air bronchograms")),
            roi="{side}{zone}lung"),
    Concept("Edema",
            r"\b(?:o)?edema\b",
            (M(0.1, "minimal interstitial pulmonary edema"), M(0.25, "mild interstitial pulmonary edema"),
             I(0.375, "interstitial pulmonary edema with Kerley B lines"), M(0.5, "moderate pulmonary edema"),
             I(0.625, "moderate pulmonary edema with perihilar haziness"), M(0.75, "severe pulmonary edema"),
             I(0.9, "severe alveolar pulmonary edema"),
             E(0.97, "severe alveolar pulmonary edema in a bat-wing pattern")),
            roi="both lungs (perihilar)", exclude=r"\b(?:soft tissue|subcutaneous|scalp|extremity|facial) (?:o)?edema"),
    Concept("Emphysema",
            r"\bemphysema(?:tous)?\b",
            (M(0.1, "minimal emphysema"), M(0.25, "mild emphysema"), I(0.375, "mild to moderate emphysema"),
             M(0.5, "moderate emphysema"), I(0.625, "moderate to severe emphysema"), M(0.75, "severe emphysema"),
             I(0.9, "severe emphysema with hyperinflated lungs"), E(0.97, "severe bullous emphysema")),
            roi="both lungs (upper zones)", exclude=r"\bsubcutaneous emphysema|\bsoft tissue emphysema"),
    Concept("Fibrosis",
            r"\bfibros(?:is|es)\b|\bfibrotic\b|\bhoneycomb\w*",
            (M(0.1, "minimal {side}{loc}pulmonary fibrosis"), M(0.25, "mild {side}{loc}pulmonary fibrosis"),
             I(0.375, "mild to moderate {side}{loc}pulmonary fibrosis"),
             M(0.5, "moderate {side}{loc}pulmonary fibrosis"),
             I(0.625, "moderate to severe {side}{loc}pulmonary fibrosis"),
             M(0.75, "severe {side}{loc}pulmonary fibrosis"),
             E(0.97, "end-stage pulmonary fibrosis with honeycombing")),
            roi="both lungs (lower zones)", exclude=r"\bcystic fibrosis\b"),
    Concept("Pleural_Thickening",
            r"\bpleural(?:-based)? thickening\b|\bthickening of the (?:\w+ ){0,2}pleura\w*|\bthickened pleura\w*|"
            r"\bpleural[- ]parenchymal thickening\b|"
            r"\bapical (?:pleural )?(?:cap|capping)\b|\bfibrothorax\b|\bfissural thickening\b|"
            r"\bthicken(?:ed|ing) (?:of |in )?the (?:\w+ )?fissures?\b",
            (M(0.1, "minimal {side}pleural thickening"), M(0.25, "mild {side}pleural thickening"),
             I(0.375, "mild to moderate {side}pleural thickening"), M(0.5, "moderate {side}pleural thickening"),
             I(0.625, "moderate to marked {side}pleural thickening"), M(0.75, "marked {side}pleural thickening"),
             I(0.9, "extensive {side}pleural thickening"),
             E(0.97, "extensive {side}pleural thickening with a fibrothorax")),
            roi="{side}lung periphery (pleura)"),
    Concept("Hernia",
            r"\b(?:hiatal|hiatus|diaphragmatic|paraesophageal|bochdalek|morgagni) hernia\b|\bhernia(?:tion)? of\b|"
            r"\bhernia\b",
            (M(0.25, "a small hiatal hernia"), I(0.375, "a small to moderate hiatal hernia"),
             M(0.5, "a moderate hiatal hernia"), I(0.625, "a moderate to large hiatal hernia"),
             M(0.75, "a large hiatal hernia"), I(0.9, "a very large hiatal hernia"),
             E(0.97, "a giant hiatal hernia with an intrathoracic stomach")),
            roi="lower mediastinum (retrocardiac)", exclude=r"\b(?:disc|disk|inguinal|umbilical|ventral) hernia"),
)

VOCAB = DomainVocab(
    domain="chest_xray",
    modality="chest x-ray",
    concepts=CONCEPTS,
    normal="a normal chest x-ray",
    negative="text, letters, annotations, watermark, blurry, low quality",
    example_finding="a large right pleural effusion",
    locations=r"\b(?:(?:right |left )?(?:upper|middle|lower) (?:lobe|lung|zone)s?|lingula\w*|(?:lung )?bases?|"
              r"basilar|bibasilar|apex|apices|apical|mid ?lungs?|mid-lung|perihilar|hilar|hilum|retrocardiac|"
              r"costophrenic|infrahilar|suprahilar)\b",
)
CXR_LABELS = tuple(c.name for c in CONCEPTS)
