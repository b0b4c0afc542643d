"""Stage prompts (the ``MVG_PROMPTS`` value) and how to build them: by hand, by rules, or by an LLM.

- ``extract_findings(text, domain)``: findings of a report (rule engine);
- ``plan(report, domain, stages=3, direction="progression", engine="rules", max_severity="severe", ...)``: the
  ``MVG_PROMPTS`` value (natural-history ladders per disease, distinct stages);
- ``parse_prompt_lines(text)``: stages written by hand (MVG Prompt List).
"""

from .llm import LLMError, LLMSettings
from .planner import DOMAINS, ENGINES, plan, report_sha256
from .rules import extract_findings
from .types import Finding, PromptPlan, Stage, parse_prompt_lines
from .vocab import CAPTION_STYLES, MAX_SEVERITY
from .vocab.cxr import CXR_LABELS

__all__ = [
    "CAPTION_STYLES", "CXR_LABELS", "DOMAINS", "ENGINES", "Finding", "LLMError", "LLMSettings", "MAX_SEVERITY",
    "PromptPlan", "Stage",
    "extract_findings", "parse_prompt_lines", "plan", "report_sha256",
]
