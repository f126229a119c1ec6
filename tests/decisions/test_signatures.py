"""tripwire.decisions.signatures: an order needs every signer's APPROVE of its exact hash."""

from __future__ import annotations

import pytest

from tripwire.decisions.signatures import (
    DOUBLE_CHECKER,
    FACT_CHECKER,
    RISK_GATE,
    SIGNERS,
    Signature,
    SignVerdict,
    verify_signatures,
)


def sign(signer: str, h: str = "h1", verdict: str = "APPROVE") -> Signature:
    return Signature(signer, h, verdict, "ok", 0)


def test_all_three_approvals_of_this_hash_are_valid():
    check = verify_signatures("h1", [sign(s) for s in SIGNERS])
    assert check.valid and check.reason == "3 valid signatures over h1"


@pytest.mark.parametrize("missing", SIGNERS)
def test_a_missing_signer_is_named(missing):
    check = verify_signatures("h1", [sign(s) for s in SIGNERS if s != missing])
    assert not check.valid and check.reason.endswith(missing)


def test_an_approval_of_another_hash_or_a_veto_does_not_count():
    sigs = [sign(RISK_GATE), sign(FACT_CHECKER, h="h0"), sign(DOUBLE_CHECKER, verdict="VETO")]
    check = verify_signatures("h1", sigs)
    assert not check.valid
    assert check.reason == f"no APPROVE over this proposal hash from {FACT_CHECKER}, " \
                           f"{DOUBLE_CHECKER}"


def test_a_signature_must_be_well_formed():
    with pytest.raises(ValueError, match="APPROVE, VETO or SHRINK"):
        Signature(RISK_GATE, "h1", "MAYBE", "", 0)
    with pytest.raises(ValueError, match="signer and a proposal hash"):
        Signature("", "h1", SignVerdict.APPROVE.value, "", 0)
