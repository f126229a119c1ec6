"""The API's bearer token, checked without the token: a salted HMAC-SHA256 verifier.

The ingress replicas never receive the operator's token. The process that has it (the demo,
``serve_apps.deploy:app`` on a cluster node, a test) makes a :class:`TokenVerifier` — a
random salt and ``HMAC-SHA256(salt, token)`` — and that is what travels in the Serve app's
arguments, the controller's checkpoint and the replicas' memory. Nothing that can be read
out of Ray (dashboard, GCS, logs, runtime env) gives the token back; for a random token of
128 bits or more the verifier cannot be reversed either. A short, guessable token could be
found by trying candidates against the verifier: use ``secrets.token_urlsafe(24)`` or longer.

>>> v = TokenVerifier.of("s3cret-token")
>>> v.check(b"s3cret-token"), v.check(b"s3cret-tokem"), v.check(b"")
(True, False, False)
>>> "s3cret" in repr(v)
False
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

SALT_BYTES = 16


@dataclass(frozen=True)
class TokenVerifier:
    """``check(given)`` is true exactly when ``given`` is the token this was made of."""

    salt: bytes
    digest: bytes

    @classmethod
    def of(cls, token: str) -> TokenVerifier:
        if not token or not token.strip():
            raise ValueError("the API needs a non-empty bearer token for its mutating routes")
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(salt, _mac(salt, token.strip().encode()))

    def check(self, given: bytes) -> bool:
        # compare_digest on the MACs: constant time, and lengths of `given` do not leak.
        return bool(given) and hmac.compare_digest(_mac(self.salt, given), self.digest)

    def __call__(self, given: bytes) -> bool:
        return self.check(given)

    def __repr__(self) -> str:
        return "TokenVerifier(hmac-sha256, salted)"


def _mac(salt: bytes, token: bytes) -> bytes:
    return hmac.new(salt, token, hashlib.sha256).digest()
