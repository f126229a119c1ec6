"""One cluster process for the shared-budget tests and benchmark: a router on a paid-looking
route (the loopback OpenAI server, a price, metered) with its budget and ledger in
PostgreSQL, firing ``--calls`` calls at once. Prints one JSON line of what it saw.

    python -m tests.llm.spend_worker DSN BASE_URL --calls 100 --per-day-usd 6.0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from pydantic import BaseModel

from tripwire.llm.base import BudgetExceeded, LLMRequest, Message
from tripwire.llm.config import load_llm_config
from tripwire.llm.factory import build_llm_pg

# 400 prompt characters -> 100 estimated input tokens; max_tokens 100: a 200-token hold.
PROMPT = "x" * 392
MAX_TOKENS = 100
PRICE = 1000.0  # USD per million tokens, in and out: a 200-token hold costs 0.20 USD


class Answer(BaseModel):
    text: str


def config(base_url: str, per_day_usd: float) -> dict:
    return {
        "budget": {"per_day_usd": per_day_usd, "per_day_tokens": None,
                   "per_call_usd": None, "per_call_tokens": None},
        "cache": {"enabled": False},
        "rules_fallback": False,
        "routes": [{"name": "paid", "provider": "openai-compatible", "model": "gpt-test",
                    "base_url": base_url, "api_key_env": "SPEND_TEST_KEY",
                    "price": {"input": PRICE, "output": PRICE}, "metered": True,
                    "max_concurrency": 256, "rate_per_s": 1e9, "burst": 100_000,
                    "retries": 0, "timeout_s": 30}],
    }


def request(i: int) -> LLMRequest:
    return LLMRequest("spend-test", "Answer.", (Message("user", f"{i:08d}" + PROMPT),),
                      Answer, max_tokens=MAX_TOKENS)


async def run(dsn: str, base_url: str, calls: int, per_day_usd: float) -> dict:
    stack = await build_llm_pg(load_llm_config(config(base_url, per_day_usd)), dsn,
                               env={"SPEND_TEST_KEY": "k"})
    router = stack.router

    async def one(i: int) -> str:
        try:
            await router.call(request(i))
            return "ok"
        except BudgetExceeded:
            return "budget"

    budget = router.budget
    try:
        outcomes = await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        await router.aclose()
    return {"answered": outcomes.count("ok"), "refused": outcomes.count("budget"),
            "stats": router.stats, "budget": budget.stats,
            "reserve_ms": list(budget.reserve_ms)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dsn")
    p.add_argument("base_url")
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--per-day-usd", type=float, default=6.0)
    args = p.parse_args()
    # Budget refusals are the point here: one warning per refused call would bury the figures.
    logging.getLogger("tripwire.llm.router").setLevel(logging.ERROR)
    print(json.dumps(asyncio.run(run(args.dsn, args.base_url, args.calls, args.per_day_usd))),
          flush=True)


if __name__ == "__main__":
    main()
