"""Skills as markdown: ``skills/<role>/SKILL.md`` parsed, validated, rendered, hot-reloaded.

A SKILL.md has a free preamble (a title, a note) and exactly three level-2 sections:

``## Persona``
    who the model is and how it must judge: becomes the system prompt;
``## Inputs``
    the user message, a template whose ``{{ name }}`` placeholders are filled from the
    incident (:data:`tripwire.llm.incident.INCIDENT_VARS`) and, for the strategist, the
    triage verdict (``verdict_*``), for the double-checker the proposal (``proposal_*``:
    its numbers only, never the strategist's rationale: the check is blind);
``## Output schema``
    one fenced ``json`` block: the JSON schema of the answer, shown to the model. It must
    agree with the role's pydantic model (:data:`tripwire.llm.schemas.ROLE_MODELS`): the
    same properties, the same required ones, the same enum values, compatible types. The
    model, not the markdown, is what answers are validated against.

:class:`SkillLoader` validates every role at start (a broken file stops start-up with an
error naming the file and the problem), then re-reads a file whose modification time or
size changed, at most every ``check_interval_s`` of its injected clock: a good edit
replaces the skill, a broken one is logged (``tripwire.llm.skills``, WARNING) and the last
good version stays in use.

>>> import tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> (root / "triage-analyst").mkdir()
>>> _ = (root / "triage-analyst" / "SKILL.md").write_text('''# Triage
... ## Persona
... You classify trips.
... ## Inputs
... {{ symbol }} tripped {{ metric }} at z={{ z }}.
... ## Output schema
... ```json
... {"type": "object", "required": ["classification", "confidence", "reasoning",
...  "key_factors", "source"], "properties": {"classification": {"enum": ["TECHNICAL_SPIKE",
...  "NEWS_DRIVEN", "MANIPULATION", "LIQUIDATION_CASCADE", "DATA_ERROR", "IGNORE"]},
...  "confidence": {"type": "number"}, "reasoning": {"type": "string"},
...  "key_factors": {"type": "array"}, "source": {"enum": ["llm", "rules"]}}}
... ```
... ''')
>>> loader = SkillLoader(root, roles=["triage-analyst"])
>>> loader.get("triage-analyst").placeholders == {"symbol", "metric", "z"}
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tripwire.incident import Incident
from tripwire.llm.base import LLMError, LLMRequest, Message
from tripwire.llm.incident import INCIDENT_VARS, prompt_vars
from tripwire.llm.schemas import ROLE_MODELS, StrategistProposal, TriageVerdict
from tripwire.model import NS_PER_SECOND, Clock, SystemClock

log = logging.getLogger("tripwire.llm.skills")

SKILL_FILE = "SKILL.md"
SECTIONS = ("Persona", "Inputs", "Output schema")
VERDICT_VARS = frozenset(
    {"verdict_classification", "verdict_confidence", "verdict_reasoning", "verdict_key_factors"}
)
PROPOSAL_VARS = frozenset(
    {
        "proposal_action", "proposal_symbol", "proposal_size", "proposal_limit_price",
        "proposal_stop_loss", "proposal_take_profit",
    }
)  # fmt: skip
ROLE_VARS: dict[str, frozenset[str]] = {
    "strategist": VERDICT_VARS,
    "double-checker": PROPOSAL_VARS,
}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_HEADING = re.compile(r"^##(?!#)\s*(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")


class SkillError(LLMError, ValueError):
    """A SKILL.md is missing, malformed or disagrees with its role's model."""


@dataclass(frozen=True, slots=True)
class Skill:
    """One role's validated skill."""

    role: str
    path: Path
    persona: str
    inputs: str  # the template of the user message
    schema: dict[str, Any]  # the Output schema block, as shown to the model
    model: type[BaseModel]  # what answers are validated against
    placeholders: frozenset[str]
    digest: str  # SHA-256 of the file's bytes
    loaded_ns: int

    def system_prompt(self) -> str:
        schema = json.dumps(self.schema, ensure_ascii=False)  # one line: fewer tokens
        return (
            f"{self.persona}\n\nAnswer with one JSON object and nothing else (no prose, no "
            f"code fence). It must match this JSON schema:\n{schema}"
        )

    def render_inputs(self, variables: Mapping[str, str]) -> str:
        missing = sorted(self.placeholders - variables.keys())
        if missing:
            raise SkillError(f"{self.path}: no value for {', '.join(missing)}")
        return _PLACEHOLDER.sub(lambda m: variables[m.group(1)], self.inputs)


# ----------------------------------------------------------------------------- parsing


def _closes(line: str, fence: str) -> bool:
    """Does ``line`` close a code block opened by ``fence`` (same character, at least as
    long, no info string)?"""
    m = _FENCE.match(line)
    return bool(m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)) and (
        line.strip() == line.strip()[0] * len(line.strip())
    )


