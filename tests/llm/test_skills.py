"""Skills as markdown: the shipped SKILL.md files, validation errors, rendering, hot reload."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.llm.test_incident import anomaly, news
from tripwire.incident import Incident
from tripwire.llm.rules import RulesProvider, propose, triage
from tripwire.llm.schemas import ROLE_MODELS, DoubleCheck, StrategistProposal, TriageVerdict
from tripwire.llm.skills import SkillError, SkillLoader, parse_skill, schema_problems
from tripwire.model import NS_PER_SECOND, SimClock

SKILLS = Path(__file__).resolve().parents[2] / "skills"
ROLE = "triage-analyst"

SCHEMA = """```json
{"type": "object", "additionalProperties": false,
 "required": ["classification", "confidence", "reasoning", "key_factors", "source"],
 "properties": {
  "classification": {"type": "string", "enum": ["TECHNICAL_SPIKE", "NEWS_DRIVEN",
    "MANIPULATION", "LIQUIDATION_CASCADE", "DATA_ERROR", "IGNORE"]},
  "confidence": {"type": "number", "minimum": 0, "maximum": 1},
  "reasoning": {"type": "string"},
  "key_factors": {"type": "array", "items": {"type": "string"}},
  "source": {"type": "string", "enum": ["llm", "rules"]}}}
```"""


def skill_text(persona="You classify trips.", inputs="{{ symbol }}: {{ metric }} z={{ z }}",
               schema=SCHEMA, extra="") -> str:  # fmt: skip
    return f"# triage\n\n## Persona\n\n{persona}\n\n## Inputs\n\n{inputs}\n{extra}\n" \
           f"## Output schema\n\n{schema}\n"  # fmt: skip


def write(root: Path, text: str, role: str = ROLE) -> Path:
    path = root / role / "SKILL.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch_later(path: Path, seconds: int = 10) -> None:
    """Move the mtime on: a rewrite within the file system's clock tick must still show."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * NS_PER_SECOND))


def incident() -> Incident:
    a = anomaly([100.0] * 30 + [97.0])
    return Incident.from_anomaly(
        a, [news(a.ts_ns - 5 * NS_PER_SECOND, "BREAKING: ARB network stalls", ("ARBUSDT",))]
    )


# ----------------------------------------------------------------------------- shipped skills


def test_the_shipped_skills_load_and_match_their_models():
    loader = SkillLoader(SKILLS)
    assert set(loader.roles) == set(ROLE_MODELS)
    for role, model in ROLE_MODELS.items():
        skill = loader.get(role)
        assert skill.model is model and skill.role == role
        assert skill.persona and "{{" not in skill.persona


def test_the_shipped_skills_render_every_role():
    loader = SkillLoader(SKILLS)
    inc = incident()
    verdict = triage(inc)
    proposal = propose(inc, verdict)
    for role, kw in (("triage-analyst", {}), ("strategist", {"verdict": verdict}),
                     ("double-checker", {"proposal": proposal})):  # fmt: skip
        system, messages = loader.render(role, inc, **kw)
        assert loader.get(role).persona in system and '"required"' in system
        (msg,) = messages
        assert msg.role == "user" and "{{" not in msg.content and "ARBUSDT" in msg.content
    _, (msg,) = loader.render("triage-analyst", inc)
    assert "BREAKING: ARB network stalls" in msg.content and "-3.000%" in msg.content


def test_the_double_checker_never_sees_the_strategists_rationale():
    loader = SkillLoader(SKILLS)
    inc = incident()
    proposal = StrategistProposal(
        action="SELL", symbol="ARBUSDT", size=0.05, limit_price=97.0, stop_loss=99.0,
        take_profit=93.0, rationale="SECRET-RATIONALE", confidence=0.8, source="llm",
    )  # fmt: skip
    system, (msg,) = loader.render("double-checker", inc, proposal=proposal)
    assert "SECRET-RATIONALE" not in system + msg.content
    assert "SELL ARBUSDT" in msg.content and "stop 99" in msg.content


def test_roles_that_need_more_than_the_incident_say_so():
    loader = SkillLoader(SKILLS)
    with pytest.raises(SkillError, match="needs verdict="):
        loader.render("strategist", incident())
    with pytest.raises(SkillError, match="needs proposal="):
        loader.render("double-checker", incident())
    with pytest.raises(SkillError, match="no skill loaded for role 'poet'"):
        loader.get("poet")


