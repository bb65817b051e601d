"""The check step, read in the order a program meets it: novelty, static checks on the host, the dry
run in the sandbox, mechanical fixes on the host, then LLM-side fixes (re-ask, repair, resample)."""
