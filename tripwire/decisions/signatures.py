"""Signatures: each of the three checkers' written verdict on one proposal hash.

The sign-off graph's risk gate, fact-checker and double-checker each write a
:class:`Signature` (signer, proposal hash, verdict, reason, time). The execute node sends an
order only when :func:`verify_signatures` finds an APPROVE from *every* required signer over
the hash of the very proposal it is about to send; anything else (a missing signer, a VETO,
a SHRINK, a signature over another revision or a tampered proposal) refuses, with the reason.

>>> sigs = [Signature(s, "h1", "APPROVE", "ok", 5) for s in SIGNERS]
>>> verify_signatures("h1", sigs).valid
True
>>> verify_signatures("h2", sigs).reason
'no APPROVE over this proposal hash from risk_gate, fact_checker, double_checker'
>>> verify_signatures("h1", sigs[:2]).reason
'no APPROVE over this proposal hash from double_checker'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

RISK_GATE = "risk_gate"
FACT_CHECKER = "fact_checker"
DOUBLE_CHECKER = "double_checker"
SIGNERS = (RISK_GATE, FACT_CHECKER, DOUBLE_CHECKER)


class SignVerdict(StrEnum):
    APPROVE = "APPROVE"  # sign these exact terms
    VETO = "VETO"  # refuse: no order
    SHRINK = "SHRINK"  # only smaller: a new revision must be signed again


@dataclass(frozen=True, slots=True)
class Signature:
    signer: str
    proposal_hash: str
    verdict: str  # a SignVerdict value
    reason: str
    ts_ns: int

    def __post_init__(self) -> None:
        if self.verdict not in SignVerdict.__members__:
            raise ValueError(f"signature verdict must be APPROVE, VETO or SHRINK, got "
                             f"{self.verdict!r}")
        if not self.signer or not self.proposal_hash:
            raise ValueError("a signature needs a signer and a proposal hash")


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    valid: bool
    reason: str


def verify_signatures(
    proposal_hash: str, signatures: Iterable[Signature], required: tuple[str, ...] = SIGNERS
) -> SignatureCheck:
    """Whether every ``required`` signer APPROVEd exactly ``proposal_hash``."""
    approved = {s.signer for s in signatures
                if s.proposal_hash == proposal_hash and s.verdict == SignVerdict.APPROVE}
    missing = [s for s in required if s not in approved]
    if missing:
        return SignatureCheck(False, "no APPROVE over this proposal hash from "
                                     + ", ".join(missing))
    return SignatureCheck(True, f"{len(required)} valid signatures over {proposal_hash[:12]}")
