"""The OpenAI-compatible chat client shared by the LLM labeler and the LLM rewriter.

Owns ``client``: requests, retries, JSON answers, the endpoint variables (``endpoint_from_env``), and the
``llm_calls`` log. May import ``analysis.store``, ``analysis.metrics`` and the shared top modules only."""
