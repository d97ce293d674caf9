#!/usr/bin/env python
"""What `oauth` costs for a token it has not seen: `OAuthVerifier.verify` timed in-process on fresh JWTs.

Under load a client sends the same access token on every call, and the verifier remembers a verified token for up
to 60 s, so `bench.py --auth oauth` measures that steady state. This script times the other case: a token checked
in full (header, key, signature, claims), once per client per minute and for every new token. It builds the
verifier as the server does for a static key (`auth.oauth.public_key` RS256 with a fresh RSA-2048 key, or
`hs256_secret`), mints `--tokens` distinct tokens beforehand, and reports the median and mean time of a first
verification, and of a remembered one, in microseconds of wall time on this machine (noisy on a loaded one).

    python benchmarks/oauth_verify.py [--tokens 2000] [--alg RS256 --alg HS256]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.auth_setups import HS256_SECRET, mint_jwt, oauth_env, rsa_key_pair, server_url  # noqa: E402

ALGORITHMS = ("RS256", "HS256")


def verifier_for(alg: str, resource: str, folder: Path) -> tuple[Any, Any]:
    """The server's `OAuthVerifier` for `alg` (its settings as `auth_setups.oauth_env` gives them) and the key
    that signs its tokens."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from mcp_platform.auth.jwks import StaticKey, VerificationKey
    from mcp_platform.auth.oauth import OAuthVerifier
    from mcp_platform.protected_resource import resolve
    from mcp_platform.settings import load_settings

    private: Any = HS256_SECRET
    public: str | None = None
    if alg == "RS256":
        private, public = rsa_key_pair()
    env = oauth_env(resource, public)
    oauth: dict[str, Any] = {"issuer": env["MCP_PLATFORM_AUTH__OAUTH__ISSUER"], "resource": resource}
    if public is None:
        oauth["hs256_secret"] = HS256_SECRET
        key = StaticKey(VerificationKey(HS256_SECRET.encode(), ("HS256",)), "hs256_secret")
    else:
        oauth["public_key"] = public
        key = StaticKey(VerificationKey(load_pem_public_key(public.encode()), ("RS256",)), "public_key")
    config = folder / "mcp-platform.toml"
    config.write_text("")
    settings = load_settings(config, auth={"mode": ["bearer", "oauth"], "oauth": oauth})
    return OAuthVerifier(resolve(settings), settings.auth.oauth, key, (alg,)), private


async def _timed(verifier: Any, tokens: list[str]) -> list[float]:
    """Microseconds of each `verify`, in order; every one must admit."""
    spent = []
    for token in tokens:
        started = time.perf_counter_ns()
        principal = await verifier.verify(token)
        spent.append((time.perf_counter_ns() - started) / 1000)
        if principal is None:
            raise RuntimeError("the verifier did not admit a token minted for it")
    return spent


def measure(alg: str, count: int) -> dict[str, float]:
    """Median and mean microseconds of a first and of a remembered verification of `count` tokens."""
    resource = server_url(8000)
    with tempfile.TemporaryDirectory(prefix="mcpp-oauth-") as tmp:
        verifier, signing_key = verifier_for(alg, resource, Path(tmp))
        tokens = [mint_jwt(signing_key, alg, resource, subject=f"user-{n}") for n in range(count)]
        first = asyncio.run(_timed(verifier, tokens))
        again = asyncio.run(_timed(verifier, tokens))
    return {"first_median_us": statistics.median(first), "first_mean_us": statistics.fmean(first),
            "remembered_median_us": statistics.median(again), "remembered_mean_us": statistics.fmean(again)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2000, help="fresh tokens verified per algorithm (10-100000)")
    parser.add_argument("--alg", action="append", choices=ALGORITHMS, help="repeatable; default both")
    args = parser.parse_args(argv)
    if not 10 <= args.tokens <= 100_000:
        parser.error("--tokens must be between 10 and 100000")
    for alg in args.alg or ALGORITHMS:
        found = measure(alg, args.tokens)
        print(f"{alg}: first verification {found['first_median_us']:.0f} us median ({found['first_mean_us']:.0f} "
              f"mean), remembered {found['remembered_median_us']:.1f} us median "
              f"({found['remembered_mean_us']:.1f} mean), {args.tokens} tokens", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
