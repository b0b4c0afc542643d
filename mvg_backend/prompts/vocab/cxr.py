"""Chest X-ray: the 14 ChestX-ray14 / NegBio observations (label names as in ChestX-ray14)."""

from __future__ import annotations

from . import Concept, DomainVocab

_HEART = r"(?:heart|cardiac|cardio-?mediastinal|cardiopericardial)(?: size| silhouette| shadow| contours?| border)?"

CONCEPTS = (
    Concept("Atelectasis",
            r"\batelecta\w*|\b(?:lobar|lung|lobe|segmental|subsegmental) collapse\b|"
            r"\bcollapse of the (?:\w+ ){0,3}(?:lobe|lung)\b|\bcollapsed (?:\w+ ){0,2}(?:lobe|lung)\b",
            ("minimal {side}{loc}atelectasis", "mild {side}{loc}atelectasis", "moderate {side}{loc}atelectasis",
             "extensive {side}{loc}atelectasis", "complete {side}{loc}lobar collapse"),
            roi="{side}lower lung"),
    Concept("Cardiomegaly",
            rf"\bcardiomegaly\b|\b{_HEART}(?:\s+[\w/-]+){{0,5}}?\s+(?:enlarged|large|big|borderline)\b|"
            rf"\bborderline (?:enlarged )?{_HEART}\b|\b(?:enlarged|enlargement of the) (?:\w+ ){{0,2}}"
            r"(?:heart|cardiac silhouette|cardiac shadow)\b|\bcardiac enlargement\b|"
            r"\b(?:increase|increased|enlargement) (?:in|of) (?:the )?(?:heart|cardiac) (?:size|silhouette)\b",
            ("borderline cardiomegaly", "mild cardiomegaly", "moderate cardiomegaly", "severe cardiomegaly",
             "massive cardiomegaly"),
            roi="heart", exclude=r"\b(?:hilar|lymph|aort\w*|mediastinum|mediastinal) ", default_severity=0.3),
    Concept("Effusion",
            r"\b(?:pleural )?effusions?\b|\bpleural fluid\b|\bhydro-?pneumothora(?:x|ces)\b|\bhydrothorax\b",
            ("a trace {side}pleural effusion", "a small {side}pleural effusion", "a moderate {side}pleural effusion",
             "a large {side}pleural effusion", "a very large {side}pleural effusion"),
            roi="{side}lower lung (costophrenic angle)",
            exclude=r"\b(?:pericardial|joint|subpulmonic?\s+air|knee|pericardium)\s+(?:effusions?|fluid)\b"),
    Concept("Infiltration",
            r"\binfiltrat(?:e|es|ion|ions|ive)\b",
            ("a faint {side}{loc}infiltrate", "a patchy {side}{loc}infiltrate", "a moderate {side}{loc}infiltrate",
             "an extensive {side}{loc}infiltrate", "extensive bilateral infiltrates"),
            roi="{side}{loc}lung"),
    Concept("Mass",
            r"\bmass(?:es)?\b(?! effect)|\bmass-?like\b|\bmasslike\b",
            ("a small {side}{loc}lung mass", "a {side}{loc}lung mass", "a large {side}{loc}lung mass",
             "a very large {side}{loc}lung mass", "a huge {side}{loc}lung mass"),
            roi="{side}{loc}lung", exclude=r"\b(?:breast|thyroid|neck|abdominal|renal|liver|adrenal) mass"),
    Concept("Nodule",
            r"\b(?:micro)?nodules?\b",
            ("a tiny {side}{loc}pulmonary nodule", "a small {side}{loc}pulmonary nodule",
             "a {side}{loc}pulmonary nodule", "a large {side}{loc}pulmonary nodule",
             "multiple large {side}pulmonary nodules"),
            roi="{side}{loc}lung", exclude=r"\bnodular (?:thyroid|goiter)"),
    Concept("Pneumonia",
            r"\b(?:broncho)?pneumonias?\b|\bpneumonitis\b",
            ("early {side}{loc}pneumonia", "mild {side}{loc}pneumonia", "moderate {side}{loc}pneumonia",
             "severe {side}{loc}pneumonia", "severe multilobar pneumonia"),
            roi="{side}{loc}lung"),
    Concept("Pneumothorax",
            r"\b(?:hydro-?)?pneumothora(?:x|ces)\b|\bpneumothoraxes\b",
            ("a tiny {side}apical pneumothorax", "a small {side}pneumothorax", "a moderate {side}pneumothorax",
             "a large {side}pneumothorax", "a tension {side}pneumothorax"),
            roi="{side}upper lung (apex and periphery)"),
    Concept("Consolidation",
            r"\bconsolidat(?:ion|ions|ive|ed)\b",
            ("faint {side}{loc}consolidation", "patchy {side}{loc}consolidation", "{side}{loc}consolidation",
             "dense {side}{loc}consolidation", "dense {side}lobar consolidation with air bronchograms"),
            roi="{side}{loc}lung"),
    Concept("Edema",
            r"\b(?:o)?edema\b",
            ("minimal interstitial pulmonary edema", "mild pulmonary edema", "moderate pulmonary edema",
             "severe pulmonary edema", "severe alveolar pulmonary edema"),
            roi="both lungs (perihilar)", exclude=r"\b(?:soft tissue|subcutaneous|scalp|extremity|facial) (?:o)?edema"),
    Concept("Emphysema",
            r"\bemphysema(?:tous)?\b",
            ("minimal emphysema", "mild emphysema", "moderate emphysema", "severe emphysema",
             "severe bullous emphysema"),
            roi="both lungs (upper zones)", exclude=r"\bsubcutaneous emphysema|\bsoft tissue emphysema"),
    Concept("Fibrosis",
            r"\bfibros(?:is|es)\b|\bfibrotic\b|\bhoneycomb\w*",
            ("minimal {side}{loc}pulmonary fibrosis", "mild {side}{loc}pulmonary fibrosis",
             "moderate {side}{loc}pulmonary fibrosis", "severe {side}{loc}pulmonary fibrosis",
             "end-stage pulmonary fibrosis with honeycombing"),
            roi="both lungs (lower zones)", exclude=r"\bcystic fibrosis\b"),
    Concept("Pleural_Thickening",
            r"\bpleural(?:-based)? thickening\b|\bthickening of the (?:\w+ ){0,2}pleura\w*|\bthickened pleura\w*|"
            r"\bpleural[- ]parenchymal thickening\b|"
            r"\bapical (?:pleural )?(?:cap|capping)\b|\bfibrothorax\b|\bfissural thickening\b|"
            r"\bthicken(?:ed|ing) (?:of |in )?the (?:\w+ )?fissures?\b",
            ("minimal {side}pleural thickening", "mild {side}pleural thickening", "moderate {side}pleural thickening",
             "marked {side}pleural thickening", "extensive {side}pleural thickening"),
            roi="{side}lung periphery (pleura)"),
    Concept("Hernia",
            r"\b(?:hiatal|hiatus|diaphragmatic|paraesophageal|bochdalek|morgagni) hernia\b|\bhernia(?:tion)? of\b|"
            r"\bhernia\b",
            ("a small hiatal hernia", "a small hiatal hernia", "a moderate hiatal hernia", "a large hiatal hernia",
             "a very large hiatal hernia"),
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