def test_request_carries_the_model_the_context_and_a_stable_fingerprint():
    loader = SkillLoader(SKILLS)
    inc = incident()
    verdict = triage(inc)
    req = loader.request("strategist", inc, verdict=verdict, max_tokens=300)
    assert req.schema is StrategistProposal and req.max_tokens == 300
    assert req.context["verdict"] == verdict.model_dump(mode="json")
    assert req.context["features"] == inc.features() and req.context["symbol"] == "ARBUSDT"
    again = loader.request("strategist", inc, verdict=verdict, max_tokens=300)
    assert req.fingerprint() == again.fingerprint()
    # a new incident id (a rerun) does not change the prompt, so cassettes replay
    rerun = inc.model_copy(update={"id": "another-run"})
    assert loader.request("strategist", rerun, verdict=verdict, max_tokens=300).fingerprint() \
        == req.fingerprint()  # fmt: skip


def test_the_rules_answer_a_rendered_request_end_to_end():
    loader = SkillLoader(SKILLS)
    inc = incident()
    rules = RulesProvider()

    async def flow():
        v = await rules.complete(loader.request("triage-analyst", inc), timeout_s=1)
        verdict = TriageVerdict.model_validate(v.data)
        p = await rules.complete(loader.request("strategist", inc, verdict=verdict), timeout_s=1)
        proposal = StrategistProposal.model_validate(p.data)
        d = await rules.complete(loader.request("double-checker", inc, proposal=proposal),
                                 timeout_s=1)  # fmt: skip
        return verdict, proposal, DoubleCheck.model_validate(d.data)

    verdict, proposal, check = asyncio.run(flow())
    assert verdict.classification.value == "NEWS_DRIVEN" and proposal.source == "rules"
    assert check.source == "rules"


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (skill_text().replace("## Inputs", "## Facts"), r":7: unexpected section '## Facts'"),
        (skill_text().replace("## Persona\n", ""), "missing section '## Persona'"),
        (skill_text(extra="## Inputs\nagain\n"), "section '## Inputs' appears twice"),
        (skill_text(persona="   "), "section '## Persona' is empty"),
        (skill_text(schema="no block"), r"needs exactly one ```json block, found 0"),
        (skill_text(schema=SCHEMA + "\n" + SCHEMA), "found 2"),
        (skill_text(schema="```json\n{\"type\": \"object\",\n oops}\n```"),
         r":15: the output schema is not valid JSON"),
        (skill_text(schema="```json\n[1, 2]\n```"), "must be a JSON object"),
        (skill_text(schema="```json\n{}\n```"), "no 'properties' object"),
        (skill_text(schema=SCHEMA.replace('"source": {"type": "string", "enum": ["llm", '
                                          '"rules"]}', '"origin": {"type": "string"}')),
         "property 'source' is missing; property 'origin' is not in TriageVerdict"),
        (skill_text(schema=SCHEMA.replace('"key_factors", "source"]', '"key_factors"]')),
         "required must be"),
        (skill_text(schema=SCHEMA.replace('"DATA_ERROR", ', "")),
         "property 'classification' must have enum"),
        (skill_text(schema=SCHEMA.replace('"confidence": {"type": "number"',
                                          '"confidence": {"type": "string"')),
         r"property 'confidence' has type \['string'\]"),
        (skill_text(schema=SCHEMA.replace('"reasoning": {"type": "string"}',
                                          '"reasoning": {"enum": ["a", "b"]}')),
         "property 'reasoning' has an enum the model does not have"),
        (skill_text(schema=SCHEMA.replace('"additionalProperties": false',
                                          '"additionalProperties": true')),
         "additionalProperties must be false"),
        (skill_text(inputs="{{ symbol }} {{ secret_key }}"), r"unknown placeholder\(s\) "
         r"\{\{ secret_key \}\}"),
        (skill_text(inputs="{{ verdict_reasoning }}"), "unknown placeholder"),
        (skill_text() + "```\nunclosed\n", "a code block .*is never closed"),
        (skill_text(persona="```\nswallows the rest"), "missing section '## Inputs'"),
    ],
)  # fmt: skip
def test_a_broken_skill_is_refused_with_the_file_and_the_problem(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(SkillError, match=re.escape(str(path)) + ".*" + problem):
        SkillLoader(tmp_path, roles=[ROLE])


def test_headings_and_fences_inside_code_blocks_are_content():
    persona = "Example:\n\n```md\n## Persona\n~~~\n```\n\nEnd."
    skill = parse_skill(skill_text(persona=persona), Path("x.md"), ROLE, TriageVerdict)
    assert "## Persona" in skill.persona and skill.persona.endswith("End.")


def test_integer_is_a_number_and_nullable_types_are_accepted():
    doc = {"type": "object",
           "required": ["verdict", "concerns", "confidence", "max_size", "source"],
           "properties": {"verdict": {"enum": ["AGREE", "DISAGREE", "ABSTAIN"]},
                          "concerns": {"type": "array"}, "confidence": {"type": "integer"},
                          "max_size": {"type": ["number", "null"]},
                          "source": {"enum": ["llm", "rules"]}}}  # fmt: skip
    assert schema_problems(doc, DoubleCheck) == []
    limit = {"type": ["number", "null"]}
    props = {k: {} for k in StrategistProposal.model_json_schema()["properties"]}
    props |= {"limit_price": limit, "action": {"enum": ["BUY", "SELL", "HOLD"]},
              "source": {"enum": ["llm", "rules"]}}  # fmt: skip
    req = StrategistProposal.model_json_schema()["required"]
    assert schema_problems({"properties": props, "required": req}, StrategistProposal) == []


def test_missing_unreadable_and_unknown_role(tmp_path):
    with pytest.raises(SkillError, match=r"triage-analyst/SKILL.md: cannot read"):
        SkillLoader(tmp_path, roles=[ROLE])
    path = tmp_path / ROLE / "SKILL.md"
    path.parent.mkdir()
    path.write_bytes(b"\xff\xfe## Persona")
    with pytest.raises(SkillError, match="not UTF-8"):
        SkillLoader(tmp_path, roles=[ROLE])
    with pytest.raises(SkillError, match="no answer model for role 'poet'"):
        SkillLoader(tmp_path, roles=["poet"])
    with pytest.raises(ValueError, match="check_interval_s"):
        SkillLoader(tmp_path, roles=[], check_interval_s=-1)


# ----------------------------------------------------------------------------- hot reload


@pytest.fixture
def live(tmp_path):
    path = write(tmp_path, skill_text(persona="Version one."))
    clock = SimClock(1_000 * NS_PER_SECOND)
    return path, clock, SkillLoader(tmp_path, clock, roles=[ROLE], check_interval_s=1.0)


def test_a_good_edit_is_picked_up_after_the_check_interval(live):
    path, clock, loader = live
    path.write_text(skill_text(persona="Version two."), encoding="utf-8")
    touch_later(path)
    assert loader.get(ROLE).persona == "Version one."  # not looked at yet
    clock.advance(NS_PER_SECOND)
    skill = loader.get(ROLE)
    assert skill.persona == "Version two." and skill.loaded_ns == clock.now_ns()


def test_a_broken_edit_keeps_the_last_good_version_and_logs_why_once(live, caplog):
    path, clock, loader = live
    good = loader.get(ROLE)
    path.write_text(skill_text(schema="```json\n{broken\n```"), encoding="utf-8")
    touch_later(path)
    with caplog.at_level(logging.WARNING, logger="tripwire.llm.skills"):
        for _ in range(3):
            clock.advance(NS_PER_SECOND)
            assert loader.get(ROLE) is good
            touch_later(path)  # touched again, same broken content: no new warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rejected" in warnings[0].getMessage() and "not valid JSON" in warnings[0].getMessage()
    assert str(path) in warnings[0].getMessage()
    path.write_text(skill_text(persona="Fixed."), encoding="utf-8")
    touch_later(path, 60)
    clock.advance(NS_PER_SECOND)
    assert loader.get(ROLE).persona == "Fixed."


def test_a_deleted_file_keeps_the_last_good_version(live, caplog):
    path, clock, loader = live
    shutil.rmtree(path.parent)
    with caplog.at_level(logging.WARNING, logger="tripwire.llm.skills"):
        clock.advance(NS_PER_SECOND)
        assert loader.get(ROLE).persona == "Version one."
        clock.advance(NS_PER_SECOND)
        loader.get(ROLE)
    assert sum("unreadable" in r.getMessage() for r in caplog.records) == 1
    write(path.parents[1], skill_text(persona="Back."))
    clock.advance(NS_PER_SECOND)
    assert loader.get(ROLE).persona == "Back."


def test_an_unchanged_file_is_not_reparsed(live):
    path, clock, loader = live
    first = loader.get(ROLE)
    touch_later(path)  # same bytes, new mtime
    clock.advance(NS_PER_SECOND)
    assert loader.get(ROLE) is first


def test_reload_looks_at_once(live):
    path, _, loader = live
    path.write_text(skill_text(persona="Now."), encoding="utf-8")
    touch_later(path)
    loader.reload()
    assert loader.get(ROLE).persona == "Now."
