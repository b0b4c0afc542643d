"""The LLM engine against a real local OpenAI-compatible server (stdlib HTTP on 127.0.0.1) and the real
``openai`` client: structured output, the repair retry, each failure class, the fallback, the disk cache, and
no key anywhere it must not be."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time

import pytest

from fixtures.fake_openai import FakeOpenAI, Reply, completion, error_body
from mvg_backend.errors import MVGInputError
from mvg_backend.prompts import LLMError, LLMSettings, plan
from mvg_backend.prompts.llm import LLMCancelled, LLMPlan, retry_delay
from mvg_backend.prompts.secrets import looks_like_secret, plausible_env_name, scrub

# fake credentials, written as two literals so that secret scanners do not flag this test data
KEY = "sk-" "test-Zq81mV0fakeKEYvalue-do-not-leak"
KEY_ENV = "MVG_TEST_LLM_KEY"
REPORT = ("Findings: Moderate right pleural effusion with adjacent atelectasis. No pneumothorax. "
          "Impression: Right effusion. Patient ID 4471-Q.")


def answer(stages: int = 3, direction: str = "progression", de_novo: bool = False, **changes) -> str:
    values = [0.4 + 0.2 * i for i in range(stages)]
    if direction == "regression":
        values = [0.6 - 0.2 * i for i in range(stages)]
    words = ["moderate", "large", "very large", "massive"]
    doc = {
        "findings": [{"name": "Effusion", "certainty": "positive", "laterality": "right", "location": None,
                      "severity": "moderate"},
                     {"name": "Pneumothorax", "certainty": "negated", "laterality": None, "location": None,
                      "severity": None}],
        "stages": [{"name": words[i % 4], "severity": round(v, 2),
                    "prompt": f"a chest x-ray with a {words[i % 4]} right pleural effusion",
                    "negative_prompt": "text, blurry", "roi_hint": "right lower lung"}
                   for i, v in enumerate(values)],
        "direction": direction, "de_novo": de_novo, "notes": []}
    doc.update(changes)
    return json.dumps(doc)


@pytest.fixture()
def server():
    with FakeOpenAI() as srv:
        yield srv


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def run(server, tmp_path, *, fallback=False, retries=0, timeout=5.0, stages=3, **kwargs):
    """``plan()`` with the test server; ``kwargs`` go to ``plan`` (e.g. ``check_cancel``)."""
    settings = LLMSettings(model="test-model", base_url=server.url, api_key_env=KEY_ENV, timeout=timeout,
                           max_retries=retries, temperature=0.1, seed=7)
    return plan(REPORT, "chest_xray", stages=stages, engine="openai-compatible", llm=settings, fallback=fallback,
                cache_dir=tmp_path / "cache", **kwargs)


def test_success_uses_json_schema_structured_output(server, key, tmp_path):
    server.script.append(Reply(body=completion(answer())))
    result = run(server, tmp_path)

    assert result.engine == "llm:test-model" and result.fallback_reason is None and not result.de_novo
    assert [s.severity for s in result.stages] == [0.4, 0.6, 0.8]
    assert result.stages[2].prompt == "a chest x-ray with a very large right pleural effusion"
    assert result.stages[0].roi_hint == "right lower lung" and result.stages[0].negative_prompt == "text, blurry"
    assert [(f.name, f.certainty) for f in result.findings] == [("Effusion", "positive"), ("Pneumothorax", "negated")]
    assert len(result.report_sha256) == 64

    (path, headers, body), = server.requests
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {KEY}"  # the key is read from the named variable and sent
    assert body["model"] == "test-model" and body["seed"] == 7 and body["temperature"] == 0.1
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == LLMPlan.model_json_schema()
    system, user = body["messages"]
    assert user == {"role": "user", "content": REPORT}
    assert "exactly 3 stage(s)" in system["content"] and "NEVER invent" in system["content"]
    assert "Pleural_Thickening" in system["content"]  # the CXR label names
    assert "a chest x-ray with a large right pleural effusion" in system["content"]  # the caption style example


@pytest.mark.parametrize("bad, reason", [
    ("this is not JSON", "does not match the schema"),
    (answer(stages=2), "expected exactly 3 stages"),
    (answer(stages=3, direction="regression"), "direction must be"),
    (answer(de_novo=True), "de_novo is not allowed"),
    (answer(extra_field=1), "does not match the schema"),
])
def test_one_repair_request_on_invalid_output(server, key, tmp_path, bad, reason):
    server.script.extend([Reply(body=completion(bad)), Reply(body=completion(answer()))])
    result = run(server, tmp_path)
    assert result.engine == "llm:test-model" and len(result.stages) == 3
    assert len(server.requests) == 2
    repair = server.requests[1][2]["messages"]
    assert repair[2] == {"role": "assistant", "content": bad}
    assert repair[3]["role"] == "user" and reason in repair[3]["content"]


def test_invalid_twice_is_an_error(server, key, tmp_path):
    non_monotonic = answer(stages=3)
    doc = json.loads(non_monotonic)
    doc["stages"][0]["severity"] = 0.9
    server.script.extend([Reply(body=completion(json.dumps(doc)))] * 2)
    with pytest.raises(LLMError, match="invalid plan twice .*rise monotonically") as err:
        run(server, tmp_path)
    assert err.value.kind == "invalid_output" and len(server.requests) == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("reply, kind, message", [
    (Reply(status=400, body=error_body("response_format json_schema is not supported")), "bad_request",
     "json_schema is not supported"),
    (Reply(status=401, body=error_body("Incorrect API key provided")), "auth", f"environment variable {KEY_ENV}"),
    (Reply(status=404, body=error_body("model 'test-model' not found")), "not_found", "check the model name"),
    (Reply(status=429, body=error_body("slow down")), "rate_limit", "rate-limiting"),
    (Reply(status=500, body=error_body("boom")), "server", "HTTP 500"),
    (Reply(status=503, body="upstream down", content_type="text/plain"), "server", "HTTP 503"),
    (Reply(body="{not json", content_type="application/json"), "invalid_body", "not JSON"),
    (Reply(body="<html><body>Login</body></html>", content_type="text/html"), "html_body", "text/html"),
    (Reply(body=completion('{"stages": [', finish_reason="length")), "truncated", "max_tokens"),
    (Reply(body={"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}),
     "invalid_body", "without choices"),
])
def test_failure_classes(server, key, tmp_path, reply, kind, message):
    server.script.append(reply)
    with pytest.raises(LLMError, match=message) as err:
        run(server, tmp_path)
    assert err.value.kind == kind
    assert len(server.requests) == 1  # max_retries=0, and no repair for transport failures
    assert KEY not in str(err.value)


def test_timeout(server, key, tmp_path):
    server.script.append(Reply(body=completion(answer()), delay=3.0))
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="did not answer within 0.3 s") as err:
        run(server, tmp_path, timeout=0.3)
    assert err.value.kind == "timeout" and time.monotonic() - t0 < 2.5


def test_connection_refused(key, tmp_path):
    settings = LLMSettings(model="m", base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key_env=KEY_ENV,
                           max_retries=0, timeout=2)
    with pytest.raises(LLMError, match="cannot connect to") as err:
        plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, fallback=False, cache_dir=tmp_path)
    assert err.value.kind == "connection"


def test_retries_with_backoff_then_succeeds(server, key, tmp_path):
    server.script.extend([Reply(status=503, body=error_body("busy")), Reply(body=completion(answer()))])
    result = run(server, tmp_path, retries=1)
    assert result.engine == "llm:test-model" and len(server.requests) == 2


def test_fallback_to_rules_is_marked(server, key, tmp_path):
    server.script.append(Reply(status=500, body=error_body("boom")))
    result = run(server, tmp_path, fallback=True)
    assert result.engine == "rules"
    assert result.fallback_reason.startswith("server: ") and "HTTP 500" in result.fallback_reason
    assert any("LLM engine failed (server)" in n for n in result.notes)
    assert "Effusion (positive; right; moderate)" in result.describe()
    assert "fallback: server" in result.describe()
    assert not list((tmp_path / "cache").glob("*.json")), "a failed call must not be cached"


def test_missing_key_variable(server, monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(LLMError, match=f"environment variable {KEY_ENV} is not set") as err:
        run(server, tmp_path)
    assert err.value.kind == "missing_key" and not server.requests
    assert run(server, tmp_path, fallback=True).fallback_reason.startswith("missing_key")


def test_a_pasted_key_is_refused_without_echoing_it(server, tmp_path):
    settings = LLMSettings(model="m", base_url=server.url, api_key_env=KEY)
    with pytest.raises(MVGInputError, match="NAME of an environment variable") as err:
        plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, cache_dir=tmp_path)
    assert KEY not in str(err.value) and not server.requests


@pytest.mark.parametrize("settings, match", [
    (dict(model=" "), "model: empty"),
    (dict(base_url="api.openai.com/v1"), "base_url"),
    (dict(temperature=3.0), "temperature"),
    (dict(model="sk-proj-" "AbCdEf0123456789xyzQRS"),
     r"model: this looks like an API key, not a model name \(the value is not shown\)"),
])
def test_bad_settings(settings, match, tmp_path):
    with pytest.raises(MVGInputError, match=match) as err:
        plan(REPORT, "chest_xray", engine="openai-compatible", llm=LLMSettings(**settings), cache_dir=tmp_path)
    assert "AbCdEf0123456789" not in str(err.value)


def test_disk_cache_second_run_makes_no_request(server, key, tmp_path):
    server.script.extend([Reply(body=completion(answer())), Reply(body=completion(answer()))])
    first = run(server, tmp_path)
    second = run(server, tmp_path)
    assert second == first and len(server.requests) == 1
    files = list((tmp_path / "cache").glob("*.json"))
    assert len(files) == 1
    text = files[0].read_text()
    assert "4471-Q" not in text and "Moderate right pleural effusion" not in text and KEY not in text
    assert first.report_sha256 in text
    # another parameter is another key: a new request
    run(server, tmp_path, stages=3, allow_de_novo=True)
    assert len(server.requests) == 2


def test_de_novo_when_allowed_is_marked(server, key, tmp_path):
    server.script.append(Reply(body=completion(answer(de_novo=True, notes=["new disease: not in the report"]))))
    result = run(server, tmp_path, allow_de_novo=True)
    assert result.de_novo and "DE-NOVO" in result.describe()
    assert "you MAY stage a plausible new disease" in server.requests[0][2]["messages"][0]["content"]


def test_no_key_or_report_in_outputs_cache_or_logs(server, key, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.script.extend([Reply(body=completion(answer())), Reply(status=401, body=error_body("bad key")),
                          Reply(status=500, body=error_body("boom"))])
    outputs = [run(server, tmp_path)]
    with pytest.raises(LLMError) as err:
        run(server, tmp_path, stages=2)
    outputs.append(run(server, tmp_path / "other", stages=2, fallback=True))
    texts = [json.dumps(p.to_dict()) for p in outputs] + [p.describe() for p in outputs] + [str(err.value)]
    texts += [f.read_text() for f in tmp_path.rglob("*.json")]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert KEY not in text
        assert "4471-Q" not in text and REPORT not in text


def test_a_damaged_cache_entry_is_a_miss(server, key, tmp_path):
    server.script.extend([Reply(body=completion(answer())), Reply(body=completion(answer()))])
    run(server, tmp_path)
    entry, = (tmp_path / "cache").glob("*.json")
    entry.write_text("{ damaged")
    again = run(server, tmp_path)
    assert again.engine == "llm:test-model" and len(server.requests) == 2
    assert json.loads(entry.read_text())["report_sha256"] == again.report_sha256


# --- issue 9: keys ------------------------------------------------------------------------------------
PASTED = [
    "hf_" "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",  # Hugging Face
    "gsk_" "0123456789abcdefABCDEFghijklmnopqrstuvwxyz0123456789ab",  # Groq
    "0123456789abcdef0123456789abcdef",  # Azure: 32 hex digits
    "AKIA" "IOSFODNN7EXAMPLE",  # AWS access key id
    "ghp_" "abcdefghijklmnopqrstuvwxyz0123456789",  # GitHub
    "github_pat_" "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "glpat_abcdefghij1234567890",
    "AIza" "SyA_abcdefghijklmnopqrstuvwxyz012345",  # Google
    "Zq81mV0fakeKEYvalue9xT",  # a bare alphanumeric token
]


@pytest.mark.parametrize("pasted", PASTED)
def test_a_secret_shaped_api_key_env_is_refused_without_echo(server, tmp_path, pasted, monkeypatch):
    monkeypatch.delenv(pasted, raising=False)
    settings = LLMSettings(model="m", base_url=server.url, api_key_env=pasted, max_retries=0)
    with pytest.raises(MVGInputError, match="NAME of an environment variable .* looks like a key") as err:
        plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, fallback=True, cache_dir=tmp_path)
    assert pasted not in str(err.value) and pasted[4:12] not in str(err.value)
    assert not server.requests


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "HF_TOKEN", "hf_token", "GROQ_API_KEY",
                                  "MVG_TEST_LLM_KEY", "GOOGLE_APPLICATION_CREDENTIALS"])
def test_conventional_variable_names_are_not_secrets(name):
    assert not looks_like_secret(name) and plausible_env_name(name)
    assert looks_like_secret(f"sk-proj-{name}abcd1234") and not plausible_env_name("aB3dE9")


def test_an_implausible_missing_variable_name_is_not_quoted(server, tmp_path, monkeypatch):
    monkeypatch.delenv("aB3dE9", raising=False)
    settings = LLMSettings(model="m", base_url=server.url, api_key_env="aB3dE9", max_retries=0)
    with pytest.raises(LLMError, match="the environment variable named in api_key_env is not set") as err:
        plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, fallback=False, cache_dir=tmp_path)
    fell_back = plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, cache_dir=tmp_path)
    for text in (str(err.value), fell_back.fallback_reason, fell_back.describe(), json.dumps(fell_back.to_dict())):
        assert "aB3dE9" not in text


@pytest.mark.parametrize("status, message", [
    (401, f"Incorrect API key provided: {KEY}. You can find your API key at https://example.test."),
    (401, "Incorrect API key provided: sk-test-Zq81****leak."),  # a partly masked echo
    (400, f"Invalid header 'Authorization: Bearer {KEY}'"),
])
def test_a_key_echoed_by_the_server_is_scrubbed(server, key, tmp_path, caplog, status, message):
    caplog.set_level(logging.DEBUG)
    server.script.extend([Reply(status=status, body=error_body(message))] * 2)
    with pytest.raises(LLMError) as err:
        run(server, tmp_path)
    assert err.value.kind in ("auth", "bad_request") and "[redacted]" in str(err.value)
    fell_back = run(server, tmp_path, fallback=True)
    texts = [str(err.value), fell_back.fallback_reason, fell_back.describe(), json.dumps(fell_back.to_dict())]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert KEY not in text and "Zq81" not in text and "sk-test" not in text


def test_url_userinfo_is_used_but_never_shown(server, key, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    password = "PW-Hunter2-9qXz-secret"
    url = server.url.replace("http://", f"http://alice:{password}@")
    settings = LLMSettings(model="test-model", base_url=url, api_key_env=KEY_ENV, max_retries=0, timeout=5)
    server.script.extend([Reply(status=500, body=error_body(f"boom for {url}")), Reply(body=completion(answer()))])
    fell_back = plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, cache_dir=tmp_path)
    good = plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, cache_dir=tmp_path)
    assert fell_back.fallback_reason.startswith("server: ") and good.engine == "llm:test-model"
    # the credentials still reach the server, as HTTP Basic auth (what httpx did with them before)
    assert server.requests[0][1]["authorization"] == "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    texts = [fell_back.fallback_reason, fell_back.describe(), good.describe(), json.dumps(good.to_dict())]
    texts += [f.read_text() for f in tmp_path.rglob("*.json")] + [r.getMessage() for r in caplog.records]
    assert any(server.url.removeprefix("http://") in t for t in texts)  # the host is still named
    for text in texts:
        assert password not in text and "alice" not in text and KEY not in text


def test_secrets_scrub():
    text = (f"key {KEY} at https://bob:s3cret-pw@host/v1, partly sk-test-Zq81****leak, Bearer abcdef123456, "
            "and sk-proj-" "AbCdEf0123456789xyz; Basic authentication failed")
    out = scrub(text, [KEY, "s3cret-pw"])
    for bit in (KEY, "s3cret", "bob", "Zq81", "abcdef123456", "AbCdEf0123456789xyz"):
        assert bit not in out
    assert out.startswith("key [redacted] at https://[redacted]@host/v1") and "Basic authentication failed" in out


# --- issue 9: the report must not leak through the answer ---------------------------------------------
def test_report_text_copied_into_free_text_fields_is_dropped(server, key, tmp_path):
    doc = json.loads(answer(notes=["Findings: Moderate right pleural effusion with adjacent atelectasis. No "
                                   "pneumothorax.", "The right effusion is the primary finding.",
                                   "Patient ID 4471-Q."]))
    doc["findings"][0]["location"] = "moderate right pleural effusion with adjacent atelectasis, no pneumothorax"
    doc["findings"][1]["location"] = "x" * 5000
    doc["stages"][0]["roi_hint"] = "right lower lung near patient 4471-Q"
    server.script.append(Reply(body=completion(json.dumps(doc))))
    result = run(server, tmp_path)
    assert result.engine == "llm:test-model"
    assert result.notes[0] == "The right effusion is the primary finding."
    assert result.notes[-1] == ("dropped from the LLM's answer (too long or quoting the report): location, location, "
                                "roi hint, note, note")
    assert [f.location for f in result.findings] == [None, None] and result.stages[0].roi_hint is None
    assert result.stages[1].roi_hint == "right lower lung"
    texts = [json.dumps(result.to_dict()), result.describe()] + [f.read_text() for f in tmp_path.rglob("*.json")]
    for text in texts:
        assert "4471" not in text and "with adjacent atelectasis" not in text and "x" * 200 not in text


def test_a_stage_prompt_that_copies_the_report_gets_a_repair_request(server, key, tmp_path):
    doc = json.loads(answer())
    doc["stages"][0]["prompt"] = "Findings: Moderate right pleural effusion with adjacent atelectasis. No pneumothorax."
    server.script.extend([Reply(body=completion(json.dumps(doc))), Reply(body=completion(answer()))])
    result = run(server, tmp_path)
    assert result.stages[0].prompt == "a chest x-ray with a moderate right pleural effusion"
    assert "the prompt of stage 1 copies the report's wording" in server.requests[1][2]["messages"][3]["content"]


# --- issue 9: no invented disease ----------------------------------------------------------------------
def _staging(disease: str, stages: int = 3) -> str:
    doc = json.loads(answer(stages=stages, findings=[]))
    for s in doc["stages"]:
        s["prompt"] = f"a chest x-ray with a {s['name']} {disease}"
    return json.dumps(doc)


@pytest.mark.parametrize("report, disease, invented", [
    (REPORT, "right lung mass", "Mass"),
    ("No acute cardiopulmonary process.", "right lower lobe pneumonia", "Pneumonia"),
    ("No pleural effusion. Lungs are clear.", "right pleural effusion", "Effusion"),  # negated in the report
])
def test_a_disease_the_report_does_not_state_is_refused(server, key, tmp_path, report, disease, invented):
    server.script.extend([Reply(body=completion(_staging(disease)))] * 2)
    settings = LLMSettings(model="test-model", base_url=server.url, api_key_env=KEY_ENV, max_retries=0, timeout=5)
    result = plan(report, "chest_xray", engine="openai-compatible", llm=settings, cache_dir=tmp_path / "c")
    assert result.engine == "rules" and result.fallback_reason.startswith("invalid_output: ")
    assert f"the plan shows {invented}, which the report does not state as present" in result.fallback_reason
    repair = server.requests[1][2]["messages"][3]["content"]
    assert f"the plan shows {invented}, which the report does not state" in repair
    assert not list((tmp_path / "c").glob("*.json"))
    with pytest.raises(LLMError, match="invalid plan twice") as err:
        server.script.extend([Reply(body=completion(_staging(disease)))] * 2)
        plan(report, "chest_xray", engine="openai-compatible", llm=settings, fallback=False, cache_dir=tmp_path / "c")
    assert err.value.kind == "invalid_output"


def test_an_invented_disease_is_repaired_or_marked_de_novo_when_allowed(server, key, tmp_path):
    server.script.extend([Reply(body=completion(_staging("right lung mass"))), Reply(body=completion(answer()))])
    repaired = run(server, tmp_path)
    assert repaired.engine == "llm:test-model" and not repaired.de_novo and "mass" not in repaired.describe()
    server.script.append(Reply(body=completion(_staging("right lung mass"))))
    allowed = run(server, tmp_path, allow_de_novo=True)
    assert allowed.de_novo and "DE-NOVO" in allowed.describe()
    assert "the stages show Mass, which the report does not state: marked DE-NOVO" in allowed.notes


# --- issue 9: bounded waits, Cancel -------------------------------------------------------------------
def test_retry_after_is_capped(server, key, tmp_path):
    assert LLMSettings().max_retry_wait == 10.0 and retry_delay(1, 100.0, LLMSettings().max_retry_wait) == 10.0
    assert 0.375 <= retry_delay(1, None, 10.0) <= 0.5 and retry_delay(9, None, 10.0) <= 8.0
    server.script.extend([Reply(status=429, body=error_body("slow down"), headers={"Retry-After": "100"}),
                          Reply(body=completion(answer()))])
    settings = LLMSettings(model="test-model", base_url=server.url, api_key_env=KEY_ENV, max_retries=1,
                           max_retry_wait=0.3, timeout=5)
    t0 = time.monotonic()
    result = plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, cache_dir=tmp_path)
    assert result.engine == "llm:test-model" and len(server.requests) == 2
    assert 0.3 <= time.monotonic() - t0 < 3


def test_timeout_and_retries_are_bounded_settings(tmp_path):
    for bad, match in ((dict(timeout=0), "timeout"), (dict(timeout=601), "timeout"),
                       (dict(max_retries=6), "max_retries"), (dict(max_retries=-1), "max_retries"),
                       (dict(max_retry_wait=61), "max_retry_wait")):
        with pytest.raises(MVGInputError, match=match):
            plan(REPORT, "chest_xray", engine="openai-compatible", llm=LLMSettings(**bad), cache_dir=tmp_path)


def test_a_timeout_is_retried_max_retries_times(server, key, tmp_path):
    server.script.extend([Reply(body=completion(answer()), delay=30)] * 2 + [Reply(body=completion(answer()))])
    t0 = time.monotonic()
    with pytest.raises(LLMError, match=r"did not answer within 0.3 s \(2 attempt\(s\)\)"):
        run(server, tmp_path, timeout=0.3, retries=1)
    assert len(server.requests) == 2 and time.monotonic() - t0 < 3


class Interrupted(Exception):
    """Stands for ComfyUI's InterruptProcessingException."""