def _sections(text: str, path: Path) -> dict[str, tuple[int, str]]:
    """Level-2 sections (headings inside code blocks do not count) -> (heading line, body)."""
    found: dict[str, tuple[int, list[str]]] = {}
    current: list[str] | None = None
    fence: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if fence is not None:  # inside a code block: content, whatever it looks like
            fence = None if _closes(line, fence) else fence
        elif m := _FENCE.match(line):
            fence = m.group(1)
        heading = None if fence is not None or _FENCE.match(line) else _HEADING.match(line)
        if heading is None:
            if current is not None:
                current.append(line)
            continue
        name = heading.group(1)
        canonical = next((s for s in SECTIONS if s.lower() == name.lower()), None)
        if canonical is None:
            raise SkillError(
                f"{path}:{lineno}: unexpected section '## {name}' (a SKILL.md has exactly "
                f"{', '.join('## ' + s for s in SECTIONS)})"
            )
        if canonical in found:
            raise SkillError(f"{path}:{lineno}: section '## {canonical}' appears twice")
        current = []
        found[canonical] = (lineno, current)
    if fence is not None:
        raise SkillError(f"{path}: a code block ({fence}) is never closed")
    for s in SECTIONS:
        if s not in found:
            raise SkillError(f"{path}: missing section '## {s}'")
        if not "\n".join(found[s][1]).strip():
            raise SkillError(f"{path}:{found[s][0]}: section '## {s}' is empty")
    return {s: (found[s][0], "\n".join(found[s][1])) for s in SECTIONS}


