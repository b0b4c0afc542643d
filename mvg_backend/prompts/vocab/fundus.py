"""Fundus photographs: diabetic retinopathy (ICDR grades), macular edema, glaucoma cues, AMD cues.

Ladders: ICDR mild -> moderate -> severe NPDR -> PDR (vitreous hemorrhage is end-stage); AMD early (small
drusen) -> intermediate (large drusen) -> advanced: geographic atrophy, or choroidal neovascularisation when
the report says neovascular/wet/CNV (the plan's notes name the course); glaucoma by cup-to-disc ratio.
"""

from __future__ import annotations

from . import E, I, M, Concept, DomainVocab

CONCEPTS = (
    Concept("Diabetic retinopathy",
            r"\b(?:non-?proliferative |proliferative |background |pre-?proliferative )?diabetic retinopathy\b|"
            r"\bn?pdr\b|\b(?:non-?)?proliferative retinopathy\b|\bmicroaneurysms?\b|\bneovasculari[sz]ation\b|"
            r"\bvenous beading\b|\bdot[- ](?:and[- ])?blot h(?:a)?emorrhages?\b|\bintraretinal microvascular",
            (M(0.25, "mild nonproliferative diabetic retinopathy with a few microaneurysms"),
             I(0.375, "moderate nonproliferative diabetic retinopathy with scattered hemorrhages"),
             M(0.5, "moderate nonproliferative diabetic retinopathy with hemorrhages and hard exudates"),
             I(0.625, "moderate nonproliferative diabetic retinopathy with hemorrhages, hard exudates and cotton wool "
                      "spots"),
             M(0.75, "severe nonproliferative diabetic retinopathy with venous beading and extensive hemorrhages"),
             I(0.8, "severe nonproliferative diabetic retinopathy with venous beading and intraretinal microvascular "
                    "abnormalities"),
             M(0.9, "proliferative diabetic retinopathy with neovascularization"),
             E(0.97, "advanced proliferative diabetic retinopathy with vitreous hemorrhage")),
            roi="retina (posterior pole)",
            exclude=r"\bchoroidal neovasculari[sz]ation\b",
            grades=((r"vitreous h(?:a)?emorrhage|preretinal|tractional", 0.97),
                    (r"(?<!non)(?<!non-)(?<!pre)(?<!pre-)\bproliferative|\bpdr\b|neovasculari[sz]ation", 0.9),
                    (r"\bsevere\b|venous beading|intraretinal microvascular|\birma\b", 0.75),
                    (r"\bmoderate\b|dot[- ](?:and[- ])?blot|hard exudates|cotton[- ]wool", 0.5),
                    (r"\bmild\b|\bminimal\b|\bearly\b|\bbackground\b|microaneurysm", 0.25))),
    Concept("Macular edema",
            r"\b(?:diabetic |cystoid |clinically significant )?macular (?:o)?edema\b|\bc?s?dme\b|\bcsme\b|"
            r"\bcme\b|\bmacular thickening\b",
            (M(0.1, "minimal macular edema"), M(0.25, "mild macular edema with a few hard exudates near the fovea"),
             I(0.375, "mild macular edema with hard exudates near the fovea"),
             M(0.5, "moderate macular edema with hard exudates"),
             I(0.625, "moderate macular edema with hard exudates approaching the fovea"),
             M(0.75, "severe center-involving macular edema"),
             I(0.9, "severe center-involving macular edema with circinate exudates")),
            roi="macula", grades=((r"center[- ]involv|clinically significant|\bcsme\b", 0.75),)),
    Concept("Glaucoma",
            r"\bglaucoma(?:tous)?\b|\bcup[- ]to[- ]dis[ck] ratio\b|\bc/d(?: ratio)?\b|\bcdr\b|\bcupping\b|"
            r"\benlarged (?:optic )?cup\b|\bneuroretinal rim (?:thinning|notch\w*|loss)\b",
            (M(0.3, "a slightly enlarged optic cup with a cup-to-disc ratio of 0.5"),
             M(0.45, "an enlarged optic cup with a cup-to-disc ratio of 0.6"),
             M(0.6, "glaucomatous optic disc cupping with a cup-to-disc ratio of 0.7"),
             I(0.7, "glaucomatous optic disc cupping with a cup-to-disc ratio of 0.75 and rim thinning"),
             M(0.8, "advanced glaucomatous cupping with a cup-to-disc ratio of 0.8 and a thin neuroretinal rim"),
             E(0.95, "severe glaucomatous cupping with a cup-to-disc ratio of 0.9")),
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
            (M(0.15, "a few small drusen in the macula"), M(0.25, "small and medium drusen in the macula"),
             I(0.375, "many medium drusen in the macula"), M(0.5, "large soft drusen in the macula"),
             I(0.6, "large confluent soft drusen with pigmentary changes in the macula"),
             I(0.7, "large confluent drusen with a small area of geographic atrophy in the macula"),
             M(0.8, "geographic atrophy of the macula"), I(0.9, "geographic atrophy of the macula involving the fovea"),
             E(0.97, "extensive geographic atrophy with a macular scar")),
            roi="macula",
            course="geographic atrophy (dry AMD; the report names no neovascularisation)",
            branch=(r"neovascular|\bwet\b|\bcnv\b|disciform|exudative",
                    "choroidal neovascularisation (neovascular AMD, as the report says)",
                    (M(0.8, "neovascular age-related macular degeneration with subretinal fluid"),
                     I(0.9, "neovascular age-related macular degeneration with subretinal hemorrhage"),
                     E(0.97, "a disciform scar in the macula"))),
            grades=((r"geographic atrophy|neovascular|\bwet\b|\bcnv\b|disciform|exudative|\blate\b|\badvanced\b", 0.8),
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
