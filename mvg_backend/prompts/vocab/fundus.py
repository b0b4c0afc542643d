"""Fundus photographs: diabetic retinopathy (ICDR grades), macular edema, glaucoma cues, AMD cues."""

from __future__ import annotations

from . import Concept, DomainVocab

CONCEPTS = (
    Concept("Diabetic retinopathy",
            r"\b(?:non-?proliferative |proliferative |background |pre-?proliferative )?diabetic retinopathy\b|"
            r"\bn?pdr\b|\b(?:non-?)?proliferative retinopathy\b|\bmicroaneurysms?\b|\bneovasculari[sz]ation\b|"
            r"\bvenous beading\b|\bdot[- ](?:and[- ])?blot h(?:a)?emorrhages?\b|\bintraretinal microvascular",
            ("mild nonproliferative diabetic retinopathy with a few microaneurysms",
             "mild nonproliferative diabetic retinopathy with microaneurysms",
             "moderate nonproliferative diabetic retinopathy with hemorrhages and hard exudates",
             "severe nonproliferative diabetic retinopathy with venous beading and extensive hemorrhages",
             "proliferative diabetic retinopathy with neovascularization"),
            roi="retina (posterior pole)",
            grades=((r"(?<!non)(?<!non-)(?<!pre)(?<!pre-)\bproliferative|\bpdr\b|neovasculari[sz]ation|"
                     r"vitreous h(?:a)?emorrhage|preretinal", 0.95),
                    (r"\bsevere\b|venous beading|intraretinal microvascular|\birma\b", 0.75),
                    (r"\bmoderate\b|dot[- ](?:and[- ])?blot|hard exudates|cotton[- ]wool", 0.5),
                    (r"\bmild\b|\bminimal\b|\bearly\b|\bbackground\b|microaneurysm", 0.25))),
    Concept("Macular edema",
            r"\b(?:diabetic |cystoid |clinically significant )?macular (?:o)?edema\b|\bc?s?dme\b|\bcsme\b|"
            r"\bcme\b|\bmacular thickening\b",
            ("minimal macular edema", "mild macular edema with a few hard exudates near the fovea",
             "moderate macular edema with hard exudates", "severe center-involving macular edema",
             "severe center-involving macular edema with circinate exudates"),
            roi="macula", grades=((r"center[- ]involv|clinically significant|\bcsme\b", 0.75),)),
    Concept("Glaucoma",
            r"\bglaucoma(?:tous)?\b|\bcup[- ]to[- ]dis[ck] ratio\b|\bc/d(?: ratio)?\b|\bcdr\b|\bcupping\b|"
            r"\benlarged (?:optic )?cup\b|\bneuroretinal rim (?:thinning|notch\w*|loss)\b",
            ("a slightly enlarged optic cup", "an enlarged optic cup with a cup-to-disc ratio of 0.6",
             "glaucomatous optic disc cupping with a cup-to-disc ratio of 0.7",
             "advanced glaucomatous cupping with a cup-to-disc ratio of 0.8 and a thin neuroretinal rim",
             "severe glaucomatous cupping with a cup-to-disc ratio of 0.9"),
            roi="optic disc",
            grades=((r"(?:ratio|c/d|cdr)(?: of| is| was| =|:)? ?0?\.9\d*", 0.95),
                    (r"(?:ratio|c/d|cdr)(?: of| is| was| =|:)? ?0?\.8\d*", 0.8),
                    (r"(?:ratio|c/d|cdr)(?: of| is| was| =|:)? ?0?\.7\d*", 0.6),
                    (r"(?:ratio|c/d|cdr)(?: of| is| was| =|:)? ?0?\.6\d*", 0.45),
                    (r"(?:ratio|c/d|cdr)(?: of| is| was| =|:)? ?0?\.5\d*", 0.3),
                    (r"(?:ratio|c/d|cdr)(?: of| is| was| =|:)? ?0?\.[0-4]\d*", -1.0))),  # normal cupping
    Concept("Age-related macular degeneration",
            r"\bage[- ]related macular degeneration\b|\bar?md\b|\bmacular degeneration\b|\bdrusen\b|"
            r"\bgeographic atrophy\b|\bchoroidal neovasculari[sz]ation\b|\bcnv\b",
            ("a few small drusen in the macula", "small drusen in the macula", "large soft drusen in the macula",
             "geographic atrophy of the macula", "extensive geographic atrophy with a macular scar"),
            roi="macula",
            grades=((r"geographic atrophy|neovascular|\bwet\b|\bcnv\b|disciform|\blate\b", 0.8),
                    (r"large drusen|soft drusen|\bintermediate\b|confluent", 0.5),
                    (r"small drusen|hard drusen|\bearly\b|few drusen", 0.25))),
)

VOCAB = DomainVocab(
    domain="fundus",
    modality="fundus photograph",
    concepts=CONCEPTS,
    normal="a normal fundus photograph",
    negative="text, letters, watermark, blurry, overexposed, low quality",
    example_finding="moderate nonproliferative diabetic retinopathy with hemorrhages",
    locations=r"\b(?:macula|fovea\w*|optic (?:disc|disk|nerve)|superotemporal|inferotemporal|superonasal|"
              r"inferonasal|temporal|nasal|peripapillary|posterior pole|periphery|arcades?)\b",
)