def _json_block(body: str, heading_line: int, path: Path) -> dict[str, Any]:
    """The one ```json block of a section whose heading is on ``heading_line``."""
    blocks: list[tuple[int, str]] = []
    fence, info, start, buf = None, "", 0, []
    for i, line in enumerate(body.splitlines(), start=heading_line + 1):
        if fence is None:
            if m := _FENCE.match(line):
                fence, info, start, buf = m.group(1), m.group(2).lower(), i, []
        elif _closes(line, fence):
            if info == "json":
                blocks.append((start, "\n".join(buf)))
            fence = None
        else:
            buf.append(line)
    if len(blocks) != 1:
        raise SkillError(
            f"{path}: '## Output schema' needs exactly one ```json block, found {len(blocks)}"
        )
    start, src = blocks[0]
    try:
        doc = json.loads(src)
    except json.JSONDecodeError as exc:
        raise SkillError(
            f"{path}:{start + exc.lineno}: the output schema is not valid JSON: {exc.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise SkillError(f"{path}:{start + 1}: the output schema must be a JSON object")
    return doc


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    return node


def _variants(node: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node, root)
    alts = node.get("anyOf") or node.get("oneOf")
    if alts:
        return [v for a in alts for v in _variants(a, root)]
    return [node]


def _types(node: dict[str, Any], root: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for v in _variants(node, root):
        t = v.get("type")
        if isinstance(t, str):
            out.add(t)
        elif isinstance(t, list):
            out.update(x for x in t if isinstance(x, str))
        if "enum" in v and "type" not in v:
            out.update(_json_type(x) for x in v["enum"])
    return out


def _json_type(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(x), "string")


def _enum(node: dict[str, Any], root: dict[str, Any]) -> set[Any] | None:
    values: set[Any] = set()
    seen = False
    for v in _variants(node, root):
        if "enum" in v:
            seen = True
            values.update(x for x in v["enum"] if x is not None)
        elif "const" in v:
            seen = True
            values.add(v["const"])
    return values if seen else None


def schema_problems(doc: dict[str, Any], model: type[BaseModel]) -> list[str]:
    """Where a SKILL.md's output schema disagrees with the role's pydantic model."""
    ref = model.model_json_schema()
    problems = []
    if doc.get("type", "object") != "object":
        problems.append(f"type must be 'object', got {doc.get('type')!r}")
    if doc.get("additionalProperties", False) is not False:
        problems.append("additionalProperties must be false (the model forbids extra fields)")
    props = doc.get("properties")
    if not isinstance(props, dict):
        return [*problems, "no 'properties' object"]
    want = ref["properties"]
    for name in sorted(want.keys() - props.keys()):
        problems.append(f"property {name!r} is missing")
    for name in sorted(props.keys() - want.keys()):
        problems.append(f"property {name!r} is not in {model.__name__}")
    required = doc.get("required", [])
    if not isinstance(required, list) or set(required) != set(ref.get("required", [])):
        problems.append(f"required must be {sorted(ref.get('required', []))}, got {required!r}")
    for name in sorted(want.keys() & props.keys()):
        problems.extend(_property_problems(name, props[name], want[name], doc, ref))
    return problems


def _property_problems(
    name: str, mine: Any, theirs: dict[str, Any], doc: dict[str, Any], ref: dict[str, Any]
) -> list[str]:
    if not isinstance(mine, dict):
        return [f"property {name!r} must be a JSON object"]
    problems = []
    want_enum, got_enum = _enum(theirs, ref), _enum(mine, doc)
    if want_enum is not None and got_enum != want_enum:
        problems.append(
            f"property {name!r} must have enum {sorted(want_enum)}, got "
            f"{sorted(got_enum) if got_enum is not None else 'none'}"
        )
    if want_enum is None and got_enum is not None:
        problems.append(f"property {name!r} has an enum the model does not have")
    want_t, got_t = _types(theirs, ref), _types(mine, doc)
    if "number" in want_t:
        want_t = want_t | {"integer"}  # an integer is a number
    if got_t and want_t and not got_t <= want_t:
        problems.append(f"property {name!r} has type {sorted(got_t)}, the model {sorted(want_t)}")
    return problems


def parse_skill(
    text: str, path: Path, role: str, model: type[BaseModel], loaded_ns: int = 0
) -> Skill:
    """A validated :class:`Skill` from a SKILL.md's text (SkillError naming the problem)."""
    sections = _sections(text, path)
    inputs = sections["Inputs"][1].strip()
    placeholders = frozenset(_PLACEHOLDER.findall(inputs))
    allowed = INCIDENT_VARS | ROLE_VARS.get(role, frozenset())
    unknown = sorted(placeholders - allowed)
    if unknown:
        raise SkillError(
            f"{path}: unknown placeholder(s) {', '.join('{{ ' + u + ' }}' for u in unknown)} "
            f"in '## Inputs' (known: {', '.join(sorted(allowed))})"
        )
    line, body = sections["Output schema"]
    schema = _json_block(body, line, path)
    problems = schema_problems(schema, model)
    if problems:
        raise SkillError(
            f"{path}: the output schema does not match {model.__name__}: " + "; ".join(problems)
        )
    return Skill(
        role=role,
        path=path,
        persona=sections["Persona"][1].strip(),
        inputs=inputs,
        schema=schema,
        model=model,
        placeholders=placeholders,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        loaded_ns=loaded_ns,
    )


# ----------------------------------------------------------------------------- rendering


def _fmt(x: float | None, spec: str = ".8g") -> str:
    return "n/a" if x is None else format(x, spec)


def verdict_vars(verdict: TriageVerdict) -> dict[str, str]:
    return {
        "verdict_classification": verdict.classification.value,
        "verdict_confidence": f"{verdict.confidence:.2f}",
        "verdict_reasoning": verdict.reasoning,
        "verdict_key_factors": "\n".join(f"- {f}" for f in verdict.key_factors) or "(none)",
    }


def proposal_vars(proposal: StrategistProposal) -> dict[str, str]:
    """The proposal's numbers: the double-checker is blind to the rationale."""
    return {
        "proposal_action": proposal.action.value,
        "proposal_symbol": proposal.symbol,
        "proposal_size": f"{proposal.size:.3f}",
        "proposal_limit_price": _fmt(proposal.limit_price),
        "proposal_stop_loss": _fmt(proposal.stop_loss),
        "proposal_take_profit": _fmt(proposal.take_profit),
    }


def render_vars(
    incident: Incident,
    *,
    verdict: TriageVerdict | None = None,
    proposal: StrategistProposal | None = None,
) -> dict[str, str]:
    """Every placeholder value: the incident's, plus the verdict's and proposal's if given."""
    out = prompt_vars(incident)
    if verdict is not None:
        out.update(verdict_vars(verdict))
    if proposal is not None:
        out.update(proposal_vars(proposal))
    return out


@dataclass(slots=True)
class _Entry:
    skill: Skill
    seen: tuple[int, int]  # (mtime_ns, size) last looked at
    bad_digest: str = ""  # the broken version already reported (log once per version)
    missing_logged: bool = False


class SkillLoader:
    """Loads ``root/<role>/SKILL.md`` for every role, validates, renders, hot-reloads.

    ``roles`` defaults to every role of ``models``. ``check_interval_s`` bounds how often
    a file is looked at (a ``stat``) on the injected ``clock``; 0 checks on every call.
    """

    def __init__(
        self,
        root: str | Path = "skills",
        clock: Clock | None = None,
        *,
        models: Mapping[str, type[BaseModel]] = ROLE_MODELS,
        roles: Iterable[str] | None = None,
        check_interval_s: float = 1.0,
    ) -> None:
        if check_interval_s < 0:
            raise ValueError(f"check_interval_s must be >= 0, got {check_interval_s}")
        self.root = Path(root)
        self.clock = clock or SystemClock()
        self._models = dict(models)
        self._interval_ns = round(check_interval_s * NS_PER_SECOND)
        self._checked_ns: dict[str, int] = {}
        self._entries: dict[str, _Entry] = {}
        for role in roles if roles is not None else sorted(self._models):
            if role not in self._models:
                raise SkillError(f"no answer model for role {role!r} (known: {sorted(models)})")
            self._entries[role] = self._load(role)
            self._checked_ns[role] = self.clock.now_ns()

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def path(self, role: str) -> Path:
        return self.root / role / SKILL_FILE

    def _load(self, role: str) -> _Entry:
        path = self.path(role)
        try:
            st = path.stat()  # before reading: a write in between shows as a later change
            data = path.read_bytes()
        except OSError as exc:
            raise SkillError(f"{path}: cannot read the skill of {role!r}: {exc.strerror}") from None
        return self._parse(role, data, (st.st_mtime_ns, st.st_size))

    def _parse(self, role: str, data: bytes, stamp: tuple[int, int]) -> _Entry:
        path = self.path(role)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SkillError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        return _Entry(parse_skill(text, path, role, self._models[role], self.clock.now_ns()), stamp)

    # -- hot reload --------------------------------------------------------------------------

    def get(self, role: str) -> Skill:
        """The role's current skill (re-read first if its file changed)."""
        entry = self._entries.get(role)
        if entry is None:
            raise SkillError(f"no skill loaded for role {role!r} (loaded: {list(self._entries)})")
        now = self.clock.now_ns()
        if now - self._checked_ns[role] >= self._interval_ns:
            self._checked_ns[role] = now
            self._refresh(role, entry)
        return self._entries[role].skill

    def reload(self) -> None:
        """Look at every file now, whatever the interval."""
        for role, entry in self._entries.items():
            self._checked_ns[role] = self.clock.now_ns()
            self._refresh(role, entry)

    def _refresh(self, role: str, entry: _Entry) -> None:
        path = self.path(role)
        try:
            st = path.stat()
        except OSError as exc:
            if not entry.missing_logged:
                log.warning(
                    "skill %s: %s is unreadable (%s); keeping the version loaded from %s",
                    role, path, exc.strerror, entry.skill.digest[:12],
                )  # fmt: skip
                entry.missing_logged = True
            return
        entry.missing_logged = False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == entry.seen:
            return
        entry.seen = stamp
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("skill %s: cannot read %s (%s); keeping the last good version",
                        role, path, exc.strerror)  # fmt: skip
            return
        digest = hashlib.sha256(data).hexdigest()
        if digest in (entry.skill.digest, entry.bad_digest):
            return
        try:
            fresh = self._parse(role, data, stamp)
        except SkillError as exc:
            entry.bad_digest = digest
            log.warning("skill %s: the edit is rejected, keeping the last good version (%s): %s",
                        role, entry.skill.digest[:12], exc)  # fmt: skip
            return
        self._entries[role] = fresh
        log.info("skill %s: reloaded %s (%s)", role, path, fresh.skill.digest[:12])

    # -- rendering ----------------------------------------------------------------------------

    def render(
        self,
        role: str,
        incident: Incident,
        *,
        verdict: TriageVerdict | None = None,
        proposal: StrategistProposal | None = None,
    ) -> tuple[str, tuple[Message, ...]]:
        """(system prompt, messages) for ``role`` about ``incident``. The strategist's
        skill needs ``verdict``, the double-checker's ``proposal`` (SkillError otherwise)."""
        skill = self.get(role)
        variables = render_vars(incident, verdict=verdict, proposal=proposal)
        needs = skill.placeholders - variables.keys()
        if needs:
            what = "verdict" if needs & VERDICT_VARS else "proposal"
            raise SkillError(
                f"{skill.path}: rendering {role!r} needs {what}= (for {', '.join(sorted(needs))})"
            )
        return skill.system_prompt(), (Message("user", skill.render_inputs(variables)),)

    def request(
        self,
        role: str,
        incident: Incident,
        *,
        verdict: TriageVerdict | None = None,
        proposal: StrategistProposal | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
    ) -> LLMRequest:
        """The :class:`LLMRequest` for ``role``: rendered prompt, the role's model as the
        schema, and the incident (plus verdict/proposal) as ``context``."""
        system, messages = self.render(role, incident, verdict=verdict, proposal=proposal)
        context = incident.to_context()
        if verdict is not None:
            context["verdict"] = verdict.model_dump(mode="json")
        if proposal is not None:
            context["proposal"] = proposal.model_dump(mode="json")
        return LLMRequest(
            role=role,
            system=system,
            messages=messages,
            schema=self.get(role).model,
            max_tokens=max_tokens,
            temperature=temperature,
            context=context,
        )