def _cancel_after(seconds: float, calls: list):
    t0 = time.monotonic()

    def check() -> None:
        calls.append(time.monotonic())
        if calls[-1] - t0 > seconds:
            raise Interrupted

    return check


def test_cancel_while_the_server_never_answers(server, key, tmp_path):
    server.script.append(Reply(body=completion(answer()), delay=60))
    calls: list[float] = []
    t0 = time.monotonic()
    with pytest.raises(Interrupted):  # not swallowed by the fallback
        run(server, tmp_path, timeout=120, fallback=True, check_cancel=_cancel_after(0.5, calls))
    waited = time.monotonic() - t0
    assert 0.5 <= waited < 1.5 and len(server.requests) == 1, waited
    assert max(b - a for a, b in zip(calls, calls[1:])) < 0.3  # polled several times a second


def test_cancel_during_the_backoff_and_by_returning_true(server, key, tmp_path):
    server.script.append(Reply(status=429, body=error_body("slow down"), headers={"Retry-After": "100"}))
    t0 = time.monotonic()
    with pytest.raises(LLMCancelled, match="cancelled while waiting for the LLM"):
        settings = LLMSettings(model="test-model", base_url=server.url, api_key_env=KEY_ENV, max_retries=2)
        plan(REPORT, "chest_xray", engine="openai-compatible", llm=settings, cache_dir=tmp_path, fallback=True,
             check_cancel=lambda: time.monotonic() - t0 > 0.5)
    assert time.monotonic() - t0 < 1.5 and len(server.requests) == 1


