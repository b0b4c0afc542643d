"""The LLM engine against a real local OpenAI-compatible server (stdlib HTTP on 127.0.0.1) and the real
``openai`` client: structured output, the repair retry, each failure class, the fallback, the disk cache, and
no key anywhere it must not be."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from fixtures.fake_openai import FakeOpenAI, Reply, completion, error_body
from mvg_backend.errors import MVGInputError
from mvg_backend.prompts import LLMError, LLMSettings, plan
from mvg_backend.prompts.llm import LLMPlan

KEY = "sk-test-Zq81mV0fakeKEYvalue-do-not-leak"
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
])
def test_bad_settings(settings, match, tmp_path):
    with pytest.raises(MVGInputError, match=match):
        plan(REPORT, "chest_xray", engine="openai-compatible", llm=LLMSettings(**settings), cache_dir=tmp_path)


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
