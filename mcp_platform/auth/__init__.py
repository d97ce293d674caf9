"""Who may call: the verifiers `auth.mode` lists (bearer, oauth, redis, forward), chained in order.

`bearer.py` holds the named tokens of `mcp-platform token`; `chain.py` the verifier interface and the chain;
`modes.py` starts the configured verifiers. The others import their libraries (PyJWT, httpx2) only when their
mode is on, so a bearer-only server loads none of them.
"""

from mcp_platform.auth.bearer import BearerVerifier, TokenInfo, TokenStore, bearer_token, generate_token, hash_token
from mcp_platform.auth.chain import Presented, TokenVerifier, VerifierChain, chained
from mcp_platform.auth.modes import start_verifiers

__all__ = ["BearerVerifier", "Presented", "TokenInfo", "TokenStore", "TokenVerifier", "VerifierChain",
           "bearer_token", "chained", "generate_token", "hash_token", "start_verifiers"]