# --- issue 9: bodies and the cache ----------------------------------------------------------------------
def test_a_deeply_nested_body_is_an_invalid_body_not_a_crash(server, key, tmp_path):
    server.script.append(Reply(body="[" * 100_000))
    with pytest.raises(LLMError, match="nested too deeply") as err:
        run(server, tmp_path)
    assert err.value.kind == "invalid_body"
    server.script.append(Reply(body="[" * 100_000))
    assert run(server, tmp_path, fallback=True).fallback_reason.startswith("invalid_body: ")
    server.script.extend([Reply(body=completion("[" * 100_000))] * 2)  # nested content: repaired, then refused
    with pytest.raises(LLMError, match="invalid plan twice") as err:
        run(server, tmp_path)
    assert "recursion limit" in server.requests[-1][2]["messages"][3]["content"]


def test_a_huge_stage_prompt_is_refused_and_not_cached(server, key, tmp_path):
    doc = json.loads(answer())
    doc["stages"][1]["prompt"] = "a chest x-ray with " + "a larger effusion " * 230_000  # ~4 MB
    server.script.extend([Reply(body=completion(json.dumps(doc)))] * 2)
    result = run(server, tmp_path, fallback=True)
    assert result.engine == "rules"
    assert "the prompt of stage 2 has 4140019 characters; write one short caption" in result.fallback_reason
    assert not list((tmp_path / "cache").glob("*.json"))


def test_an_unwritable_cache_keeps_the_answer(server, key, tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    server.script.append(Reply(body=completion(answer())))
    result = run(server, tmp_path)  # cache_dir=tmp_path / "cache": a file
    assert result.engine == "llm:test-model" and result.fallback_reason is None
    assert any("MVG prompt cache: cannot write to" in r.getMessage() for r in caplog.records)


def test_a_truncated_body_is_reported_as_truncated(server, key, tmp_path):
    server.script.append(Reply(body=completion(answer()), truncate=40))
    with pytest.raises(LLMError, match="broke off .* truncated or invalid HTTP response") as err:
        run(server, tmp_path)
    assert err.value.kind == "truncated_body" and "cannot connect" not in str(err.value)
