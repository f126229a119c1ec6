"""The decision core's domain: proposals and their hash, signatures, fact-checks, outcomes,
incident intake, and the sizing (:mod:`.sizing`) and pre-trade (:mod:`.pretrade`) policy.
Pure Python: the LangGraph graphs in ``graphs/`` call these and decide nothing themselves."""

from tripwire.decisions.factcheck import Fact, FactCheck, FactPolicy, Facts, fact_check
from tripwire.decisions.intake import SKIPPED_OVERLOAD, Admission, IncidentIntake
from tripwire.decisions.outcome import AWAITING_APPROVAL, Outcome
from tripwire.decisions.proposal import Proposal, canonical_json, proposal_hash
from tripwire.decisions.signatures import (
    DOUBLE_CHECKER,
    FACT_CHECKER,
    RISK_GATE,
    SIGNERS,
    Signature,
    SignatureCheck,
    SignVerdict,
    verify_signatures,
)

__all__ = [
    "AWAITING_APPROVAL",
    "DOUBLE_CHECKER",
    "FACT_CHECKER",
    "RISK_GATE",
    "SIGNERS",
    "SKIPPED_OVERLOAD",
    "Admission",
    "Fact",
    "FactCheck",
    "FactPolicy",
    "Facts",
    "IncidentIntake",
    "Outcome",
    "Proposal",
    "SignVerdict",
    "Signature",
    "SignatureCheck",
    "canonical_json",
    "fact_check",
    "proposal_hash",
    "verify_signatures",
]
