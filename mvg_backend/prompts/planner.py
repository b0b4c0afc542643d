"""``plan()``: a clinical report -> ``MVG_PROMPTS``, by the rule engine or an OpenAI-compatible LLM."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

from ..domains import DOMAINS
from ..errors import MVGInputError
from .cache import PlanCache, cache_key
from .llm import PROMPT_VERSION, CheckCancel, LLMEngine, LLMError, LLMSettings
from .rules import aggregate, check_text, mentions
from .stages import Staged, build_stages, check_stage_args, render_template, resolve_template
from .types import PromptPlan, Stage
from .vocab import DomainVocab, check_max_severity, get_vocab
from .vocab.cxr import CXR_LABELS
from .vocab.skin import PIGMENTED

log = logging.getLogger("mvg.prompts")

ENGINES = ("rules", "openai-compatible")
MAX_REPORT_CHARS = 20_000


def report_sha256(report: str) -> str:
    return hashlib.sha256(report.strip().encode("utf-8")).hexdigest()


def _check_report(report: object) -> str:
    if not check_text(report).strip():
        raise MVGInputError("report: empty; paste the clinical report (findings and impression) into the report box.")
    if len(report) > MAX_REPORT_CHARS:
        raise MVGInputError(f"report: {len(report)} characters is more than {MAX_REPORT_CHARS}; paste only the "
                            "findings and impression.")
    return report


def _atypical(lesions: list[Staged], features: list[Staged], findings: tuple, vocab: DomainVocab,
              notes: list[str]) -> Staged | None:
    """Skin: a pigmented lesion (a nevus, or no type named) with positive ABCD features is an atypical pigmented
    lesion whose features progress; never a melanoma unless the report says melanoma."""
    if vocab.domain != "skin" or not features or any(s.concept.name not in PIGMENTED for s in lesions):
        return None
    concept = vocab.concept("Atypical pigmented lesion")
    named = [s.concept.name for s in lesions if s.concept.name != concept.name]
    names = ", ".join(f.concept.name.lower() for f in features)
    notes.append(f"positive dermoscopic features ({names}): staged as an atypical pigmented lesion whose features "
                 "progress" + (f" (reported as {', '.join(n.lower() for n in named)})" if named else "") + ".")
    if any(f.name == "Melanoma" and f.certainty == "uncertain" for f in findings):
        notes.append("melanoma is suspected but uncertain in the report: it is not staged as melanoma.")
    base = next((s for s in lesions if s.concept is concept), None)
    finding = base.finding if base else replace(features[0].finding, name=concept.name)
    return Staged(finding, concept, base.severity if base else concept.default_severity)


def rules_plan(report: str, domain: str, stages: int = 3, direction: str = "progression",
               caption_style: str = "mvg", template: str = "", max_severity: str = "severe") -> PromptPlan:
    """The offline rule engine: extract findings, then stage the positive ones. Never invents a finding.

    Each positive finding follows its natural-history ladder (see ``vocab``), at most up to ``max_severity``
    (``mild``, ``moderate``, ``severe`` (default: no end-stage wording) or ``end-stage``).
    """
    vocab = get_vocab(domain)
    check_stage_args(stages, direction)
    check_max_severity(max_severity)
    fmt = resolve_template(vocab, caption_style, template)
    found = aggregate(mentions(_check_report(report), vocab))
    # a plan never carries report text: keep the sentence index, drop the sentence
    findings = tuple(replace(f, evidence="") for f, _ in found)
    staged = [Staged(f, vocab.concept(f.name), s) for f, s in found if f.certainty == "positive"]
    lesions = [s for s in staged if s.concept.kind != "feature"]
    features = [s for s in staged if s.concept.kind == "feature"]
    notes = []
    hedged = [f.name for f in findings if f.certainty == "uncertain"]
    if hedged:
        notes.append(f"uncertain, not staged: {', '.join(hedged)}")
    atypical = _atypical(lesions, features, findings, vocab, notes)
    if atypical is not None or lesions:
        built, how = build_stages(lesions, features, vocab, stages, direction, fmt, max_severity, atypical)
        notes.extend(how)
    else:
        notes.insert(0, "no positive finding in the report: every stage is the normal image (no disease was "
                        "invented). Write stages with MVG Prompt List, or use the openai-compatible engine with "
                        "allow_de_novo, to show a new disease.")
        built = [Stage(prompt=vocab.normal, negative_prompt=vocab.negative, name="no findings", severity=0.0)]
    return PromptPlan(stages=tuple(built), domain=domain, direction=direction, engine="rules", findings=findings,
                      report_sha256=report_sha256(report), notes=tuple(notes))


def invented_by(report: str, vocab: DomainVocab):
    """``invented(texts)``: the domain's findings that ``texts`` (stage prompts, finding names) show as present
    or hedged, but that the report does not state as present (by the rule engine's reading of it)."""
    found = [f for f, _ in aggregate(mentions(report, vocab)) if f.certainty == "positive"]
    stated = {f.name for f in found}
    if any(vocab.concept(f.name).kind == "feature" for f in found):
        stated.add("Atypical pigmented lesion")  # what positive ABCD features are staged as (skin)

    def invented(texts: list[str]) -> list[str]:
        shown = [m.concept.name for text in texts for m in mentions(text, vocab)
                 if m.certainty != "negated" and m.concept.kind != "feature"]
        return sorted(set(shown) - stated)

    return invented


def plan(report: str, domain: str, stages: int = 3, direction: str = "progression", engine: str = "rules", *,
         caption_style: str = "mvg", template: str = "", max_severity: str = "severe",
         llm: LLMSettings | None = None, fallback: bool = True,
         allow_de_novo: bool = False, cache_dir: str | Path | None = None,
         check_cancel: CheckCancel | None = None) -> PromptPlan:
    """A clinical report -> ``MVG_PROMPTS`` (:class:`PromptPlan`) of ``stages`` stages.

    ``engine="rules"`` (offline, default) or ``"openai-compatible"`` (``llm`` settings; results are cached on
    disk in ``cache_dir`` by report hash, endpoint, model and parameters). With ``fallback`` an LLM failure
    gives the rule engine's plan, with ``fallback_reason`` set. The report text is never stored in the result.
    For a known domain an LLM plan that stages a finding the report does not state as present is refused
    (one repair request, then the fallback) unless ``allow_de_novo``, which marks it DE-NOVO instead.
    ``check_cancel`` is called at least every 0.1 s while the LLM is awaited; it cancels by raising (e.g.
    ComfyUI's ``throw_exception_if_processing_interrupted``) or by returning True.
    ``max_severity`` caps the rule engine's terminal state (``MAX_SEVERITY``; the default ``severe`` stops short
    of end-stage wording); the rule engine may give fewer stages than asked, with a note, when a finding's
    ladder has fewer distinct states.
    """
    _check_report(report)
    if domain not in DOMAINS:
        raise MVGInputError(f"domain: {domain!r} is not one of {', '.join(DOMAINS)}.")
    if engine not in ENGINES:
        raise MVGInputError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}.")
    check_stage_args(stages, direction)
    check_max_severity(max_severity)
    if engine == "rules":
        return rules_plan(report, domain, stages, direction, caption_style, template, max_severity)

    settings = llm or LLMSettings()
    known = domain != "other"
    if known:
        vocab = get_vocab(domain)
        example = render_template(resolve_template(vocab, caption_style, template), findings=vocab.example_finding,
                                  modality=vocab.modality, stage="stage 2", severity="severe")
    else:
        example = "a medical image of the finding at a more advanced stage"
    digest = report_sha256(report)
    key = cache_key({"v": PROMPT_VERSION, "report_sha256": digest, "domain": domain, "stages": stages,
                     "direction": direction, "example": example, "de_novo": allow_de_novo, **settings.cache_parts()})
    cache = PlanCache(cache_dir)
    cached = cache.get(key)
    if cached is not None:
        log.info("MVG ReportToPrompts: plan from the cache (%s)", key[:12])
        return cached
    llm_engine = LLMEngine(settings, check_cancel)
    try:
        result = llm_engine.plan(
            report, domain=domain, stages=stages, direction=direction, example=example,
            labels=CXR_LABELS if domain == "chest_xray" else (), allow_de_novo=allow_de_novo, report_sha256=digest,
            invented=invented_by(report, vocab) if known else None)
    except LLMError as exc:
        if not fallback or not known:
            raise
        log.warning("MVG ReportToPrompts: LLM engine failed (%s); falling back to the rule engine", exc.kind)
        ruled = rules_plan(report, domain, stages, direction, caption_style, template, max_severity)
        return replace(ruled, fallback_reason=f"{exc.kind}: {exc}",
                       notes=ruled.notes + (f"the LLM engine failed ({exc.kind}); this plan is the rule engine's",))
    cache.put(key, result)  # a cache that cannot be written only warns: the answer is kept
    return result
